//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package c2s

import (
	"crypto/tls"
	"net"
	"syscall"

	"github.com/koi-im/koi/core/tlscb"
)

// rawConn returns the socket under nc (through TLS and the handshake
// recorder), or nil when there is none, as for a WebSocket stream.
func rawConn(nc net.Conn) syscall.RawConn {
	for {
		switch t := nc.(type) {
		case *tls.Conn:
			nc = t.NetConn()
		case *tlscb.HandshakeConn:
			nc = t.Conn
		case syscall.Conn:
			rc, err := t.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		default:
			return nil
		}
	}
}

// readable is the callback of syscall.RawConn.Read: it reports whether
// the socket has something to read (or an end or error to report), so
// that Read returns, and false, so that Read parks until the poller says
// the socket is ready, when there is nothing yet. It peeks: the byte stays
// for the real read. A static function, it costs no allocation per wait.
func readable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	// Data, the peer's end (0 bytes, no error) or an error that the next
	// read reports: the wait is over.
	return err != syscall.EAGAIN
}
