package tlscb

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// TLS 1.3 and tls-unique.
//
// RFC 5929's tls-unique is the first Finished message of the handshake and
// is not defined for TLS 1.3. OpenSSL still answers for it there with the
// client's Finished, so every OpenSSL-based client that asks its TLS
// library for "tls-unique" (Python's ssl, and so slixmpp 1.8, which always
// does) binds to the client Finished of a TLS 1.3 handshake, and so does
// ejabberd on the server side. That value is unique per connection: the
// Finished MAC covers the whole handshake transcript, fresh randoms and key
// shares included, so it is as good a binding as tls-unique ever was on TLS
// 1.2 with extended master secret. koi accepts it (without advertising it
// in XEP-0440, where it has no definition) so that these clients bind on
// their first attempt instead of failing twice and falling back.
//
// Go's crypto/tls does not expose the Finished messages of TLS 1.3, so koi
// reads the client's Finished off the wire: it records the client's first
// flight during the handshake, takes the client handshake traffic secret
// from the config's KeyLogWriter (kept in memory only for the moment
// between handshake and lookup, never written anywhere), and decrypts the
// one record that carries the Finished.

// maxRecorded bounds what a handshake may record: a ClientHello (a few KiB
// with post-quantum key shares, two with a HelloRetryRequest) and the
// client's encrypted Finished.
const maxRecorded = 64 << 10

// secretTTL bounds how long an unclaimed secret is kept: a handshake that
// failed after the key schedule started never claims its own.
const secretTTL = time.Minute

// maxSecrets bounds the table against a flood of half-done handshakes.
const maxSecrets = 50_000

// KeyLog is a tls.Config KeyLogWriter that keeps only the client handshake
// traffic secrets of TLS 1.3 handshakes, by client random, until Finished
// claims them. Safe for concurrent use.
type KeyLog struct {
	mu      sync.Mutex
	secrets map[[32]byte]keyLogEntry
}

type keyLogEntry struct {
	secret []byte
	added  time.Time
}

// NewKeyLog returns an empty KeyLog.
func NewKeyLog() *KeyLog { return &KeyLog{secrets: map[[32]byte]keyLogEntry{}} }

var clientHandshakeLabel = []byte("CLIENT_HANDSHAKE_TRAFFIC_SECRET ")

// Write takes one NSS key log line, as crypto/tls writes them.
func (k *KeyLog) Write(line []byte) (int, error) {
	n := len(line)
	rest, ok := bytes.CutPrefix(line, clientHandshakeLabel)
	if !ok {
		return n, nil
	}
	randHex, secretHex, ok := bytes.Cut(bytes.TrimSpace(rest), []byte(" "))
	var random [32]byte
	if !ok || hex.DecodedLen(len(randHex)) != len(random) {
		return n, nil
	}
	if _, err := hex.Decode(random[:], randHex); err != nil {
		return n, nil
	}
	secret := make([]byte, hex.DecodedLen(len(secretHex)))
	if _, err := hex.Decode(secret, secretHex); err != nil {
		return n, nil
	}
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.secrets) >= maxSecrets {
		for r, e := range k.secrets {
			if now.Sub(e.added) > secretTTL || len(k.secrets) >= maxSecrets {
				delete(k.secrets, r)
			}
		}
	}
	k.secrets[random] = keyLogEntry{secret, now}
	return n, nil
}

// take returns and forgets the secret of the handshake with random.
func (k *KeyLog) take(random [32]byte) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.secrets[random]
	delete(k.secrets, random)
	if !ok || time.Since(e.added) > secretTTL {
		return nil
	}
	return e.secret
}

// forget drops the secret of random, if any.
func (k *KeyLog) forget(random [32]byte) {
	k.mu.Lock()
	delete(k.secrets, random)
	k.mu.Unlock()
}

// HandshakeConn records what the client sends during the TLS handshake.
// Hand it to tls.Server in place of the raw connection, and call
// ClientFinished once the handshake is done.
type HandshakeConn struct {
	net.Conn
	// active is recording without the lock: after the handshake every read
	// of the session passes here and must not pay for a mutex.
	active    atomic.Bool
	mu        sync.Mutex
	recording bool
	buf       []byte
	// served is the certificate GetCertificate returned (RecordServed);
	// servedSet says it was called, nil then meaning unknown. fallback is
	// what Go sends when it does not ask (one certificate in the config).
	// resumed is the tls-server-end-point hash the resumed session's
	// ticket carries from the handshake that issued it.
	served    *tls.Certificate
	servedSet bool
	fallback  *tls.Certificate
	resumed   []byte
}

// NewHandshakeConn wraps nc and starts recording.
func NewHandshakeConn(nc net.Conn) *HandshakeConn {
	h := &HandshakeConn{Conn: nc, recording: true}
	h.active.Store(true)
	return h
}

// Read implements net.Conn.
func (h *HandshakeConn) Read(p []byte) (int, error) {
	n, err := h.Conn.Read(p)
	if n > 0 && h.active.Load() {
		h.mu.Lock()
		if h.recording {
			if len(h.buf)+n > maxRecorded {
				h.recording, h.buf = false, nil
				h.active.Store(false)
			} else {
				h.buf = append(h.buf, p[:n]...)
			}
		}
		h.mu.Unlock()
	}
	return n, err
}

// CloseWrite half-closes the underlying connection, when it can.
func (h *HandshakeConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("tlscb: the connection cannot half-close")
}

// ClientFinished stops recording and returns the verify data of the
// client's Finished message of a completed TLS 1.3 handshake, using the
// secret keys logged for it; nil when it cannot be had (another TLS
// version, a resumed session the client may bind differently, a record
// that does not decrypt). It always forgets the handshake's secret.
func (h *HandshakeConn) ClientFinished(cs tls.ConnectionState, keys *KeyLog) []byte {
	h.mu.Lock()
	rec := h.buf
	h.recording, h.buf = false, nil
	h.active.Store(false)
	h.mu.Unlock()
	if keys == nil {
		return nil
	}
	random, records, ok := clientFlight(rec)
	if !ok {
		return nil
	}
	secret := keys.take(random)
	if cs.Version != tls.VersionTLS13 || cs.DidResume || secret == nil || len(records) == 0 {
		return nil
	}
	fin, err := decryptFinished(cs.CipherSuite, secret, records[0])
	if err != nil {
		return nil
	}
	return fin
}

// Forget stops recording and drops the handshake's secret, for a handshake
// that failed.
func (h *HandshakeConn) Forget(keys *KeyLog) {
	h.mu.Lock()
	rec := h.buf
	h.recording, h.buf = false, nil
	h.active.Store(false)
	h.mu.Unlock()
	if random, _, ok := clientFlight(rec); ok && keys != nil {
		keys.forget(random)
	}
}

// clientFlight splits the client's handshake bytes into records and
// returns the client random of its first ClientHello and its encrypted
// records (application_data), in order.
func clientFlight(b []byte) (random [32]byte, encrypted [][]byte, ok bool) {
	const (
		typeHandshake = 22
		typeAppData   = 23
	)
	first := true
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if len(b) < 5+n {
			break
		}
		rec := b[:5+n]
		b = b[5+n:]
		switch rec[0] {
		case typeHandshake:
			if first {
				// handshake type(1) length(3) legacy_version(2) random(32)
				body := rec[5:]
				if len(body) < 38 || body[0] != 1 {
					return random, nil, false
				}
				copy(random[:], body[6:38])
				first, ok = false, true
			}
		case typeAppData:
			encrypted = append(encrypted, rec)
		}
	}
	return random, encrypted, ok
}

// decryptFinished decrypts the client's first encrypted record with the
// client handshake traffic secret (RFC 8446 §5.2, §7.3) and returns the
// verify data of the Finished message in it.
func decryptFinished(suite uint16, secret, record []byte) ([]byte, error) {
	var newHash func() hash.Hash
	var keyLen int
	var newAEAD func(key []byte) (cipher.AEAD, error)
	gcm := func(key []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		newHash, keyLen, newAEAD = sha256.New, 16, gcm
	case tls.TLS_AES_256_GCM_SHA384:
		newHash, keyLen, newAEAD = sha512.New384, 32, gcm
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		newHash, keyLen, newAEAD = sha256.New, 32, chacha20poly1305.New
	default:
		return nil, errors.New("tlscb: unknown TLS 1.3 cipher suite")
	}
	key, err := expandLabel(newHash, secret, "key", keyLen)
	if err != nil {
		return nil, err
	}
	iv, err := expandLabel(newHash, secret, "iv", 12)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	// The first record under this key: sequence number 0, so the nonce is
	// the IV itself.
	plain, err := aead.Open(nil, iv, record[5:], record[:5])
	if err != nil {
		return nil, err
	}
	// TLSInnerPlaintext: content, then the real content type, then zeros.
	plain = bytes.TrimRight(plain, "\x00")
	if len(plain) == 0 || plain[len(plain)-1] != 22 {
		return nil, errors.New("tlscb: the client's first encrypted record is not a handshake record")
	}
	plain = plain[:len(plain)-1]
	for len(plain) >= 4 {
		typ := plain[0]
		n := int(plain[1])<<16 | int(plain[2])<<8 | int(plain[3])
		if len(plain) < 4+n {
			break
		}
		if typ == 20 { // finished
			return bytes.Clone(plain[4 : 4+n]), nil
		}
		plain = plain[4+n:]
	}
	return nil, errors.New("tlscb: no Finished in the client's first encrypted record")
}

// expandLabel is HKDF-Expand-Label of RFC 8446 §7.1 with an empty context.
func expandLabel(h func() hash.Hash, secret []byte, label string, length int) ([]byte, error) {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0) // empty context
	return hkdf.Expand(h, secret, string(info), length)
}

// WithClientFinished adds the TLS 1.3 client Finished as the tls-unique
// data of b, accepted but not advertised (see the comment at the top of
// this file). It does nothing on other versions or without data.
func (b *Bindings) WithClientFinished(fin []byte) *Bindings {
	if b == nil || b.version != "1.3" || len(fin) == 0 {
		return b
	}
	b.data[Unique] = fin
	return b
}
