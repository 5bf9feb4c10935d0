// Package pb holds the Go code generated from koi_backend.proto, the wire
// protocol between koi and its backend plugins. Plugin authors use package
// sdk instead; regenerate with gen.sh.
package pb
