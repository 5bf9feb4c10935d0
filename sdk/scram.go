package sdk

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"hash"

	"github.com/xdg-go/stringprep"
)

// DefaultSCRAMIterations is the PBKDF2 iteration count used when a backend
// does not configure one (RFC 7677 asks for at least 4096).
const DefaultSCRAMIterations = 4096

func hashFunc(name string) (func() hash.Hash, error) {
	switch name {
	case HashSHA1:
		return sha1.New, nil
	case HashSHA256:
		return sha256.New, nil
	}
	return nil, fmt.Errorf("%w: unknown SCRAM hash %q", ErrInvalid, name)
}

// NewSCRAMCredentials derives SCRAM credentials for password with a fresh
// random salt. Backends store these instead of the password.
func NewSCRAMCredentials(password, hashName string, iterations int) (SCRAMCredentials, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return SCRAMCredentials{}, fmt.Errorf("salt: %w", err)
	}
	return DeriveSCRAMCredentials(password, hashName, salt, iterations)
}

// DeriveSCRAMCredentials computes StoredKey and ServerKey for password, salt
// and iterations as RFC 5802 §3 defines them. The password is prepared with
// SASLprep first, as a SCRAM client does.
func DeriveSCRAMCredentials(password, hashName string, salt []byte, iterations int) (SCRAMCredentials, error) {
	h, err := hashFunc(hashName)
	if err != nil {
		return SCRAMCredentials{}, err
	}
	if iterations < 1 {
		return SCRAMCredentials{}, fmt.Errorf("%w: iteration count %d", ErrInvalid, iterations)
	}
	prepped, err := stringprep.SASLprep.Prepare(password)
	if err != nil {
		return SCRAMCredentials{}, fmt.Errorf("%w: password: %v", ErrInvalid, err)
	}
	salted, err := pbkdf2.Key(h, prepped, salt, iterations, h().Size())
	if err != nil {
		return SCRAMCredentials{}, fmt.Errorf("%w: pbkdf2: %v", ErrInvalid, err)
	}
	clientKey := hmacSum(h, salted, "Client Key")
	sk := h()
	sk.Write(clientKey)
	return SCRAMCredentials{
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  sk.Sum(nil),
		ServerKey:  hmacSum(h, salted, "Server Key"),
	}, nil
}

// CheckSCRAMPassword reports whether password matches stored credentials.
// It lets a backend that keeps only SCRAM keys verify SASL PLAIN.
func CheckSCRAMPassword(password, hashName string, c SCRAMCredentials) bool {
	got, err := DeriveSCRAMCredentials(password, hashName, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got.StoredKey, c.StoredKey) == 1
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
