package ldapbackend

import (
	"context"
	"sort"
	"strings"

	"github.com/koi-im/koi/sdk"
)

var _ sdk.UserLister = (*Directory)(nil)

// allUsersFilter finds every user user_filter can find: {user} becomes a
// wildcard.
func (d *Directory) allUsersFilter() string {
	return strings.ReplaceAll(d.s.UserFilter, userPlaceholder, "*")
}

// ListUsers implements sdk.UserLister (koictl user list): every name that
// UserExists answers true for, from one paged search with the user
// filter, so directories beyond a server's size limit come back whole.
// Disabled accounts are listed, since their names stay taken; users
// outside required_group are not.
func (d *Directory) ListUsers(ctx context.Context, host string) ([]string, error) {
	if err := checkNames(host, "-"); err != nil {
		return nil, err
	}
	filter := d.allUsersFilter()
	// In the member mode the directory cannot evaluate membership in the
	// filter: expand the group once and keep its members.
	var allowed map[string]bool
	if g := d.s.RequiredGroup; g != "" {
		c, err := d.membersFilter(ctx, g)
		switch {
		case err != nil:
			return nil, err
		case c != "":
			filter = "(&" + filter + c + ")"
		default:
			if allowed, err = d.expandGroup(ctx, g); err != nil {
				return nil, err
			}
		}
	}
	entries, err := d.pagedSearch(ctx, d.s.BaseDN, filter, d.userAttributes())
	if err != nil {
		return nil, mapError("user listing", err)
	}
	seen := map[string]bool{}
	users := []string{}
	for _, e := range entries {
		if allowed != nil {
			if k, err := canonicalDN(e.DN); err != nil || !allowed[k] {
				continue
			}
		}
		u, ok := d.mapUser(e, "")
		if !ok || seen[u.local] {
			continue
		}
		seen[u.local] = true
		users = append(users, u.local)
	}
	sort.Strings(users)
	return users, nil
}
