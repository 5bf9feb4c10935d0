package testsvc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The domain scripts/ldap/samba-ad.sh builds (see the script for the data).
const (
	ADRealm   = "EXAMPLE.ORG"
	ADDomain  = "EXAMPLE"
	ADBase    = "DC=example,DC=org"
	ADUsers   = "CN=Users,DC=example,DC=org"
	ADAdminPW = "Adm1nPassw0rd!"
	// ADAdmin binds as the domain administrator (a UPN).
	ADAdmin = "Administrator@example.org"
)

// ADPasswords are the test users' passwords.
var ADPasswords = map[string]string{
	"alice": "AlicePw1!", "bob": "BobPw1!x", "carol": "CarolPw1!", "dave": "DavePw1!x", "jörg": "JoergPw1!",
	"svc-koi": "SvcKoiPw1!",
}

// sambaDir is where the domain controller runs. It is fixed: Samba's files
// hold absolute paths, and the script's provisioning cache is keyed by the
// directory. Only one instance can run per machine anyway (fixed ports).
const (
	sambaDir  = "/tmp/koi-samba-ad/dc"
	sambaLock = "/tmp/koi-samba-ad.lock"
)

// SambaAD is a running Samba AD domain controller on 127.0.0.1.
type SambaAD struct {
	Dir      string
	LDAPSURL string // ldaps://127.0.0.1:636
	LDAPURL  string // ldap://127.0.0.1:389 (StartTLS; plain binds refused)
	CAFile   string
	// Setup says how the domain was made: restored from the cache or
	// provisioned cold, with timings.
	Setup string
	p     *process
	lock  *os.File
}

// StartSambaAD starts the domain controller. Its ports are fixed, so test
// binaries that run at the same time take turns: StartSambaAD waits (up to
// ctx) for a machine-wide lock that Stop releases.
func StartSambaAD(ctx context.Context) (*SambaAD, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: a Samba AD domain controller needs root", ErrMissing)
	}
	lock, err := flock(ctx, sambaLock)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(sambaDir), 0o755); err != nil {
		lock.Close()
		return nil, err
	}
	p, f, err := startScript(ctx, "samba AD", "samba-ad.sh", nil, sambaDir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &SambaAD{
		Dir: sambaDir, LDAPSURL: f["ldaps"], LDAPURL: f["ldap"], CAFile: filepath.Join(sambaDir, "tls-cert.pem"),
		Setup: fmt.Sprintf("setup %sms, start %sms", f["setup_ms"], f["start_ms"]), p: p, lock: lock,
	}, nil
}

// Stop stops Samba and lets the next test binary have it.
func (s *SambaAD) Stop() error {
	err := s.p.stop()
	s.lock.Close()
	return err
}

// flock takes an exclusive lock on path, waiting until ctx ends.
func flock(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s (another test binary runs Samba): %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
