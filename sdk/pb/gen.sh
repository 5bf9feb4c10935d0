#!/bin/sh
# Regenerates the Go code for koi_backend.proto. Called by `make proto`.
# Needs protoc on PATH (Debian: apt-get install protobuf-compiler); installs
# pinned protoc-gen-go and protoc-gen-go-grpc into .cache/bin so the output
# does not depend on whatever generators happen to be installed.
set -eu

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/.cache/bin"

if ! command -v protoc >/dev/null 2>&1; then
	echo "gen.sh: protoc not found; install it (apt-get install protobuf-compiler)" >&2
	exit 1
fi

mkdir -p "$bin"
# go install with a version ignores the current module, so run it outside
# the repository to keep go.mod untouched.
if [ "$("$bin/protoc-gen-go" --version 2>/dev/null)" != "protoc-gen-go $PROTOC_GEN_GO_VERSION" ]; then
	(cd / && GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION")
fi
if [ "$("$bin/protoc-gen-go-grpc" --version 2>/dev/null)" != "protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION#v}" ]; then
	(cd / && GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION")
fi

cd "$here"
PATH="$bin:$PATH" protoc \
	--proto_path=. \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	koi_backend.proto
