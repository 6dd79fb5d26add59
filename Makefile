# The one entry point: make build | test | lint | bench | install | clean
BINARY    := docker-credential-stackit
MODULE    := github.com/docker-credential-stackit/docker-credential-stackit
CREDS_PKG := github.com/docker/docker-credential-helpers/credentials
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)
STATICCHECK_VERSION := v0.8.2

LDFLAGS := -s -w \
	-X $(CREDS_PKG).Version=$(VERSION) \
	-X $(CREDS_PKG).Revision=$(REVISION) \
	-X $(CREDS_PKG).Name=$(BINARY) \
	-X $(CREDS_PKG).Package=$(MODULE)

.PHONY: build test lint bench install clean

build:
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/$(BINARY) ./cmd/$(BINARY)

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

install:
	./install.sh

clean:
	rm -rf bin
