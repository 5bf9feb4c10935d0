#!/bin/sh
# ferretdb.sh: prints the path of a FerretDB binary for the tests of the
# MongoDB plugin, building it first if it is not in the cache.
#
# FerretDB speaks the MongoDB wire protocol on top of SQLite (or
# PostgreSQL); no MongoDB server is packaged for Debian. A plain
# `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds a
# binary that panics at start (the module zip lacks build/version/
# version.txt), so this builds from a copy of the module source with that
# file written. The binary is cached in .cache/ferretdb/ (gitignored) and
# keyed by version: the first build takes about a minute with an empty Go
# module cache, later runs only print the path.
#
# Usage: scripts/ferretdb.sh            # build if needed, print the path
#        FERRETDB_VERSION=v1.24.2 scripts/ferretdb.sh
set -eu

version=${FERRETDB_VERSION:-v1.24.2}
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.cache/ferretdb"
bin="$dir/ferretdb-$version"

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "version: $version"; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
# Test packages run in parallel and may all ask at once: one builds, the
# others wait for it and find the binary.
if command -v flock >/dev/null 2>&1 && [ -z "${FERRETDB_LOCKED:-}" ]; then
	FERRETDB_LOCKED=1 exec flock "$dir/.lock" "$0" "$@"
fi
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "version: $version"; then
	echo "$bin"
	exit 0
fi
echo "ferretdb.sh: building FerretDB $version into $dir (about a minute the first time)" >&2
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# go mod download outside any module, so that the repository's go.mod is
# left alone.
src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$version" |
	sed -n 's/.*"Dir": "\(.*\)",/\1/p')
if [ -z "$src" ] || [ ! -d "$src" ]; then
	echo "ferretdb.sh: cannot download github.com/FerretDB/FerretDB@$version" >&2
	exit 1
fi
cp -r "$src/." "$work/src"
chmod -R u+w "$work/src"
echo "$version" >"$work/src/build/version/version.txt"
(cd "$work/src" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" ./cmd/ferretdb) >&2
mv "$bin.tmp" "$bin"
"$bin" --version >/dev/null
echo "$bin"
