//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package c2s

import (
	"net"
	"syscall"
)

// rawConn finds no socket to wait on here: without a non-blocking peek,
// waitIdle reads the client's next byte instead.
func rawConn(net.Conn) syscall.RawConn { return nil }

func readable(uintptr) bool { return true }
