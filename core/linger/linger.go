// Package linger closes a stream's connection after a stream error
// without destroying the error on its way to the peer.
package linger

import (
	"crypto/tls"
	"io"
	"net"
	"time"
)

// drainMax bounds what a closing connection reads and throws away.
const drainMax = 1 << 20

// Close closes nc after a stream error. Closing a TCP socket that still
// has unread input makes the kernel answer with a reset, and a reset can
// discard the stream error just written before the peer reads it: exactly
// what happens to a peer whose stanza went over the size limit. So: end our
// side (FIN after the error), read and drop what the peer still sends until
// it closes or grace ends, then close.
func Close(nc net.Conn, grace time.Duration) {
	raw := nc
	if tc, ok := nc.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if cw, ok := raw.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		raw.SetReadDeadline(time.Now().Add(grace))
		io.CopyN(io.Discard, raw, drainMax)
	}
	nc.Close()
}
