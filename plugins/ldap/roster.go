package ldapbackend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/koi-im/koi/sdk"
)

// sharedRoster builds rosters from directory groups, as ejabberd's
// mod_shared_roster_ldap does: the members of each shared group see each
// other as contacts with subscription both, in a roster group named after
// the directory group. Group contents are read at most once per
// refresh_interval.
type sharedRoster struct {
	d *Directory

	mu   sync.Mutex // held during a refresh, so only one runs at a time
	snap *snapshot
}

// snapshot is every shared group's members at one moment.
type snapshot struct {
	at      time.Time
	groups  []sharedGroup
	byLocal map[string][]int // local part -> indexes into groups
}

type sharedGroup struct {
	name    string // the roster group name
	members []member
}

type member struct {
	local string
	name  string // roster item name; may be empty
}

func newSharedRoster(d *Directory) *sharedRoster { return &sharedRoster{d: d} }

// current returns a snapshot no older than the refresh interval. When a
// refresh fails, the previous snapshot is served (and the failure logged)
// rather than emptying everyone's contact list.
func (r *sharedRoster) current(ctx context.Context) (*snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.snap != nil && time.Since(r.snap.at) < r.d.s.RefreshInterval {
		return r.snap, nil
	}
	s, err := r.load(ctx)
	if err != nil {
		if r.snap != nil {
			r.d.log.Warn("shared roster refresh failed; serving the previous one", "age", time.Since(r.snap.at).Round(time.Second), "error", err)
			return r.snap, nil
		}
		return nil, err
	}
	r.snap = s
	return s, nil
}

func (r *sharedRoster) load(ctx context.Context) (*snapshot, error) {
	start := time.Now()
	s := &snapshot{at: start, byLocal: map[string][]int{}}
	// Contacts who may not log in would only collect bounced messages.
	var allowed map[string]bool
	if r.d.s.RequiredGroup != "" && r.d.membershipClause(r.d.s.RequiredGroup) == "" {
		var err error
		if allowed, err = r.d.expandGroup(ctx, r.d.s.RequiredGroup); err != nil {
			return nil, err
		}
	}
	for _, g := range r.d.s.SharedGroups {
		sg, err := r.d.readGroup(ctx, g, allowed)
		if err != nil {
			return nil, err
		}
		idx := len(s.groups)
		s.groups = append(s.groups, sg)
		for _, m := range sg.members {
			s.byLocal[m.local] = append(s.byLocal[m.local], idx)
		}
	}
	r.d.log.Debug("shared roster loaded", "groups", len(s.groups), "users", len(s.byLocal), "took", time.Since(start))
	return s, nil
}

// readGroup returns a group's roster name and its members (nested groups
// included in the member and ad modes), without disabled accounts and
// without users outside the required group (allowed holds its canonical
// member DNs in the member mode; the other modes filter in the search).
func (d *Directory) readGroup(ctx context.Context, groupDN string, allowed map[string]bool) (sharedGroup, error) {
	sg := sharedGroup{}
	groupName := withCN(d.s.GroupNameAttribute)
	ge, err := d.readEntry(ctx, groupDN, groupName)
	if err != nil {
		return sg, err
	}
	// Names end up in XML: firstText keeps out what XML cannot carry.
	if n := firstText(ge, groupName); len(n) > 0 {
		sg.name = n[0]
	} else {
		sg.name = groupDN
	}
	all := d.allUsersFilter()
	// displayName, the default, is optional in inetOrgPerson and often
	// unset on OpenLDAP; cn is always there.
	contactName := withCN(d.s.ContactNameAttribute)
	attrs := d.userAttributes(contactName...)
	var entries []*ldap.Entry
	c, err := d.membersFilter(ctx, groupDN)
	if err != nil {
		return sg, err
	}
	if c != "" {
		if d.s.RequiredGroup != "" {
			rc, err := d.membersFilter(ctx, d.s.RequiredGroup)
			if err != nil {
				return sg, err
			}
			c += rc
		}
		entries, err = d.pagedSearch(ctx, d.s.BaseDN, "(&"+all+c+")", attrs)
		if err != nil {
			return sg, mapError("shared group "+groupDN, err)
		}
	} else {
		in, err := d.expandGroup(ctx, groupDN)
		if err != nil {
			return sg, err
		}
		users, err := d.pagedSearch(ctx, d.s.BaseDN, all, attrs)
		if err != nil {
			return sg, mapError("user search for shared group "+groupDN, err)
		}
		for _, e := range users {
			if k, err := canonicalDN(e.DN); err == nil && in[k] && (allowed == nil || allowed[k]) {
				entries = append(entries, e)
			}
		}
	}
	seen := map[string]bool{}
	for _, e := range entries {
		u, ok := d.mapUser(e, "")
		if !ok || u.disabled || seen[u.local] {
			continue
		}
		seen[u.local] = true
		m := member{local: u.local}
		if n := firstText(e, contactName); len(n) > 0 {
			m.name = n[0]
		}
		sg.members = append(sg.members, m)
	}
	sort.Slice(sg.members, func(i, j int) bool { return sg.members[i].local < sg.members[j].local })
	return sg, nil
}

// withCN is attr followed by cn, the fallback of names: every person and
// group entry has one.
func withCN(attr string) []string {
	if strings.EqualFold(attr, "cn") {
		return []string{attr}
	}
	return []string{attr, "cn"}
}

// readEntry reads one entry by DN.
func (d *Directory) readEntry(ctx context.Context, dn string, attrs []string) (*ldap.Entry, error) {
	req := ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", attrs, nil)
	var res *ldap.SearchResult
	err := d.search.with(ctx, func(c *ldap.Conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, fmt.Errorf("%w: directory: shared group %q does not exist", sdk.ErrUnavailable, dn)
	}
	if err != nil {
		return nil, mapError("read "+dn, err)
	}
	if len(res.Entries) != 1 {
		return nil, fmt.Errorf("%w: directory: %q: no entry", sdk.ErrUnavailable, dn)
	}
	return res.Entries[0], nil
}

// expandGroup returns the canonical DNs of everything group contains,
// following nested groups, from one paged read of all groups.
func (d *Directory) expandGroup(ctx context.Context, group string) (map[string]bool, error) {
	groups, err := d.pagedSearch(ctx, d.s.GroupBaseDN, d.s.GroupFilter, []string{d.s.GroupMemberAttribute})
	if err != nil {
		return nil, mapError("group search", err)
	}
	members := make(map[string][]string, len(groups))
	for _, g := range groups {
		k, err := canonicalDN(g.DN)
		if err != nil {
			continue
		}
		for _, m := range g.GetEqualFoldAttributeValues(d.s.GroupMemberAttribute) {
			if mk, err := canonicalDN(m); err == nil {
				members[k] = append(members[k], mk)
			}
		}
	}
	root, err := canonicalDN(group)
	if err != nil {
		return nil, fmt.Errorf("%w: shared_groups: %v", sdk.ErrInvalid, err)
	}
	in := map[string]bool{}
	visited := map[string]bool{root: true}
	frontier := []string{root}
	for depth := 0; depth < maxGroupDepth && len(frontier) > 0; depth++ {
		var next []string
		for _, g := range frontier {
			for _, m := range members[g] {
				in[m] = true
				if _, isGroup := members[m]; isGroup && !visited[m] {
					visited[m] = true
					next = append(next, m)
				}
			}
		}
		frontier = next
	}
	return in, nil
}

// GetRoster implements sdk.Roster: the owner's contacts from the shared
// groups the owner belongs to. The version is a digest of the content, so
// it changes exactly when the directory does.
func (d *Directory) GetRoster(ctx context.Context, owner string) (sdk.RosterState, error) {
	local, host, ok := splitOwner(owner)
	if !ok {
		return sdk.RosterState{}, fmt.Errorf("%w: owner %q is not a bare JID", sdk.ErrInvalid, owner)
	}
	if len(d.s.SharedGroups) == 0 {
		return sdk.RosterState{Version: "0"}, nil
	}
	s, err := d.roster.current(ctx)
	if err != nil {
		return sdk.RosterState{}, err
	}
	items := map[string]*sdk.RosterItem{}
	for _, gi := range s.byLocal[local] {
		g := s.groups[gi]
		for _, m := range g.members {
			if m.local == local {
				continue
			}
			it := items[m.local]
			if it == nil {
				it = &sdk.RosterItem{JID: m.local + "@" + host, Name: m.name, Subscription: sdk.SubBoth}
				items[m.local] = it
			}
			if !contains(it.Groups, g.name) {
				it.Groups = append(it.Groups, g.name)
			}
		}
	}
	st := sdk.RosterState{Items: make([]sdk.RosterItem, 0, len(items))}
	for _, it := range items {
		sort.Strings(it.Groups)
		st.Items = append(st.Items, *it)
	}
	sort.Slice(st.Items, func(i, j int) bool { return st.Items[i].JID < st.Items[j].JID })
	st.Version = rosterVersion(st.Items)
	return st, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// rosterVersion digests items; "0" for an empty roster, as the SDK asks.
func rosterVersion(items []sdk.RosterItem) string {
	if len(items) == 0 {
		return "0"
	}
	h := sha256.New()
	for _, it := range items {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", it.JID, it.Name, strings.Join(it.Groups, "\x01"))
	}
	return "s" + hex.EncodeToString(h.Sum(nil)[:8])
}
