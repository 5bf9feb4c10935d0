package c2s

import (
	"crypto/tls"
	"io"
	"net"
	"time"
)

// lingerDrainMax bounds what a closing connection reads and throws away.
const lingerDrainMax = 1 << 20

// lingerClose closes nc after a stream error without destroying the
// error. Closing a TCP socket that still has unread input makes the kernel
// answer with a reset, and a reset can discard the stream error we just
// wrote before the peer reads it: exactly what happens to a client whose
// stanza went over the size limit. So: end our side (FIN after the error),
// read and drop what the peer still sends until it closes or the grace
// period ends, then close.
func lingerClose(nc net.Conn, grace time.Duration) {
	raw := nc
	if tc, ok := nc.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if cw, ok := raw.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		raw.SetReadDeadline(time.Now().Add(grace))
		io.CopyN(io.Discard, raw, lingerDrainMax)
	}
	nc.Close()
}
