#!/bin/sh
# install.sh: build docker-credential-stackit from source with the local Go,
# install it, and point Docker's credHelpers at it. Safe to run again.
set -eu

BINARY=docker-credential-stackit
MODULE=github.com/docker-credential-stackit/docker-credential-stackit
CREDS_PKG=github.com/docker/docker-credential-helpers/credentials
ME=install.sh

usage() {
	cat <<'EOF'
Usage: ./install.sh [--prefix DIR] [--no-configure] [--help]

Builds docker-credential-stackit from this checkout with the local Go (the
same flags as `make build`), installs it and runs
`docker-credential-stackit configure-docker`, which adds credHelpers entries
to $DOCKER_CONFIG/config.json (default ~/.docker/config.json).

Install directory: /usr/local/bin if it is writable, else ~/.local/bin.
Docker finds the helper through PATH, so that directory must be on PATH.
Nothing is downloaded except Go module sources on the first build.
Run it as the user who runs docker, not with sudo.

Options:
  --prefix DIR     install to DIR/bin instead
  --no-configure   do not touch the Docker config
  -h, --help       show this text
EOF
}

die() {
	echo "$ME: error: $*" >&2
	exit 1
}
warn() { echo "$ME: warning: $*" >&2; }
say() { echo "$ME: $*"; }

# --- arguments -------------------------------------------------------------
prefix=
configure=1
while [ $# -gt 0 ]; do
	case $1 in
	--prefix)
		[ $# -ge 2 ] || die "--prefix needs a directory, e.g. --prefix \$HOME/.local"
		prefix=$2
		[ -n "$prefix" ] || die "--prefix needs a directory, e.g. --prefix \$HOME/.local"
		shift 2
		;;
	--prefix=*)
		prefix=${1#--prefix=}
		[ -n "$prefix" ] || die "--prefix needs a directory, e.g. --prefix \$HOME/.local"
		shift
		;;
	--no-configure)
		configure=0
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	-*)
		die "unknown option '$1'; run $0 --help"
		;;
	*)
		die "unexpected argument '$1'; run $0 --help"
		;;
	esac
done

# A relative --prefix means relative to where the user ran us, not to the
# checkout we are about to cd into.
case $prefix in
'' | /*) ;;
*) prefix=$(pwd)/$prefix ;;
esac

# --- work in the checkout --------------------------------------------------
script_dir=$(dirname -- "$0")
CDPATH='' cd -- "$script_dir" || die "cannot cd to $script_dir"
if [ ! -f go.mod ] || [ ! -d "cmd/$BINARY" ]; then
	die "$(pwd) is not a $BINARY checkout (no go.mod or cmd/$BINARY); run install.sh from the source tree"
fi

# --- Go --------------------------------------------------------------------
command -v go >/dev/null 2>&1 ||
	die "go is not on PATH; install Go $(sed -n 's/^go \([0-9.]*\).*/\1/p' go.mod) or newer from https://go.dev/dl/ and add it to PATH"

need=$(sed -n 's/^go \([0-9][0-9.]*\).*/\1/p' go.mod)
[ -n "$need" ] || die "go.mod has no 'go' version line"

# Build with the Go that is installed: never let the go command fetch a
# newer toolchain behind the user's back.
GOTOOLCHAIN=local
export GOTOOLCHAIN

# Ask outside the module so that go.mod's requirement cannot stop the question.
have=$(cd / && go env GOVERSION 2>/dev/null) || have=
[ -n "$have" ] || die "'go env GOVERSION' failed; is $(command -v go) a working Go installation?"

# version_ge A B: is version A (1.26.8, 1.26rc1, ...) at least B?
version_ge() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		na = split(a, x, "."); nb = split(b, y, ".")
		for (i = 1; i <= 3; i++) {
			xi = (i <= na) ? x[i] + 0 : 0; yi = (i <= nb) ? y[i] + 0 : 0
			if (xi > yi) exit 0
			if (xi < yi) exit 1
		}
		exit 0
	}'
}

case $have in
devel*) ;; # a development toolchain: assume it is new enough
go[0-9]*)
	version_ge "${have#go}" "$need" ||
		die "$have is too old: go.mod needs Go $need or newer; install it from https://go.dev/dl/"
	;;
*) warn "cannot tell the Go version from '$have'; trying anyway" ;;
esac

# --- build -----------------------------------------------------------------
say "building $BINARY with $have"
if command -v make >/dev/null 2>&1; then
	make build || die "build failed (see above); the first build needs GOPROXY reachable to fetch the module sources"
else
	# The same command as `make build`.
	version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
	revision=$(git rev-parse HEAD 2>/dev/null || true)
	ldflags="-s -w -X $CREDS_PKG.Version=$version -X $CREDS_PKG.Revision=$revision"
	ldflags="$ldflags -X $CREDS_PKG.Name=$BINARY -X $CREDS_PKG.Package=$MODULE"
	go build -trimpath -ldflags "$ldflags" -o "bin/$BINARY" "./cmd/$BINARY" ||
		die "build failed (see above); the first build needs GOPROXY reachable to fetch the module sources"
fi
built=bin/$BINARY
[ -x "$built" ] || die "the build did not produce $(pwd)/$built"

# --- install ---------------------------------------------------------------
if [ -n "$prefix" ]; then
	dest=$prefix/bin
	mkdir -p -- "$dest" || die "cannot create $dest"
	[ -w "$dest" ] || die "$dest is not writable; choose another --prefix"
elif [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then
	dest=/usr/local/bin
else
	[ -n "${HOME:-}" ] || die "/usr/local/bin is not writable and HOME is not set; use --prefix DIR"
	dest=$HOME/.local/bin
	mkdir -p -- "$dest" || die "cannot create $dest; use --prefix DIR"
	[ -w "$dest" ] || die "$dest is not writable; use --prefix DIR"
fi
target=$dest/$BINARY

if [ -f "$target" ] && cmp -s "$built" "$target" 2>/dev/null; then
	say "$target is already up to date"
else
	# Copy next to the target, then rename over it: a docker pull running the
	# old binary right now keeps working, and nobody sees a half-written file.
	tmp=$dest/.$BINARY.tmp.$$
	trap 'rm -f "$tmp"' EXIT
	trap 'exit 130' INT TERM
	cp -- "$built" "$tmp" || die "cannot write to $dest"
	chmod 0755 "$tmp" || die "cannot make $tmp executable"
	mv -f -- "$tmp" "$target" || die "cannot replace $target"
	trap - EXIT
	say "installed $target"
fi

"$target" version >/dev/null 2>&1 || die "$target does not run; remove it and run $0 again"
say "$("$target" version)"

case ":${PATH:-}:" in
*":$dest:"*)
	found=$(command -v "$BINARY" 2>/dev/null || true)
	if [ -n "$found" ] && [ "$found" != "$target" ]; then
		warn "$found comes first on PATH, so docker will run that one and not $target; remove it or reorder PATH"
	fi
	;;
*)
	warn "$dest is not on PATH, and docker finds credential helpers only through PATH; add it, e.g. put this in your shell profile: export PATH=\"$dest:\$PATH\""
	;;
esac

# --- configure Docker ------------------------------------------------------
if [ "$configure" = 1 ]; then
	"$target" configure-docker ||
		die "configuring Docker failed (see above); fix that, then run: $target configure-docker"
else
	say "skipped configuring Docker (--no-configure); later run: $target configure-docker"
fi

say "done. Next: export STACKIT_SERVICE_ACCOUNT_KEY_PATH=/path/to/service-account-key.json"
