package ldapbackend

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/koi-im/koi/internal/testsvc"
)

// The tests run against a real OpenLDAP slapd started once for the
// package (with 1100 bulk users and AD's 1000-entry limit on unpaged
// searches), and a Samba AD domain controller for TestActiveDirectory.
var (
	slapd    *testsvc.Slapd
	slapdErr error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "koi-ldap-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	slapd, slapdErr = testsvc.StartSlapd(ctx, dir, testsvc.SlapdOptions{BulkUsers: 1100})
	cancel()
	code := m.Run()
	if slapd != nil {
		if err := slapd.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping slapd:", err)
		}
	}
	return code
}

// needSlapd skips (or under CI fails) a test when slapd could not start.
func needSlapd(t testing.TB) *testsvc.Slapd {
	t.Helper()
	testsvc.Require(t, slapdErr)
	return slapd
}

// slapdSettings is a search-then-bind setup over LDAPS with the test CA,
// as an operator would write it for OpenLDAP.
func slapdSettings(t testing.TB) Settings {
	sd := needSlapd(t)
	return Settings{
		URLs:              []string{sd.LDAPSURL},
		CAFile:            sd.CAFile,
		BaseDN:            testsvc.SlapdBase,
		BindDN:            testsvc.SlapdServiceDN,
		BindPassword:      testsvc.SlapdServicePW,
		UserFilter:        "(&(objectClass=inetOrgPerson)(uid={user}))",
		UsernameAttribute: "uid",
	}
}

// open builds a Directory for s, closed at cleanup.
func open(t testing.TB, s Settings) *Directory {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := Open(ctx, s, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// admin connects to slapd as its root DN, to change data in a test.
func admin(t testing.TB) *ldap.Conn {
	t.Helper()
	sd := needSlapd(t)
	c, err := ldap.DialURL(sd.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(testsvc.SlapdAdminDN, testsvc.SlapdAdminPW); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkLogin asserts CheckPassword's answer.
func checkLogin(t *testing.T, d *Directory, user, password string, want bool) {
	t.Helper()
	ok, err := d.CheckPassword(ctxT(t), "localhost", user, password)
	if err != nil {
		t.Fatalf("CheckPassword(%q, %q): %v", user, password, err)
	}
	if ok != want {
		t.Fatalf("CheckPassword(%q, %q) = %v, want %v", user, password, ok, want)
	}
}
