package ldapbackend

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/koi-im/koi/internal/testsvc"
	"github.com/koi-im/koi/sdk"
)

func TestCapabilities(t *testing.T) {
	s := slapdSettings(t)
	d := open(t, s)
	c := d.Capabilities()
	if c.Auth.Access != sdk.AccessRead || c.Auth.SCRAM || c.VCard != sdk.AccessRead || c.Roster != sdk.AccessNone {
		t.Errorf("capabilities without shared groups = %+v", c)
	}
	s.SharedGroups = []string{"cn=xmpp-users," + testsvc.SlapdGroups}
	if c := open(t, s).Capabilities(); c.Roster != sdk.AccessRead || c.Offline != sdk.AccessNone || c.Private != sdk.AccessNone {
		t.Errorf("capabilities with shared groups = %+v", c)
	}
	if _, err := d.SCRAMCredentials(ctxT(t), "localhost", "alice", sdk.HashSHA256); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("SCRAMCredentials = %v, want ErrNotFound", err)
	}
	if err := d.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// The ways to reach OpenLDAP and to check a password all log the same
// users in and keep the same people out.
func TestOpenLDAPLogin(t *testing.T) {
	sd := needSlapd(t)
	base := slapdSettings(t)
	setups := map[string]func(s *Settings){
		"search then bind over LDAPS": func(s *Settings) {},
		"StartTLS": func(s *Settings) {
			s.URLs, s.StartTLS = []string{sd.URL}, true
		},
		"plain LDAP, explicitly allowed": func(s *Settings) {
			s.URLs, s.AllowPlaintext = []string{sd.URL}, true
		},
		"direct bind with a DN template": func(s *Settings) {
			s.UserDNTemplate = "uid={user}," + testsvc.SlapdPeople
		},
		"anonymous search": func(s *Settings) {
			s.BindDN, s.BindPassword = "", ""
		},
		"certificate checked for localhost": func(s *Settings) {
			s.TLSServerName = "localhost"
		},
		"lab: certificate not checked": func(s *Settings) {
			s.CAFile, s.InsecureSkipVerify = "", true
		},
	}
	for name, change := range setups {
		t.Run(name, func(t *testing.T) {
			s := base
			change(&s)
			d := open(t, s)
			checkLogin(t, d, "alice", "alicepw", true)
			checkLogin(t, d, "bob", "bobpw", true)
			checkLogin(t, d, "jürgen", "jürgenpw", true)
			checkLogin(t, d, "alice", "bobpw", false)
			checkLogin(t, d, "alice", "Alicepw", false)
			checkLogin(t, d, "nobody", "alicepw", false)
			// A pooled bind connection keeps working after failures.
			checkLogin(t, d, "carol", "carolpw", true)
		})
	}
}

func TestUserExists(t *testing.T) {
	d := open(t, slapdSettings(t))
	for _, tc := range []struct {
		user string
		want bool
	}{
		{"alice", true}, {"jürgen", true}, {"dave", true}, {"nobody", false},
		{"*", false}, {"al*", false}, {"alice)(uid=*", false},
	} {
		ok, err := d.UserExists(ctxT(t), "localhost", tc.user)
		if err != nil || ok != tc.want {
			t.Errorf("UserExists(%q) = %v, %v; want %v", tc.user, ok, err, tc.want)
		}
	}
	for _, hu := range [][2]string{{"localhost", ""}, {"", "alice"}} {
		if ok, err := d.UserExists(ctxT(t), hu[0], hu[1]); ok || !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("UserExists(%q, %q) = %v, %v; want ErrInvalid", hu[0], hu[1], ok, err)
		}
	}
}

// Usernames built to widen the search, and passwords built to skip the
// check, never log anyone in and never break the backend.
func TestBadInput(t *testing.T) {
	d := open(t, slapdSettings(t))
	users := []string{
		"*", "a*", "*e", ")(uid=*", "alice)(uid=*", "*)(|(uid=*", "alice)(|(objectClass=*)", `\2a`, `alice\00`,
		"alice\x00", "\x00", "alice\x00bob", "al\\ice", "(uid=alice)", " alice", "alice ", "\talice", "ali\nce",
		"\xff\xfe", strings.Repeat("a", 5000), "uid=alice," + testsvc.SlapdPeople, "👩‍💻", "alice@example.org",
	}
	for _, u := range users {
		for _, pw := range []string{"alicepw", "*", "", " "} {
			ok, err := d.CheckPassword(ctxT(t), "localhost", u, pw)
			if ok {
				t.Errorf("CheckPassword(%q, %q) logged in", u, pw)
			}
			if err != nil && !errors.Is(err, sdk.ErrInvalid) {
				t.Errorf("CheckPassword(%q, %q): %v", u, pw, err)
			}
		}
		if ok, err := d.UserExists(ctxT(t), "localhost", u); ok || err != nil {
			t.Errorf("UserExists(%q) = %v, %v", u, ok, err)
		}
	}
	for _, pw := range []string{"", " ", "   ", "\t", "\x00", "alicepw\x00", "\x00alicepw", "*", "alicepw ", " alicepw"} {
		checkLogin(t, d, "alice", pw, false)
	}
	// Upper case reaches the same account, as the core's normalisation does.
	checkLogin(t, d, "ALICE", "alicepw", true)
}

// The required group: the memberof overlay sees direct membership only,
// a walk through the member attributes sees nested groups too.
func TestRequiredGroup(t *testing.T) {
	group := "cn=xmpp-users," + testsvc.SlapdGroups
	for _, tc := range []struct {
		mode  string
		carol bool // in xmpp-admins, which is inside xmpp-users
	}{
		{MembershipMemberOf, false},
		{MembershipMember, true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			s := slapdSettings(t)
			s.RequiredGroup, s.GroupMembership = group, tc.mode
			d := open(t, s)
			checkLogin(t, d, "alice", "alicepw", true)
			checkLogin(t, d, "jürgen", "jürgenpw", true)
			checkLogin(t, d, "carol", "carolpw", tc.carol)
			checkLogin(t, d, "dave", "davepw", false) // in no group
			for user, want := range map[string]bool{"alice": true, "carol": tc.carol, "dave": false} {
				if ok, err := d.UserExists(ctxT(t), "localhost", user); ok != want || err != nil {
					t.Errorf("UserExists(%s) = %v, %v; want %v", user, ok, err, want)
				}
			}
		})
	}
}

// The local part can come from mail (the part before @).
func TestUsernameFromMail(t *testing.T) {
	s := slapdSettings(t)
	s.UserFilter, s.UsernameAttribute = "(&(objectClass=inetOrgPerson)(mail={user}@*))", "mail"
	d := open(t, s)
	checkLogin(t, d, "alice", "alicepw", true)
	checkLogin(t, d, "juergen", "jürgenpw", true) // mail juergen@example.org
	checkLogin(t, d, "jürgen", "jürgenpw", false) // no such mail
	checkLogin(t, d, "alice", "wrong", false)
}

// A filter that finds several entries for one name refuses the login.
func TestAmbiguousUser(t *testing.T) {
	s := slapdSettings(t)
	s.UserFilter, s.UsernameAttribute = "(sn={user})", "sn" // 1100 bulk users have sn "bulk"
	d := open(t, s)
	ok, err := d.CheckPassword(ctxT(t), "localhost", "bulk", "x")
	if ok || !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), "must single out one") {
		t.Fatalf("ambiguous user: %v, %v", ok, err)
	}
	checkLogin(t, d, "alice", "alicepw", true)
}

func TestConfigurationFaults(t *testing.T) {
	sd := needSlapd(t)
	t.Run("service account refused", func(t *testing.T) {
		s := slapdSettings(t)
		s.BindPassword = "wrong"
		_, err := Open(ctxT(t), s, nil)
		if !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), "bind_dn") {
			t.Fatalf("Open with a wrong service password: %v", err)
		}
	})
	t.Run("certificate not trusted", func(t *testing.T) {
		s := slapdSettings(t)
		s.CAFile = "" // the system roots do not know the test CA
		d := open(t, s)
		ok, err := d.CheckPassword(ctxT(t), "localhost", "alice", "alicepw")
		if ok || !errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("untrusted certificate: %v, %v", ok, err)
		}
	})
	t.Run("certificate for another name", func(t *testing.T) {
		s := slapdSettings(t)
		s.TLSServerName = "dc1.example.org"
		d := open(t, s)
		if ok, err := d.CheckPassword(ctxT(t), "localhost", "alice", "alicepw"); ok || !errors.Is(err, sdk.ErrUnavailable) {
			t.Fatalf("wrong server name: %v, %v", ok, err)
		}
	})
	t.Run("StartTLS on an LDAPS port", func(t *testing.T) {
		s := slapdSettings(t)
		s.URLs, s.StartTLS = []string{strings.Replace(sd.LDAPSURL, "ldaps:", "ldap:", 1)}, true
		s.ConnectTimeout = time.Second
		d := open(t, s)
		if ok, err := d.CheckPassword(ctxT(t), "localhost", "alice", "alicepw"); ok || !errors.Is(err, sdk.ErrUnavailable) {
			t.Fatalf("StartTLS to an LDAPS port: %v, %v", ok, err)
		}
	})
}

// A referral instead of entries is a clear temporary error, never a login;
// continuation references inside the search base are skipped.
func TestReferral(t *testing.T) {
	s := slapdSettings(t)
	d := open(t, s)
	// The base holds a referral object: the search returns a reference too.
	req := ldap.NewSearchRequest(testsvc.SlapdBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=alice)", []string{"1.1"}, nil)
	var refs []string
	if err := d.search.with(ctxT(t), func(c *ldap.Conn) error {
		r, err := c.Search(req)
		if r != nil {
			refs = r.Referrals
		}
		return err
	}); err != nil || len(refs) == 0 {
		t.Fatalf("expected a continuation reference from slapd: %v, %v", refs, err)
	}
	checkLogin(t, d, "alice", "alicepw", true)

	s.BaseDN = testsvc.SlapdReferralDN
	d = open(t, s)
	for _, f := range []func() (bool, error){
		func() (bool, error) { return d.CheckPassword(ctxT(t), "localhost", "alice", "alicepw") },
		func() (bool, error) { return d.UserExists(ctxT(t), "localhost", "alice") },
	} {
		ok, err := f()
		if ok || !errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), "referral") {
			t.Errorf("base DN at a referral: %v, %v", ok, err)
		}
	}
}

// closedPort is a loopback port nobody listens on.
func closedPort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestFailover(t *testing.T) {
	s := slapdSettings(t)
	s.URLs = []string{"ldaps://" + closedPort(t), s.URLs[0]}
	d := open(t, s)
	checkLogin(t, d, "alice", "alicepw", true)
	checkLogin(t, d, "bob", "bobpw", true)
	checkLogin(t, d, "bob", "alicepw", false)
}

func TestDirectoryDown(t *testing.T) {
	s := slapdSettings(t)
	s.URLs = []string{"ldaps://" + closedPort(t), "ldaps://" + closedPort(t)}
	d := open(t, s) // koi starts while the directory is down
	start := time.Now()
	ok, err := d.CheckPassword(ctxT(t), "localhost", "alice", "alicepw")
	if ok || !errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), "no directory server answered") {
		t.Fatalf("directory down: %v, %v", ok, err)
	}
	if _, err := d.UserExists(ctxT(t), "localhost", "alice"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("UserExists with the directory down: %v", err)
	}
	if err := d.Ping(ctxT(t)); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("Ping with the directory down: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("failing took %v", el)
	}
}

// A directory that accepts connections but answers nothing: every call
// ends after the timeouts with a temporary error, and the backend works
// again once the directory does.
func TestSlowDirectory(t *testing.T) {
	needSlapd(t)
	sd, err := testsvc.StartSlapd(ctxT(t), t.TempDir(), testsvc.SlapdOptions{})
	testsvc.Require(t, err)
	defer sd.Stop()
	s := slapdSettings(t)
	s.URLs, s.CAFile = []string{sd.LDAPSURL}, sd.CAFile
	s.ConnectTimeout, s.Timeout = 400*time.Millisecond, 400*time.Millisecond
	for _, tc := range []struct {
		name   string
		change func(s *Settings)
	}{
		{"LDAPS", func(s *Settings) {}},
		{"StartTLS", func(s *Settings) { s.URLs, s.StartTLS = []string{sd.URL}, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := s
			tc.change(&s)
			d := open(t, s)
			checkLogin(t, d, "alice", "alicepw", true) // a pooled connection now exists
			if err := sd.Pause(); err != nil {
				t.Fatal(err)
			}
			paused := true
			defer func() {
				if paused {
					sd.Resume()
				}
			}()
			for i := 0; i < 2; i++ { // the pooled connection, then a new one
				start := time.Now()
				ok, err := d.CheckPassword(ctxT(t), "localhost", "alice", "alicepw")
				if ok || !errors.Is(err, sdk.ErrUnavailable) {
					t.Fatalf("slow directory, call %d: %v, %v", i, ok, err)
				}
				if el := time.Since(start); el > 3*time.Second {
					t.Fatalf("slow directory, call %d took %v", i, el)
				}
			}
			// The caller's deadline wins over the backend's own timeouts.
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			start := time.Now()
			_, err := d.UserExists(ctx, "localhost", "alice")
			cancel()
			if !errors.Is(err, sdk.ErrUnavailable) || time.Since(start) > time.Second {
				t.Fatalf("UserExists with a 100ms deadline: %v after %v", err, time.Since(start))
			}
			sd.Resume()
			paused = false
			checkLogin(t, d, "alice", "alicepw", true)
		})
	}
}

// The test directory allows unauthenticated binds (slapd's
// bind_anon_dn): a simple bind with alice's DN and no password
// succeeds there, as it does on directories set up so. An empty password
// must still log nobody in.
func TestEmptyPasswordOnPermissiveDirectory(t *testing.T) {
	sd := needSlapd(t)
	c, err := ldap.DialURL(sd.URL)
	if err != nil {
		t.Fatalf("dial %s: %v", sd.URL, err)
	}
	defer c.Close()
	dn := "uid=alice," + testsvc.SlapdPeople
	if err := c.UnauthenticatedBind(dn); err != nil {
		t.Fatalf("the directory refuses an unauthenticated bind as %s (%v): it no longer tests the guard", dn, err)
	}
	d := open(t, slapdSettings(t))
	checkLogin(t, d, "alice", "", false)
	checkLogin(t, d, "alice", "alicepw", true)
}
