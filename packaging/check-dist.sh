#!/bin/sh
# packaging/check-dist.sh: check what `make dist` left in dist/: the six
# archives, a .deb and an .rpm per Linux arch, checksums.txt covering them
# all, the Homebrew cask and Scoop manifest, and a linux/amd64 binary that
# is static and reports the version packaging/version.sh gives.
set -eu
cd "$(dirname "$0")/.."
BINARY=docker-credential-stackit
fail() {
	echo "check-dist: $*" >&2
	exit 1
}
[ -d dist ] || fail "no dist/; run make dist first"

n=0
for os in linux darwin windows; do
	for arch in amd64 arm64; do
		ext=tar.gz
		[ "$os" = windows ] && ext=zip
		set -- dist/"$BINARY"_*_"${os}_$arch.$ext"
		[ -f "$1" ] || fail "no ${os}_$arch .$ext archive in dist/"
		n=$((n + 1))
	done
done
for f in "$BINARY"_*_amd64.deb "$BINARY"_*_arm64.deb "$BINARY"-*.x86_64.rpm "$BINARY"-*.aarch64.rpm \
	homebrew/Casks/"$BINARY".rb scoop/"$BINARY".json; do
	# shellcheck disable=SC2086 # the glob is wanted
	set -- dist/$f
	[ -f "$1" ] || fail "no dist/$f"
done

sha256sum=sha256sum
command -v sha256sum >/dev/null 2>&1 || sha256sum="shasum -a 256" # macOS
(cd dist && $sha256sum -c --quiet checksums.txt) || fail "checksums.txt does not verify"
listed=$(wc -l <dist/checksums.txt)
[ "$listed" -eq $((n + 4)) ] || fail "checksums.txt lists $listed files, want $((n + 4)) (archives and packages)"

bin=dist/${BINARY}_linux_amd64_v1/$BINARY
[ -x "$bin" ] || fail "no $bin"
want=$(packaging/version.sh version)
rev=$(packaging/version.sh revision)
if [ "$(uname -s)/$(uname -m)" = Linux/x86_64 ]; then
	got=$("$bin" version) || fail "$bin version failed"
	case $got in
	*" $want "* | *" $want") ;;
	*) fail "$bin reports '$got', want version $want" ;;
	esac
	case $got in
	*"$rev"*) ;;
	*) fail "$bin reports '$got', want revision $rev" ;;
	esac
	echo "check-dist: $got"
fi
if command -v file >/dev/null 2>&1; then
	case $(file -b "$bin") in
	*"statically linked"*) ;;
	*) fail "$bin is not statically linked: $(file -b "$bin")" ;;
	esac
fi
echo "check-dist: ok: $n archives, .deb and .rpm for amd64 and arm64, checksums.txt verified, cask and scoop manifest"
