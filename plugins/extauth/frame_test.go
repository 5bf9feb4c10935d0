package extauth

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/koi-im/koi/sdk"
)

func TestEncodeRequest(t *testing.T) {
	for _, c := range []struct {
		op, user, host string
		pw             []string
		want           string
	}{
		{opIsUser, "alice", "example.com", nil, "isuser:alice:example.com"},
		{opAuth, "alice", "example.com", []string{"a:b:c"}, "auth:alice:example.com:a:b:c"},
		{opSetPass, "zo\u00eb", "example.com", []string{"p\u00e4ss \u2713"}, "setpass:zo\u00eb:example.com:p\u00e4ss \u2713"},
		{opAuth, "alice", "example.com", []string{""}, "auth:alice:example.com:"},
	} {
		got, err := encodeRequest(c.op, c.user, c.host, c.pw...)
		if err != nil {
			t.Fatalf("encodeRequest(%q): %v", c.want, err)
		}
		if n := int(got[0])<<8 | int(got[1]); n != len(c.want) || string(got[2:]) != c.want {
			t.Errorf("encodeRequest = %d %q, want %d %q", n, got[2:], len(c.want), c.want)
		}
	}
}

func TestEncodeRequestRefuses(t *testing.T) {
	for _, c := range []struct{ user, host, pw string }{
		{"", "example.com", "pw"},
		{"alice", "", "pw"},
		{"al:ice", "example.com", "pw"},
		{"alice", "example.com:5222", "pw"},
		{"al\nice", "example.com", "pw"},
		{"alice", "example.com\r", "pw"},
		{"al\x00ice", "example.com", "pw"},
		{"alice", "example.com", strings.Repeat("x", maxRequest)},
	} {
		if _, err := encodeRequest(opAuth, c.user, c.host, c.pw); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("encodeRequest(%q, %q, %d bytes) = %v, want sdk.ErrInvalid", c.user, c.host, len(c.pw), err)
		}
	}
}

func TestReadReply(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want bool
		err  error
	}{
		{[]byte{0, 2, 0, 1}, true, nil},
		{[]byte{0, 2, 0, 0}, false, nil},
		{[]byte{0, 2, 0, 2}, false, errProtocol},
		{[]byte{0, 3, 0, 1}, false, errProtocol},
		{[]byte{0, 2, 0}, false, io.ErrUnexpectedEOF},
		{nil, false, io.EOF},
	} {
		got, err := readReply(bytes.NewReader(c.in))
		if got != c.want || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("readReply(%v) = %v, %v; want %v, %v", c.in, got, err, c.want, c.err)
		}
	}
}
