package ldapbackend

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/text/secure/precis"

	"github.com/koi-im/koi/sdk"
)

// Active Directory details.
const (
	// matchingRuleInChain makes memberOf match nested groups
	// (LDAP_MATCHING_RULE_IN_CHAIN).
	matchingRuleInChain = "1.2.840.113556.1.4.1941"
	// uacDisabled is ACCOUNTDISABLE in userAccountControl.
	uacDisabled = 0x2
	attrUAC     = "userAccountControl"
	// maxUserBytes bounds a user name before it reaches a filter; JID
	// local parts are at most 1023 bytes.
	maxUserBytes = 1023
	// maxGroupDepth bounds nested group expansion (and cycles).
	maxGroupDepth = 16
)

// user is a directory entry that maps to an XMPP account.
type user struct {
	dn       string
	local    string // the JID local part
	disabled bool
	entry    *ldap.Entry
}

// validUser reports whether name can be looked up at all. The core hands
// over normalised local parts; this is defence in depth for bytes that
// have no business in a filter or a bind name.
func validUser(name string) bool {
	if name == "" || len(name) > maxUserBytes || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r == 0 || unicode.IsControl(r) {
			return false
		}
	}
	return strings.TrimSpace(name) == name
}

// localPart maps an attribute value to a JID local part: the part before
// the @ if there is one (mail, userPrincipalName), normalised as the core
// normalises user names. ok is false for values that cannot be one.
func localPart(v string) (string, bool) {
	if i := strings.LastIndexByte(v, '@'); i >= 0 {
		v = v[:i]
	}
	n, err := precis.UsernameCaseMapped.String(v)
	if err != nil || n == "" {
		return "", false
	}
	return n, true
}

// mapUser turns an entry into a user; ok is false when its name attribute
// has no usable value. With want set, only a value mapping to want counts
// (a filter on uid matches case-insensitively, mail by substring).
func (d *Directory) mapUser(e *ldap.Entry, want string) (user, bool) {
	u := user{dn: e.DN, entry: e}
	for _, v := range e.GetEqualFoldAttributeValues(d.s.UsernameAttribute) {
		l, ok := localPart(v)
		if ok && (want == "" || l == want) {
			u.local = l
			break
		}
	}
	if u.local == "" {
		return user{}, false
	}
	if uac := e.GetEqualFoldAttributeValue(attrUAC); uac != "" {
		if n, err := strconv.ParseInt(uac, 10, 64); err == nil && n&uacDisabled != 0 {
			u.disabled = true
		}
	}
	return u, true
}

// userFilter is the filter that finds name; with a membership rule the
// directory can evaluate (memberof, ad), the required group is part of it.
func (d *Directory) userFilter(name string) string {
	f := strings.ReplaceAll(d.s.UserFilter, userPlaceholder, ldap.EscapeFilter(name))
	if d.s.RequiredGroup != "" {
		if c := d.membershipClause(d.s.RequiredGroup); c != "" {
			f = "(&" + f + c + ")"
		}
	}
	return f
}

// membershipClause is the filter term for "member of group", or "" when
// the mode needs group searches instead.
func (d *Directory) membershipClause(group string) string {
	switch d.s.GroupMembership {
	case MembershipAD:
		return "(memberOf:" + matchingRuleInChain + ":=" + ldap.EscapeFilter(group) + ")"
	case MembershipMemberOf:
		return "(memberOf=" + ldap.EscapeFilter(group) + ")"
	}
	return ""
}

// membersFilter is the filter term for "member of group" in searches
// over all users, or "" when the mode needs group expansion instead
// (member). In the ad mode the in-chain rule is not evaluated per user:
// that took Samba 10 to 18 s for 1100 users, holding up every other
// request. It finds the groups nested in group instead (few entries),
// and users match one of them by memberOf equality, which is indexed.
func (d *Directory) membersFilter(ctx context.Context, group string) (string, error) {
	if d.s.GroupMembership != MembershipAD {
		return d.membershipClause(group), nil
	}
	nested, err := d.pagedSearch(ctx, d.s.GroupBaseDN, "(&"+d.s.GroupFilter+d.membershipClause(group)+")", []string{"1.1"})
	if err != nil {
		return "", mapError("nested groups of "+group, err)
	}
	var b strings.Builder
	b.WriteString("(|(memberOf=" + ldap.EscapeFilter(group) + ")")
	for _, g := range nested {
		b.WriteString("(memberOf=" + ldap.EscapeFilter(g.DN) + ")")
	}
	b.WriteString(")")
	return b.String(), nil
}

// userAttributes are the attributes a lookup reads, plus extra.
func (d *Directory) userAttributes(extra ...string) []string {
	return append([]string{d.s.UsernameAttribute, attrUAC}, extra...)
}

// lookup finds the entry of name and checks the group rule. It returns
// found false for an unknown user, one outside the required group, or a
// name that cannot exist; an error only when the directory cannot answer
// or answers ambiguously.
func (d *Directory) lookup(ctx context.Context, name string, extra ...string) (user, bool, error) {
	if !validUser(name) {
		return user{}, false, nil
	}
	// The core hands over normalised names; normalising again is a no-op
	// for those and keeps other callers consistent with the mapping.
	name, err := precis.UsernameCaseMapped.String(name)
	if err != nil {
		return user{}, false, nil
	}
	// Two entries are enough to know the answer is ambiguous.
	req := ldap.NewSearchRequest(d.s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, 0, false, d.userFilter(name), d.userAttributes(extra...), nil)
	var res *ldap.SearchResult
	err = d.search.with(ctx, func(c *ldap.Conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) && res != nil {
		err = nil // more than two entries: ambiguous, reported below
	}
	if err != nil {
		return user{}, false, mapError("user search", err)
	}
	if len(res.Referrals) > 0 {
		d.log.Debug("ignoring search continuation references", "count", len(res.Referrals), "first", res.Referrals[0])
	}
	var found []user
	for _, e := range res.Entries {
		if u, ok := d.mapUser(e, name); ok {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return user{}, false, nil
	case 1:
	default:
		dns := make([]string, len(found))
		for i, u := range found {
			dns[i] = u.dn
		}
		// Refusing is the only safe answer: which person would log in?
		return user{}, false, fmt.Errorf("%w: directory: %d entries map to user %q (%s); user_filter and username_attribute must single out one",
			sdk.ErrInvalid, len(found), name, strings.Join(dns, "; "))
	}
	u := found[0]
	if d.s.RequiredGroup != "" && d.s.GroupMembership == MembershipMember {
		ok, err := d.memberOf(ctx, u.dn, d.s.RequiredGroup)
		if err != nil {
			return user{}, false, err
		}
		if !ok {
			return user{}, false, nil
		}
	}
	return u, true, nil
}

// memberOf reports whether dn is in group, directly or through nested
// groups, by walking up: the groups that list dn, then the groups that
// list those, and so on.
func (d *Directory) memberOf(ctx context.Context, dn, group string) (bool, error) {
	target, err := canonicalDN(group)
	if err != nil {
		return false, fmt.Errorf("%w: required_group: %v", sdk.ErrInvalid, err)
	}
	seen := map[string]bool{}
	frontier := []string{dn}
	for depth := 0; depth < maxGroupDepth && len(frontier) > 0; depth++ {
		var terms strings.Builder
		for _, m := range frontier {
			terms.WriteString("(" + d.s.GroupMemberAttribute + "=" + ldap.EscapeFilter(m) + ")")
		}
		filter := "(&" + d.s.GroupFilter + "(|" + terms.String() + "))"
		groups, err := d.pagedSearch(ctx, d.s.GroupBaseDN, filter, []string{"1.1"})
		if err != nil {
			return false, mapError("group search", err)
		}
		frontier = frontier[:0]
		for _, g := range groups {
			key, err := canonicalDN(g.DN)
			if err != nil || seen[key] {
				continue
			}
			if key == target {
				return true, nil
			}
			seen[key] = true
			frontier = append(frontier, g.DN)
		}
	}
	return false, nil
}

// pagedSearch runs a subtree search with simple paged results (RFC 2696),
// so that groups larger than a server's size limit (1000 on Active
// Directory) come back whole.
func (d *Directory) pagedSearch(ctx context.Context, base, filter string, attrs []string) ([]*ldap.Entry, error) {
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
	var res *ldap.SearchResult
	err := d.search.with(ctx, func(c *ldap.Conn) error {
		var err error
		res, err = c.SearchWithPaging(req, uint32(d.s.PageSize))
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.Entries, nil
}

// canonicalDN renders dn for comparison: attribute types and values
// folded to lower case, no optional spaces, escapes decoded.
func canonicalDN(dn string) (string, error) {
	p, err := ldap.ParseDN(dn)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, rdn := range p.RDNs {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, a := range rdn.Attributes {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(strings.ToLower(a.Type))
			b.WriteByte('=')
			b.WriteString(ldap.EscapeDN(strings.ToLower(a.Value)))
		}
	}
	return b.String(), nil
}

// bindName is what a user binds as: the template with the name filled in
// (DN-escaped when the template is a DN), or the DN the search found.
func (d *Directory) bindName(u user) string {
	t := d.s.UserDNTemplate
	if t == "" {
		return u.dn
	}
	name := u.local
	if strings.Contains(t, "=") {
		name = ldap.EscapeDN(name)
	}
	return strings.ReplaceAll(t, userPlaceholder, name)
}
