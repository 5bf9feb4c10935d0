package component

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// Digest is the handshake a component sends for a stream: the lowercase
// hex SHA-1 of the stream id followed by the secret (XEP-0114 §3).
func Digest(streamID, secret string) string {
	sum := sha1.Sum([]byte(streamID + secret))
	return hex.EncodeToString(sum[:])
}

// verifyHandshake reports whether got is the handshake for streamID and
// secret. Hex digits may come in either case; the comparison takes the
// same time wherever the first difference is.
func verifyHandshake(streamID, secret, got string) bool {
	want := Digest(streamID, secret)
	got = strings.ToLower(strings.TrimSpace(got))
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
