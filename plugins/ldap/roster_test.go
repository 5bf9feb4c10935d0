package ldapbackend

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/koi-im/koi/internal/testsvc"
	"github.com/koi-im/koi/sdk"
)

// contacts renders a roster as "jid|name|sub|group,group" lines.
func contacts(st sdk.RosterState) []string {
	out := []string{}
	for _, it := range st.Items {
		out = append(out, fmt.Sprintf("%s|%s|%s|%s", it.JID, it.Name, it.Subscription, strings.Join(it.Groups, ",")))
	}
	return out
}

func getRoster(t *testing.T, d *Directory, owner string) sdk.RosterState {
	t.Helper()
	st, err := d.GetRoster(ctxT(t), owner)
	if err != nil {
		t.Fatalf("GetRoster(%s): %v", owner, err)
	}
	return st
}

func TestSharedRoster(t *testing.T) {
	users, research := "cn=xmpp-users,"+testsvc.SlapdGroups, "cn=research,"+testsvc.SlapdGroups
	for _, tc := range []struct {
		mode  string
		alice []string
		carol []string
	}{
		// carol has no displayName: her name falls back to cn.
		{MembershipMember, []string{ // carol is in xmpp-users through xmpp-admins
			"bob@localhost|Bob Builder|both|Everyone",
			"carol@localhost|carol|both|Everyone,Research Team",
			"jürgen@localhost|Jürgen Müller|both|Everyone",
		}, []string{
			"alice@localhost|Alice Liddell|both|Everyone,Research Team",
			"bob@localhost|Bob Builder|both|Everyone",
			"jürgen@localhost|Jürgen Müller|both|Everyone",
		}},
		{MembershipMemberOf, []string{ // the overlay does not nest
			"bob@localhost|Bob Builder|both|Everyone",
			"carol@localhost|carol|both|Research Team",
			"jürgen@localhost|Jürgen Müller|both|Everyone",
		}, []string{
			"alice@localhost|Alice Liddell|both|Research Team",
		}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			s := slapdSettings(t)
			s.SharedGroups, s.GroupMembership, s.GroupNameAttribute = []string{users, research}, tc.mode, "description"
			d := open(t, s)
			a := getRoster(t, d, "alice@localhost")
			if got := contacts(a); !reflect.DeepEqual(got, tc.alice) {
				t.Errorf("alice's shared roster:\n got %q\nwant %q", got, tc.alice)
			}
			if got := contacts(getRoster(t, d, "carol@localhost")); !reflect.DeepEqual(got, tc.carol) {
				t.Errorf("carol's shared roster:\n got %q\nwant %q", got, tc.carol)
			}
			if a.Version == "" || a.Version == "0" || getRoster(t, d, "alice@localhost").Version != a.Version {
				t.Errorf("version %q not stable", a.Version)
			}
			if st := getRoster(t, d, "dave@localhost"); len(st.Items) != 0 || st.Version != "0" {
				t.Errorf("dave is in no shared group: %+v", st)
			}
			// The contacts' domain is the owner's.
			if st := getRoster(t, d, "bob@example.test"); len(st.Items) == 0 || !strings.HasSuffix(st.Items[0].JID, "@example.test") {
				t.Errorf("bob@example.test: %+v", st)
			}
			if _, err := d.GetRoster(ctxT(t), "no-at-sign"); !errors.Is(err, sdk.ErrInvalid) {
				t.Errorf("GetRoster of a malformed owner: %v", err)
			}
		})
	}
}

// Contacts who may not log in are left out.
func TestSharedRosterRequiredGroup(t *testing.T) {
	for _, mode := range []string{MembershipMember, MembershipMemberOf} {
		t.Run(mode, func(t *testing.T) {
			s := slapdSettings(t)
			s.SharedGroups, s.GroupMembership = []string{"cn=xmpp-users," + testsvc.SlapdGroups}, mode
			s.RequiredGroup = "cn=research," + testsvc.SlapdGroups // alice and carol
			d := open(t, s)
			want := []string{}
			if mode == MembershipMember {
				want = []string{"carol@localhost|carol|both|xmpp-users"}
			}
			if got := contacts(getRoster(t, d, "alice@localhost")); !reflect.DeepEqual(got, want) {
				t.Errorf("alice's shared roster = %q, want %q", got, want)
			}
		})
	}
}

func randomName() string {
	var b [4]byte
	rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// Directory changes show up once the refresh interval has passed.
func TestSharedRosterRefresh(t *testing.T) {
	a := admin(t)
	group := "cn=" + randomName() + "," + testsvc.SlapdGroups
	add := ldap.NewAddRequest(group, nil)
	add.Attribute("objectClass", []string{"groupOfNames"})
	add.Attribute("member", []string{"uid=alice," + testsvc.SlapdPeople, "uid=bob," + testsvc.SlapdPeople})
	if err := a.Add(add); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Del(ldap.NewDelRequest(group, nil)) })
	s := slapdSettings(t)
	s.SharedGroups, s.RefreshInterval = []string{group}, 500*time.Millisecond
	d := open(t, s)
	before := getRoster(t, d, "alice@localhost")
	if len(before.Items) != 1 || before.Items[0].JID != "bob@localhost" {
		t.Fatalf("before: %q", contacts(before))
	}
	mod := ldap.NewModifyRequest(group, nil)
	mod.Add("member", []string{"uid=dave," + testsvc.SlapdPeople})
	if err := a.Modify(mod); err != nil {
		t.Fatal(err)
	}
	if st := getRoster(t, d, "alice@localhost"); len(st.Items) != 1 {
		t.Errorf("changed within the refresh interval: %q", contacts(st))
	}
	time.Sleep(600 * time.Millisecond)
	after := getRoster(t, d, "alice@localhost")
	if got := contacts(after); len(got) != 2 || !strings.HasPrefix(got[1], "dave@localhost|") {
		t.Fatalf("after the refresh interval: %q", got)
	}
	if after.Version == before.Version {
		t.Errorf("version %q did not change", after.Version)
	}
	if st := getRoster(t, d, "dave@localhost"); len(st.Items) != 2 {
		t.Errorf("dave's roster: %q", contacts(st))
	}
}

// A failed refresh keeps the last roster rather than emptying it.
func TestSharedRosterDirectoryDown(t *testing.T) {
	needSlapd(t)
	sd, err := testsvc.StartSlapd(ctxT(t), t.TempDir(), testsvc.SlapdOptions{})
	testsvc.Require(t, err)
	s := slapdSettings(t)
	s.URLs, s.CAFile = []string{sd.LDAPSURL}, sd.CAFile
	s.SharedGroups, s.RefreshInterval = []string{"cn=research," + testsvc.SlapdGroups}, 100*time.Millisecond
	d := open(t, s)
	cold := open(t, s)
	before := contacts(getRoster(t, d, "alice@localhost"))
	if err := sd.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if got := contacts(getRoster(t, d, "alice@localhost")); !reflect.DeepEqual(got, before) {
		t.Errorf("with the directory down: %q, want the last roster %q", got, before)
	}
	// Without a previous roster there is nothing to serve.
	if _, err := cold.GetRoster(ctxT(t), "alice@localhost"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("first roster with the directory down: %v", err)
	}
}

// Groups beyond the server's 1000-entry limit come back whole through
// paged searches.
func TestSharedRosterPaging(t *testing.T) {
	s := slapdSettings(t)
	bulk := "cn=bulk," + testsvc.SlapdGroups
	d := open(t, s)
	// The limit is real: an unpaged search stops at 1000.
	req := ldap.NewSearchRequest(testsvc.SlapdBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(memberOf="+bulk+")", []string{"1.1"}, nil)
	err := d.search.with(ctxT(t), func(c *ldap.Conn) error { _, err := c.Search(req); return err })
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		t.Fatalf("unpaged search of 1100 entries: %v, want size limit exceeded", err)
	}
	for _, mode := range []string{MembershipMember, MembershipMemberOf} {
		t.Run(mode, func(t *testing.T) {
			s := s
			s.SharedGroups, s.GroupMembership, s.PageSize = []string{bulk}, mode, 300
			s.RequiredGroup = bulk
			d := open(t, s)
			st := getRoster(t, d, "bulk0000@localhost")
			if len(st.Items) != 1099 || st.Items[0].JID != "bulk0001@localhost" || st.Items[1098].JID != "bulk1099@localhost" {
				t.Fatalf("bulk0000's roster has %d items", len(st.Items))
			}
			if ok, err := d.UserExists(ctxT(t), "localhost", "bulk1099"); !ok || err != nil {
				t.Errorf("UserExists(bulk1099) = %v, %v", ok, err)
			}
		})
	}
}

// A contact without contact_name_attribute is named by cn, as a vCard's
// FN is, rather than left blank (the usual case on OpenLDAP, where
// displayName is optional).
func TestSharedRosterContactNameFallsBackToCN(t *testing.T) {
	s := slapdSettings(t)
	s.SharedGroups, s.ContactNameAttribute = []string{"cn=research," + testsvc.SlapdGroups}, "title" // only alice has one
	d := open(t, s)
	if got, want := contacts(getRoster(t, d, "alice@localhost")), []string{"carol@localhost|carol|both|research"}; !reflect.DeepEqual(got, want) {
		t.Errorf("alice's contacts = %q, want %q", got, want)
	}
	if got, want := contacts(getRoster(t, d, "carol@localhost")), []string{"alice@localhost|Engineer|both|research"}; !reflect.DeepEqual(got, want) {
		t.Errorf("carol's contacts = %q, want %q", got, want)
	}
}
