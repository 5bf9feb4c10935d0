#!/bin/sh
# versitygw.sh: prints the path of a Versity S3 Gateway binary for the
# tests of the upload service's S3 store, building it first if it is not in
# the cache.
#
# versitygw (Apache 2.0) is an S3 server over a POSIX directory; none is
# packaged for Debian, and MinIO's server is AGPL. It is built with
# `go install` from the Go module proxy and cached in .cache/versitygw/
# (gitignored), keyed by version: the first build takes a few minutes (up
# to a quarter of an hour on a busy two-core machine), later runs only
# print the path.
#
# Usage: scripts/versitygw.sh            # build if needed, print the path
#        VERSITYGW_VERSION=v1.8.0 scripts/versitygw.sh
set -eu

version=${VERSITYGW_VERSION:-v1.8.0}
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.cache/versitygw"
bin="$dir/versitygw-$version"

if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
# Test packages run in parallel and may all ask at once: one builds, the
# others wait for it and find the binary.
if command -v flock >/dev/null 2>&1 && [ -z "${VERSITYGW_LOCKED:-}" ]; then
	VERSITYGW_LOCKED=1 exec flock "$dir/.lock" "$0" "$@"
fi
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi
echo "versitygw.sh: building versitygw $version into $dir (a few minutes the first time)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Outside any module, so that the repository's go.mod is left alone.
(cd "$work" && GOBIN="$work" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath \
	"github.com/versity/versitygw/cmd/versitygw@$version") >&2
mv "$work/versitygw" "$bin"
"$bin" --version >/dev/null
echo "$bin"
