package ldapbackend

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/koi-im/koi/internal/testsvc"
	"github.com/koi-im/koi/sdk"
)

// ListUsers returns what UserExists knows, past the server's 1000-entry
// limit, and only the required group's members when there is one.
func TestListUsers(t *testing.T) {
	d := open(t, slapdSettings(t))
	users, err := d.ListUsers(ctxT(t), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	// Other tests may add entries; the fixed ones must all be there.
	for _, u := range []string{"alice", "bob", "carol", "dave", "jürgen", "bulk0000", "bulk1099"} {
		if !slices.Contains(users, u) {
			t.Errorf("ListUsers lacks %q (%d users)", u, len(users))
		}
	}
	if len(users) < 1105 || !slices.IsSorted(users) || len(slices.Compact(slices.Clone(users))) != len(users) {
		t.Errorf("ListUsers: %d users, sorted %v, want at least 1105 distinct, sorted", len(users), slices.IsSorted(users))
	}
	if _, err := d.ListUsers(ctxT(t), ""); !errors.Is(err, sdk.ErrInvalid) {
		t.Errorf("ListUsers of an empty host: %v", err)
	}

	for _, tc := range []struct {
		mode, group string
		want        []string
	}{
		{MembershipMember, "research", []string{"alice", "carol"}},
		{MembershipMemberOf, "research", []string{"alice", "carol"}},
		{MembershipMember, "xmpp-users", []string{"alice", "bob", "carol", "jürgen"}}, // carol through xmpp-admins
		{MembershipMemberOf, "xmpp-users", []string{"alice", "bob", "jürgen"}},        // the overlay does not nest
	} {
		t.Run(tc.mode+"/"+tc.group, func(t *testing.T) {
			s := slapdSettings(t)
			s.GroupMembership, s.RequiredGroup = tc.mode, "cn="+tc.group+","+testsvc.SlapdGroups
			got, err := open(t, s).ListUsers(ctxT(t), "localhost")
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ListUsers = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
