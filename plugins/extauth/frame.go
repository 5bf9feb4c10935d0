package extauth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/koi-im/koi/sdk"
)

// The requests of ejabberd's external authentication protocol. Each is the
// operation and its fields joined by ':'; a program splits off the fields
// before the password, so only the password may contain ':'.
const (
	opAuth        = "auth"        // auth:User:Server:Password
	opIsUser      = "isuser"      // isuser:User:Server
	opSetPass     = "setpass"     // setpass:User:Server:Password
	opTryRegister = "tryregister" // tryregister:User:Server:Password
	opRemoveUser  = "removeuser"  // removeuser:User:Server
)

// maxRequest is the longest request a frame can carry: its length is a
// 16-bit number.
const maxRequest = 0xFFFF

// errProtocol marks a reply that is not the protocol's: the program is
// out of step and must be restarted.
var errProtocol = errors.New("protocol error")

// encodeRequest builds the frame of one request: a 2-byte big-endian
// length and op:user:host, then :password when there is one. User and
// host must not contain what a program splits on (':') or what
// line-oriented programs choke on (newlines, NUL); those are refused with
// sdk.ErrInvalid before anything reaches the program.
func encodeRequest(op, user, host string, password ...string) ([]byte, error) {
	if err := checkField("user", user); err != nil {
		return nil, err
	}
	if err := checkField("host", host); err != nil {
		return nil, err
	}
	fields := append([]string{op, user, host}, password...)
	body := strings.Join(fields, ":")
	if len(body) > maxRequest {
		return nil, fmt.Errorf("%w: extauth request of %d bytes is over the protocol's %d", sdk.ErrInvalid, len(body), maxRequest)
	}
	frame := make([]byte, 2, 2+len(body))
	binary.BigEndian.PutUint16(frame, uint16(len(body)))
	return append(frame, body...), nil
}

func checkField(name, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: empty %s", sdk.ErrInvalid, name)
	case strings.ContainsAny(v, ":\r\n\x00"):
		return fmt.Errorf("%w: %s %q contains ':', a newline or NUL, which the extauth protocol cannot carry", sdk.ErrInvalid, name, v)
	}
	return nil
}

// readReply reads one answer: a length that is always 2, then the result,
// 1 for success and 0 for failure. Anything else is errProtocol.
func readReply(r io.Reader) (bool, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return false, err
	}
	n, v := binary.BigEndian.Uint16(b[:2]), binary.BigEndian.Uint16(b[2:])
	switch {
	case n != 2:
		return false, fmt.Errorf("%w: reply length %d, want 2", errProtocol, n)
	case v > 1:
		return false, fmt.Errorf("%w: result %d, want 0 or 1", errProtocol, v)
	}
	return v == 1, nil
}
