# The one entry point: make build | test | lint | bench | fuzz | install | dist | clean
BINARY    := docker-credential-stackit
MODULE    := github.com/docker-credential-stackit/docker-credential-stackit
CREDS_PKG := github.com/docker/docker-credential-helpers/credentials
# X.Y.Z from a vX.Y.Z tag at HEAD, else VERSION plus the commit as build
# metadata (0.3.0+1a2b3c4); see packaging/version.sh.
VERSION   ?= $(shell packaging/version.sh version)
REVISION  ?= $(shell packaging/version.sh revision)
GOEXE     := $(shell go env GOEXE)
STATICCHECK_VERSION := v0.8.2
# GoReleaser for `make dist`, pinned; v2.15.1 is a release that builds with
# the Go in go.mod. `go run` compiles it once (a few minutes) and caches it.
GORELEASER := go run github.com/goreleaser/goreleaser/v2@v2.15.1

LDFLAGS := -s -w \
	-X $(CREDS_PKG).Version=$(VERSION) \
	-X $(CREDS_PKG).Revision=$(REVISION) \
	-X $(CREDS_PKG).Name=$(BINARY) \
	-X $(CREDS_PKG).Package=$(MODULE)

.PHONY: build test lint bench fuzz install dist dist-check clean

# Static: no cgo, so the binary runs on any Linux (glibc or musl) and in
# scratch or distroless images.
build:
	@echo "go build $(BINARY) $(VERSION) -> bin/$(BINARY)$(GOEXE)"
	@CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/$(BINARY)$(GOEXE) ./cmd/$(BINARY)

# The race detector needs cgo and a C compiler. Where they are missing the
# tests still run, without it, and say so.
RACE := $(shell [ "$$(go env CGO_ENABLED)" = 1 ] && command -v "$$(go env CC)" >/dev/null 2>&1 && echo -race)

test:
	@[ -n "$(RACE)" ] || echo "note: no C compiler for cgo, so the tests run without -race"
	go test $(RACE) -count=1 ./...

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Go benchmarks of the hot functions, then the process-level benchmark
# (warm, cold and storm against floor programs; see internal/procbench).
bench:
	go test -run '^$$' -bench . -benchmem ./...
	go test -tags procbench -run TestProcessBench -count=1 -v -timeout 30m ./internal/procbench

# Every fuzz target, FUZZTIME each (make fuzz FUZZTIME=2m). Go fuzzes one
# target per run, so each package that has any is asked for its list.
FUZZTIME ?= 10s

fuzz:
	@set -e; n=0; \
	for dir in $$(grep -rl --include='*_test.go' --exclude-dir=testdata '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		list=$$(go test -list '^Fuzz' "$$dir") || { echo "$$list"; exit 1; }; \
		for name in $$(echo "$$list" | grep '^Fuzz'); do \
			echo "go test -run '^\$$' -fuzz '^$$name\$$' -fuzztime $(FUZZTIME) $$dir"; \
			go test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) "$$dir"; \
			n=$$((n+1)); \
		done; \
	done; \
	echo "fuzzed $$n targets for $(FUZZTIME) each"

install:
	./install.sh

# Release archives, .deb/.rpm, checksums, Homebrew cask and Scoop manifest
# for linux, darwin and windows x amd64, arm64 into dist/, built locally:
# nothing is published or signed, and nothing but the Go module proxy is
# needed (no docker, no git remote, no token). See .goreleaser.yaml.
dist:
	HELPER_VERSION=$(VERSION) HELPER_REVISION=$(REVISION) $(GORELEASER) release --snapshot --clean --skip=publish,sign
	@packaging/check-dist.sh

dist-check:
	HELPER_VERSION=$(VERSION) HELPER_REVISION=$(REVISION) $(GORELEASER) check

clean:
	rm -rf bin dist
