#!/bin/sh
# packaging/version.sh [version|revision]: the version to stamp into a build,
# the one rule shared by `make build`, install.sh and `make dist`.
#
#   version:  X.Y.Z from a tag vX.Y.Z pointing at HEAD; otherwise the
#             VERSION file plus the commit as semver build metadata,
#             e.g. 0.3.0+1a2b3c4. A working tree with uncommitted changes
#             adds ".dirty" to the metadata (0.3.0+1a2b3c4.dirty, 0.3.0+dirty).
#             Outside a git checkout: the VERSION file alone.
#   revision: the full commit hash, or nothing outside a git checkout.
set -eu
cd "$(dirname "$0")/.."

what=${1:-version}
commit=$(git rev-parse -q --verify HEAD 2>/dev/null) || commit=

case $what in
revision)
	echo "$commit"
	exit 0
	;;
version) ;;
*)
	echo "usage: $0 [version|revision]" >&2
	exit 2
	;;
esac

[ -r internal/version/VERSION ] || {
	echo "$0: no internal/version/VERSION file" >&2
	exit 1
}
base=$(tr -d ' \t\r\n' <internal/version/VERSION)
echo "$base" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$' || {
	echo "$0: VERSION holds '$base', not a semantic version like 0.3.0" >&2
	exit 1
}

if [ -z "$commit" ]; then
	echo "$base"
	exit 0
fi

dirty=
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || dirty=dirty

tag=$(git tag --points-at HEAD --list 'v[0-9]*' 2>/dev/null |
	grep -E '^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$' | sort -V | tail -n 1) || tag=
if [ -n "$tag" ]; then
	[ "${tag#v}" = "$base" ] ||
		echo "$0: warning: tag $tag is at HEAD but VERSION says $base; using the tag" >&2
	echo "${tag#v}${dirty:++$dirty}"
else
	short=$(git rev-parse --short HEAD)
	echo "$base+$short${dirty:+.$dirty}"
fi
