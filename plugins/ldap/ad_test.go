package ldapbackend

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/internal/testsvc"
	"github.com/koi-im/koi/sdk"
)

// TestActiveDirectory runs against a Samba AD domain controller: real AD
// semantics for UPN and DOMAIN\user binds, userAccountControl, nested
// groups through the 1.2.840.113556.1.4.1941 matching rule, LDAPS, and
// plain binds refused.
func TestActiveDirectory(t *testing.T) {
	ctx := ctxT(t)
	start := time.Now()
	ad, err := testsvc.StartSambaAD(ctx)
	testsvc.Require(t, err)
	defer func() {
		if err := ad.Stop(); err != nil {
			t.Errorf("stopping samba: %v", err)
		}
	}()
	t.Logf("samba AD ready after %v (%s)", time.Since(start).Round(time.Millisecond), ad.Setup)
	pw := testsvc.ADPasswords
	group := "CN=xmpp-users," + testsvc.ADUsers
	base := Settings{
		URLs: []string{ad.LDAPSURL}, CAFile: ad.CAFile, TLSServerName: "dc1.example.org",
		BaseDN:            testsvc.ADBase, // the domain root: searches return referrals too
		BindDN:            `EXAMPLE\bob`,  // a plain domain user can search
		BindPassword:      pw["bob"],
		UserFilter:        "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))",
		UsernameAttribute: "sAMAccountName",
		RequiredGroup:     group,
		GroupMembership:   MembershipAD,
	}

	t.Run("binds", func(t *testing.T) {
		for name, change := range map[string]func(s *Settings){
			"search then bind as the DN":  func(s *Settings) {},
			"direct bind as the UPN":      func(s *Settings) { s.UserDNTemplate = "{user}@EXAMPLE.ORG" },
			`direct bind as DOMAIN\user`:  func(s *Settings) { s.UserDNTemplate = `EXAMPLE\{user}` },
			"StartTLS on 389":             func(s *Settings) { s.URLs, s.StartTLS = []string{ad.LDAPURL}, true },
			"service account as UPN":      func(s *Settings) { s.BindDN = "bob@example.org" },
			"name from userPrincipalName": func(s *Settings) { s.UsernameAttribute = "userPrincipalName" },
			"failover from a dead DC":     func(s *Settings) { s.URLs = []string{"ldaps://" + closedPort(t), ad.LDAPSURL} },
			"certificate checked for 127": func(s *Settings) { s.TLSServerName = "" },
		} {
			t.Run(name, func(t *testing.T) {
				s := base
				change(&s)
				d := open(t, s)
				checkLogin(t, d, "alice", pw["alice"], true)
				checkLogin(t, d, "ALICE", pw["alice"], true)
				checkLogin(t, d, "jörg", pw["jörg"], true)
				checkLogin(t, d, "carol", pw["carol"], true) // nested: xmpp-admins in xmpp-users
				checkLogin(t, d, "alice", pw["carol"], false)
				checkLogin(t, d, "alice", "", false)
				checkLogin(t, d, "bob", pw["bob"], false)   // not in the group
				checkLogin(t, d, "dave", pw["dave"], false) // disabled
				checkLogin(t, d, "nobody", pw["alice"], false)
			})
		}
	})

	t.Run("who exists", func(t *testing.T) {
		d := open(t, base)
		for user, want := range map[string]bool{
			"alice": true, "carol": true, "jörg": true,
			"dave": true, // disabled, but the name stays taken
			"bob":  false, "nobody": false, "*": false, "a*": false, "alice)(sAMAccountName=*": false,
		} {
			if ok, err := d.UserExists(ctxT(t), "localhost", user); ok != want || err != nil {
				t.Errorf("UserExists(%q) = %v, %v; want %v", user, ok, err, want)
			}
		}
		// koictl user list: the same names, nested and disabled included.
		want := []string{"alice", "carol", "dave", "jörg"}
		if got, err := d.ListUsers(ctxT(t), "localhost"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ListUsers = %q, %v; want %q", got, err, want)
		}
	})

	t.Run("direct membership only", func(t *testing.T) {
		s := base
		s.GroupMembership = MembershipMemberOf
		d := open(t, s)
		checkLogin(t, d, "alice", pw["alice"], true)
		checkLogin(t, d, "carol", pw["carol"], false)
	})

	t.Run("without a group rule", func(t *testing.T) {
		s := base
		s.RequiredGroup = ""
		d := open(t, s)
		checkLogin(t, d, "bob", pw["bob"], true)
		checkLogin(t, d, "dave", pw["dave"], false) // still disabled
	})

	t.Run("bad input", func(t *testing.T) {
		d := open(t, base)
		for _, u := range []string{"*", ")(sAMAccountName=*", "alice\x00", "alice)(|(objectClass=*)", `EXAMPLE\alice`, "alice@example.org"} {
			for _, p := range []string{pw["alice"], "", " ", "*"} {
				if ok, err := d.CheckPassword(ctxT(t), "localhost", u, p); ok || (err != nil && !errors.Is(err, sdk.ErrInvalid)) {
					t.Errorf("CheckPassword(%q, %q) = %v, %v", u, p, ok, err)
				}
			}
		}
	})

	t.Run("plain LDAP is refused by AD", func(t *testing.T) {
		s := base
		s.URLs, s.CAFile, s.AllowPlaintext = []string{ad.LDAPURL}, "", true
		_, err := Open(ctxT(t), s, nil)
		if !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), "need TLS") {
			t.Fatalf("Open over plain LDAP: %v", err)
		}
	})

	t.Run("shared roster", func(t *testing.T) {
		s := base
		s.SharedGroups = []string{group, "CN=research," + testsvc.ADUsers}
		s.GroupNameAttribute = "description" // research has one; xmpp-users falls back to cn
		d := open(t, s)
		want := []string{
			"carol@localhost|carol|both|Research Team,xmpp-users",
			"jörg@localhost|jörg|both|xmpp-users",
		} // dave is disabled, bob is not in the required group
		if got := contacts(getRoster(t, d, "alice@localhost")); !reflect.DeepEqual(got, want) {
			t.Errorf("alice's shared roster:\n got %q\nwant %q", got, want)
		}
		want = []string{
			"alice@localhost|Alice Liddell|both|Research Team,xmpp-users",
			"jörg@localhost|jörg|both|xmpp-users",
		}
		if got := contacts(getRoster(t, d, "carol@localhost")); !reflect.DeepEqual(got, want) {
			t.Errorf("carol's shared roster:\n got %q\nwant %q", got, want)
		}
	})

	t.Run("paged group of 1100", func(t *testing.T) {
		s := base
		s.SharedGroups, s.PageSize = []string{"CN=all-staff," + testsvc.ADUsers}, 300
		s.RequiredGroup = ""
		d := open(t, s)
		st := getRoster(t, d, "staff0000@localhost")
		if len(st.Items) != 1099 || st.Items[1098].JID != "staff1099@localhost" {
			t.Fatalf("staff0000's roster has %d items", len(st.Items))
		}
	})

	t.Run("vCard", func(t *testing.T) {
		d := open(t, base)
		v := getVCard(t, d, "alice@localhost")
		if v.FN != "Alice Liddell" || v.Given != "Alice" || v.Family != "Liddell" || v.Title != "Engineer" ||
			v.OrgUnit != "Research" || v.OrgName != "Example" || strings.Join(v.Tel, ",") != "+1 555 0100" ||
			strings.Join(v.Email, ",") != "alice@example.org" || v.Type != "image/jpeg" {
			t.Errorf("alice's vCard: %+v", v)
		}
		photo, err := base64.StdEncoding.DecodeString(v.Binval)
		if err != nil || !bytes.Equal(photo, photoOf(t, d, "CN=alice,"+testsvc.ADUsers, "thumbnailPhoto")) {
			t.Errorf("photo is not alice's thumbnailPhoto (%v)", err)
		}
		if _, err := d.GetVCard(ctxT(t), "bob@localhost"); !errors.Is(err, sdk.ErrNotFound) {
			t.Errorf("bob (not in the group) has a vCard: %v", err)
		}
	})
}
