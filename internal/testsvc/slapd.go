package testsvc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The directory scripts/ldap/slapd.sh builds (see the script for the data).
const (
	SlapdBase       = "dc=example,dc=org"
	SlapdPeople     = "ou=people,dc=example,dc=org"
	SlapdGroups     = "ou=groups,dc=example,dc=org"
	SlapdAdminDN    = "cn=admin,dc=example,dc=org"
	SlapdAdminPW    = "adminpw"
	SlapdServiceDN  = "cn=koi,ou=services,dc=example,dc=org"
	SlapdServicePW  = "koipw"
	SlapdReferralDN = "ou=elsewhere,dc=example,dc=org"
	SlapdBulkPW     = "bulkpw"
)

// SlapdOptions shape the directory.
type SlapdOptions struct {
	// BulkUsers adds that many users, bulk0000 and on with the password
	// SlapdBulkPW, in the group cn=bulk, and limits unpaged searches to
	// 1000 entries, as Active Directory does.
	BulkUsers int
}

// Slapd is a running OpenLDAP server on loopback.
type Slapd struct {
	Dir      string
	URL      string // ldap://127.0.0.1:PORT (StartTLS available)
	LDAPSURL string // ldaps://127.0.0.1:PORT
	CAFile   string // the self-signed certificate, for 127.0.0.1 and localhost
	PID      int    // slapd itself
	p        *process
}

// StartSlapd starts slapd with its data in dir (which it replaces) on two
// free loopback ports, and waits until the data is loaded.
func StartSlapd(ctx context.Context, dir string, opt SlapdOptions) (*Slapd, error) {
	var lastErr error
	// A port found free may be taken before slapd binds it: try again.
	for range 3 {
		port, sport, err := freePorts()
		if err != nil {
			return nil, err
		}
		env := []string{
			fmt.Sprintf("LDAP_PORT=%d", port), fmt.Sprintf("LDAPS_PORT=%d", sport),
			fmt.Sprintf("BULK_USERS=%d", opt.BulkUsers),
		}
		p, f, err := startScript(ctx, "slapd", "slapd.sh", env, dir)
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "did not start") && ctx.Err() == nil {
				continue
			}
			return nil, err
		}
		return &Slapd{Dir: dir, URL: f["ldap"], LDAPSURL: f["ldaps"], CAFile: filepath.Join(dir, "cert.pem"), PID: p.daemon, p: p}, nil
	}
	return nil, lastErr
}

// Stop stops slapd.
func (s *Slapd) Stop() error { return s.p.stop() }

// Pause freezes slapd (SIGSTOP): it keeps accepting TCP connections (the
// kernel does) but answers nothing, like an overloaded server. It returns
// once the process is stopped.
func (s *Slapd) Pause() error {
	if err := syscall.Kill(s.PID, syscall.SIGSTOP); err != nil {
		return err
	}
	for range 200 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.PID))
		if err != nil {
			return err
		}
		// The state follows the command name, which is in parentheses.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && len(b) > i+2 && (b[i+2] == 'T' || b[i+2] == 't') {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("slapd (pid %d) did not stop", s.PID)
}

// Resume undoes Pause.
func (s *Slapd) Resume() error { return syscall.Kill(s.PID, syscall.SIGCONT) }

// freePorts returns two loopback ports that were free a moment ago.
func freePorts() (int, int, error) {
	var ports [2]int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}
