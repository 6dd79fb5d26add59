#!/bin/sh
# install.sh: build docker-credential-stackit from source with the local Go,
# install it, and point Docker's credHelpers at it. Safe to run again.
# install.sh --uninstall undoes that.
set -eu

BINARY=docker-credential-stackit
MODULE=github.com/docker-credential-stackit/docker-credential-stackit
CREDS_PKG=github.com/docker/docker-credential-helpers/credentials
ME=install.sh

usage() {
	cat <<'EOF'
Usage: ./install.sh [--prefix DIR] [--no-configure]
       ./install.sh --uninstall [--prefix DIR] [--purge]

Builds a static docker-credential-stackit from this checkout with the local
Go (the same flags and version as `make build`), installs it and runs
`docker-credential-stackit configure-docker`, which adds credHelpers entries
to $DOCKER_CONFIG/config.json (default ~/.docker/config.json).

Install directory: /usr/local/bin if it is writable, else ~/.local/bin.
Docker finds the helper through PATH, so that directory must be on PATH.
Nothing is downloaded except Go module sources on the first build.
Run it as the user who runs docker, not with sudo.

Options:
  --prefix DIR     install to DIR/bin instead
  --no-configure   do not touch the Docker config
  --uninstall      run configure-docker --remove and configure-podman --remove,
                   then delete the binary from DIR/bin (with --prefix) or from
                   /usr/local/bin and ~/.local/bin. Keeps the helper's config
                   (stored logins) and token cache.
  --purge          with --uninstall: delete those too, from the default places:
                   ${XDG_CONFIG_HOME:-~/.config}/docker-credential-stackit and
                   ${XDG_CACHE_HOME:-~/.cache}/docker-credential-stackit
                   (macOS: ~/Library/Application Support/docker-credential-stackit
                   and ~/Library/Caches/docker-credential-stackit)
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
uninstall=0
purge=0
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
	--uninstall)
		uninstall=1
		shift
		;;
	--purge)
		purge=1
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

[ "$purge" = 0 ] || [ "$uninstall" = 1 ] || die "--purge goes with --uninstall"
[ "$uninstall" = 0 ] || [ "$configure" = 1 ] || die "--no-configure is for installing; --uninstall always undoes the configuration"

# A relative --prefix means relative to where the user ran us, not to the
# checkout we are about to cd into.
case $prefix in
'' | /*) ;;
*) prefix=$(pwd)/$prefix ;;
esac

# The executable suffix: .exe under Git Bash, MSYS2 or Cygwin on Windows.
exe_suffix() {
	if command -v go >/dev/null 2>&1 && e=$(cd / && go env GOEXE 2>/dev/null); then
		echo "$e"
		return
	fi
	case $(uname -s 2>/dev/null) in
	MINGW* | MSYS* | CYGWIN*) echo .exe ;;
	*) echo ;;
	esac
}

# --- uninstall -------------------------------------------------------------
# remove_config BINARY COMMAND FILE: run `BINARY COMMAND --remove`,
# tolerating a helper too old to know --remove; 1 if the entries may remain.
remove_config() {
	if out=$("$1" "$2" --remove 2>&1); then
		[ -z "$out" ] || printf '%s\n' "$out"
		return 0
	fi
	case $out in
	*"flag provided but not defined"* | *"unknown flag"* | *"unknown option"*)
		warn "this $BINARY has no '$2 --remove' yet; delete the \"stackit\" entries from credHelpers in $3 by hand"
		;;
	*)
		[ -z "$out" ] || printf '%s\n' "$out" >&2
		warn "'$2 --remove' failed (see above); delete the \"stackit\" entries from credHelpers in $3 by hand"
		;;
	esac
	return 1
}

# The helper's default config and cache dirs: the XDG ones, which on macOS
# are under ~/Library unless XDG_*_HOME is set. These are the defaults only;
# DOCKER_CREDENTIAL_STACKIT_CONFIG / _CACHE_DIR, --cache-dir and the system
# paths used without HOME are not looked at.
default_dirs() {
	[ -n "${HOME:-}" ] || return 0
	config_home=$HOME/.config cache_home=$HOME/.cache
	if [ "$(uname -s 2>/dev/null)" = Darwin ]; then
		config_home="$HOME/Library/Application Support" cache_home=$HOME/Library/Caches
	fi
	case ${XDG_CONFIG_HOME:-} in /*) config_home=$XDG_CONFIG_HOME ;; esac
	case ${XDG_CACHE_HOME:-} in /*) cache_home=$XDG_CACHE_HOME ;; esac
	printf '%s\n%s\n' "$config_home/$BINARY" "$cache_home/$BINARY"
}

# what_is DIR: what the helper keeps in one of the default_dirs.
what_is() {
	case $1 in
	*/.cache/* | */Caches/* | "${XDG_CACHE_HOME:-/nonexistent}"/*) echo "token cache" ;;
	*) echo "helper config and stored logins" ;;
	esac
}

uninstall() {
	exe=$(exe_suffix)
	if [ -n "$prefix" ]; then
		candidates=$prefix/bin/$BINARY$exe
	else
		candidates=/usr/local/bin/$BINARY$exe
		[ -z "${HOME:-}" ] || candidates="$candidates
$HOME/.local/bin/$BINARY$exe"
	fi
	found=0
	# Newline-separated: paths may hold spaces.
	old_ifs=$IFS
	IFS='
'
	set -f
	for target in $candidates; do
		IFS=$old_ifs
		[ -f "$target" ] || continue
		found=1
		if [ -x "$target" ]; then
			remove_config "$target" configure-docker "${DOCKER_CONFIG:-~/.docker}/config.json" || :
			remove_config "$target" configure-podman "podman's auth.json, if any," || :
		fi
		rm -f -- "$target" || die "cannot remove $target; run this as the user who installed it"
		say "removed $target"
	done
	IFS=$old_ifs
	set +f
	if [ "$found" = 0 ]; then
		where=$(printf '%s' "$candidates" | tr '\n' ' ')
		say "nothing to remove: no ${where% }"
		still=$(command -v "$BINARY" 2>/dev/null || true)
		[ -z "$still" ] || warn "$still is on PATH; it was not installed here: remove it yourself, or pass its --prefix"
	fi

	dirs=$(default_dirs)
	IFS='
'
	set -f
	for dir in $dirs; do
		IFS=$old_ifs
		[ -e "$dir" ] || continue
		if [ "$purge" = 1 ]; then
			rm -rf -- "$dir" || die "cannot remove $dir"
			say "removed $dir"
		else
			say "kept $dir ($(what_is "$dir"); --purge removes it)"
		fi
	done
	IFS=$old_ifs
	set +f
	say "uninstalled."
}

if [ "$uninstall" = 1 ]; then
	uninstall
	exit 0
fi

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
exe=$(go env GOEXE)
version=$(packaging/version.sh version) || die "cannot tell the version (see above)"
revision=$(packaging/version.sh revision)
say "building $BINARY $version (static) with $have"
# The same command as `make build`, without needing make.
ldflags="-s -w -X $CREDS_PKG.Version=$version -X $CREDS_PKG.Revision=$revision"
ldflags="$ldflags -X $CREDS_PKG.Name=$BINARY -X $CREDS_PKG.Package=$MODULE"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "bin/$BINARY$exe" "./cmd/$BINARY" ||
	die "build failed (see above); the first build needs GOPROXY reachable to fetch the module sources"
built=bin/$BINARY$exe
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
target=$dest/$BINARY$exe

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

say "done. Next: export STACKIT_SERVICE_ACCOUNT_KEY_PATH=/path/to/service-account-key.json (or activate it in the STACKIT CLI), then check with: docker-credential-stackit doctor"
