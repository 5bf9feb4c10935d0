package upload

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"hash"
	"net/url"
	"strconv"
	"time"
)

// Slot is one permission to upload: which bytes may be PUT under which id,
// until when. The PUT URL carries it, signed, so the HTTP side checks a
// request without asking anyone.
type Slot struct {
	ID          string // random; the file's key in the store
	Name        string // the file name in the URLs (urlName of the announced one)
	Filename    string // the announced file name, for the download's Content-Disposition
	Size        int64  // the exact Content-Length the PUT must have
	ContentType string // the Content-Type the PUT must have; "" when none was announced
	Expires     time.Time
}

// idBytes is the entropy of a slot id: the GET URL is the only secret
// guarding a file (XEP-0363 §8), so it must not be guessable.
const idBytes = 16

// idEncoding spells ids in lowercase base32: safe in URLs, object keys and
// case-insensitive file systems.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// idLen is the length of an encoded id.
var idLen = idEncoding.EncodedLen(idBytes)

func newID() string {
	b := make([]byte, idBytes)
	rand.Read(b)
	return idEncoding.EncodeToString(b)
}

// validID reports whether s is shaped like an id newID made. Requests
// with anything else never reach the store, so a path cannot name a file
// outside the store's own layout.
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// Query parameters of a PUT URL.
const (
	qExpires = "e"
	qSize    = "s"
	qType    = "t"
	qName    = "n"
	qSig     = "sig"
)

var (
	errBadSignature = errors.New("the upload URL's signature does not match")
	errExpired      = errors.New("the upload slot has expired; request a new one")
)

// signer signs and checks slots with the server's upload key.
type signer struct{ key []byte }

func (s signer) sum(sl Slot) []byte {
	mac := hmac.New(sha256.New, s.key)
	// Each field length-prefixed, so that no two slots write the same
	// bytes whatever their fields contain.
	field := func(h hash.Hash, v string) {
		h.Write([]byte(strconv.Itoa(len(v))))
		h.Write([]byte{':'})
		h.Write([]byte(v))
	}
	field(mac, "koi-upload-put-1")
	field(mac, sl.ID)
	field(mac, sl.Name)
	field(mac, sl.Filename)
	field(mac, strconv.FormatInt(sl.Size, 10))
	field(mac, sl.ContentType)
	field(mac, strconv.FormatInt(sl.Expires.Unix(), 10))
	return mac.Sum(nil)
}

// query is the signed query string of sl's PUT URL.
func (s signer) query(sl Slot) string {
	q := url.Values{}
	q.Set(qExpires, strconv.FormatInt(sl.Expires.Unix(), 10))
	q.Set(qSize, strconv.FormatInt(sl.Size, 10))
	if sl.ContentType != "" {
		q.Set(qType, sl.ContentType)
	}
	if sl.Filename != sl.Name {
		q.Set(qName, sl.Filename)
	}
	q.Set(qSig, base64.RawURLEncoding.EncodeToString(s.sum(sl)))
	return q.Encode()
}

// verify returns the slot a PUT URL's id, name and query describe, if its
// signature is right and it has not expired at now.
func (s signer) verify(id, name string, q url.Values, now time.Time) (Slot, error) {
	exp, err1 := strconv.ParseInt(q.Get(qExpires), 10, 64)
	size, err2 := strconv.ParseInt(q.Get(qSize), 10, 64)
	sig, err3 := base64.RawURLEncoding.DecodeString(q.Get(qSig))
	if err1 != nil || err2 != nil || err3 != nil || size < 0 || len(q[qType]) > 1 || len(q[qName]) > 1 {
		return Slot{}, errBadSignature
	}
	sl := Slot{ID: id, Name: name, Filename: name, Size: size, ContentType: q.Get(qType), Expires: time.Unix(exp, 0)}
	if q.Has(qName) {
		sl.Filename = q.Get(qName)
	}
	if !hmac.Equal(sig, s.sum(sl)) {
		return Slot{}, errBadSignature
	}
	if !now.Before(sl.Expires) {
		return Slot{}, errExpired
	}
	return sl, nil
}
