package ldapbackend

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/koi-im/koi/sdk"
)

// Group membership modes (key group_membership).
const (
	// MembershipMember follows the groups' member attribute, nested groups
	// included; it works on any directory.
	MembershipMember = "member"
	// MembershipMemberOf reads the users' memberOf attribute (OpenLDAP's
	// memberof overlay, Active Directory); nested groups are not followed.
	MembershipMemberOf = "memberof"
	// MembershipAD uses Active Directory's LDAP_MATCHING_RULE_IN_CHAIN
	// (1.2.840.113556.1.4.1941): nested membership, evaluated by the server.
	MembershipAD = "ad"
)

// Settings configure a Directory. ParseConfig fills in the defaults; a
// Settings built by hand should go through Check.
type Settings struct {
	// URLs are tried in order until one answers (ldap:// or ldaps://).
	URLs []string
	// StartTLS upgrades ldap:// connections before anything is sent.
	StartTLS bool
	// CAFile is a PEM file of the CAs that sign the directory's
	// certificate; empty means the system's roots.
	CAFile string
	// TLSServerName is the name checked in the certificate; empty means
	// the host of the URL.
	TLSServerName string
	// InsecureSkipVerify turns certificate checks off (lab setups only).
	InsecureSkipVerify bool
	// AllowPlaintext permits ldap:// without StartTLS: passwords then
	// cross the network in clear text.
	AllowPlaintext bool

	ConnectTimeout time.Duration // per server: TCP, TLS and the service bind
	Timeout        time.Duration // per LDAP operation
	PoolSize       int           // connections kept for searches, and as many for binds

	BaseDN       string
	BindDN       string // service account for searches; empty: anonymous
	BindPassword string
	// UserFilter finds a user; {user} stands for the escaped user name.
	UserFilter string
	// UserDNTemplate, if set, makes the password check a direct bind as
	// the template with {user} replaced (a DN, "{user}@REALM" or
	// "DOMAIN\{user}") instead of a bind as the DN the search found.
	UserDNTemplate string
	// UsernameAttribute holds the JID's local part (the part before @ if
	// the value has one, as in mail or userPrincipalName).
	UsernameAttribute string

	RequiredGroup        string // DN; empty: everyone UserFilter finds may log in
	GroupMembership      string // MembershipMember (default), MembershipMemberOf or MembershipAD
	GroupBaseDN          string // default BaseDN
	GroupFilter          string
	GroupMemberAttribute string

	SharedGroups         []string // DNs whose members see each other
	GroupNameAttribute   string   // a shared group's roster group name
	ContactNameAttribute string   // a contact's roster item name
	RefreshInterval      time.Duration
	PageSize             int

	// VCard maps vCard fields to attributes; each field takes the first of
	// its attributes that the entry has. See vcardFields for the names.
	VCard map[string][]string
}

// Defaults.
const (
	defaultConnectTimeout  = 2 * time.Second
	defaultTimeout         = 3 * time.Second
	defaultPoolSize        = 4
	defaultPageSize        = 500
	defaultRefreshInterval = 5 * time.Minute
	defaultGroupFilter     = "(|(objectClass=groupOfNames)(objectClass=group))"
	maxPoolSize            = 64
	maxPageSize            = 10000
	userPlaceholder        = "{user}"
)

// vcardFields are the vCard fields the directory can fill, with their
// default attributes (Active Directory's and OpenLDAP's inetOrgPerson names).
func vcardFields() map[string][]string {
	return map[string][]string{
		"fn":       {"displayName", "cn"},
		"given":    {"givenName"},
		"family":   {"sn"},
		"nickname": nil,
		"email":    {"mail"},
		"tel":      {"telephoneNumber"},
		"title":    {"title"},
		"role":     nil,
		"org":      {"company", "o"},
		"orgunit":  {"department", "departmentNumber"},
		"photo":    {"thumbnailPhoto", "jpegPhoto"},
	}
}

// stringList is a config value written as one string or a list of them.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var s []string
		if err := json.Unmarshal(b, &s); err != nil {
			return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[[]string]()}
		}
		*l = s
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[[]string]()}
	}
	if s == "" {
		*l = []string{}
	} else {
		*l = []string{s}
	}
	return nil
}

// vcardConfig is the vcard object of the config block; a nil field keeps
// its default, "" or [] turns the field off.
type vcardConfig struct {
	FN       *stringList `json:"fn"`
	Given    *stringList `json:"given"`
	Family   *stringList `json:"family"`
	Nickname *stringList `json:"nickname"`
	Email    *stringList `json:"email"`
	Tel      *stringList `json:"tel"`
	Title    *stringList `json:"title"`
	Role     *stringList `json:"role"`
	Org      *stringList `json:"org"`
	OrgUnit  *stringList `json:"orgunit"`
	Photo    *stringList `json:"photo"`
}

// fileConfig is the config block as the operator writes it.
type fileConfig struct {
	URL                  stringList   `json:"url"`
	StartTLS             sdk.Bool     `json:"start_tls"`
	CAFile               string       `json:"ca_file"`
	TLSServerName        string       `json:"tls_server_name"`
	InsecureSkipVerify   sdk.Bool     `json:"insecure_skip_verify"`
	AllowPlaintext       sdk.Bool     `json:"allow_plaintext"`
	ConnectTimeout       string       `json:"connect_timeout"`
	Timeout              string       `json:"timeout"`
	PoolSize             sdk.Int      `json:"pool_size"`
	BaseDN               string       `json:"base_dn"`
	BindDN               string       `json:"bind_dn"`
	BindPassword         string       `json:"bind_password"`
	UserFilter           string       `json:"user_filter"`
	UserDNTemplate       string       `json:"user_dn_template"`
	UsernameAttribute    string       `json:"username_attribute"`
	RequiredGroup        string       `json:"required_group"`
	GroupMembership      string       `json:"group_membership"`
	GroupBaseDN          string       `json:"group_base_dn"`
	GroupFilter          string       `json:"group_filter"`
	GroupMemberAttribute string       `json:"group_member_attribute"`
	SharedGroups         stringList   `json:"shared_groups"`
	GroupNameAttribute   string       `json:"group_name_attribute"`
	ContactNameAttribute string       `json:"contact_name_attribute"`
	RefreshInterval      string       `json:"refresh_interval"`
	PageSize             sdk.Int      `json:"page_size"`
	VCard                *vcardConfig `json:"vcard"`
}

// ParseConfig decodes the plugin's config block into Settings, with
// defaults filled in, and checks it.
func ParseConfig(cfg sdk.Config) (Settings, error) {
	var fc fileConfig
	if err := cfg.Decode(&fc); err != nil {
		return Settings{}, err
	}
	s := Settings{
		URLs: fc.URL, StartTLS: bool(fc.StartTLS), CAFile: fc.CAFile, TLSServerName: fc.TLSServerName,
		InsecureSkipVerify: bool(fc.InsecureSkipVerify), AllowPlaintext: bool(fc.AllowPlaintext),
		PoolSize: int(fc.PoolSize), BaseDN: fc.BaseDN, BindDN: fc.BindDN, BindPassword: fc.BindPassword,
		UserFilter: fc.UserFilter, UserDNTemplate: fc.UserDNTemplate, UsernameAttribute: fc.UsernameAttribute,
		RequiredGroup: fc.RequiredGroup, GroupMembership: fc.GroupMembership, GroupBaseDN: fc.GroupBaseDN,
		GroupFilter: fc.GroupFilter, GroupMemberAttribute: fc.GroupMemberAttribute,
		SharedGroups: fc.SharedGroups, GroupNameAttribute: fc.GroupNameAttribute,
		ContactNameAttribute: fc.ContactNameAttribute, PageSize: int(fc.PageSize),
	}
	errs := &sdk.ConfigErrors{Prefix: "ldap backend config"}
	dur := func(key, v string, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs.Add(key, "%q is not a duration like \"3s\"", v)
			return
		}
		*dst = d
	}
	dur("connect_timeout", fc.ConnectTimeout, &s.ConnectTimeout)
	dur("timeout", fc.Timeout, &s.Timeout)
	dur("refresh_interval", fc.RefreshInterval, &s.RefreshInterval)
	if fc.VCard != nil {
		s.VCard = map[string][]string{}
		for name, v := range map[string]*stringList{
			"fn": fc.VCard.FN, "given": fc.VCard.Given, "family": fc.VCard.Family, "nickname": fc.VCard.Nickname,
			"email": fc.VCard.Email, "tel": fc.VCard.Tel, "title": fc.VCard.Title, "role": fc.VCard.Role,
			"org": fc.VCard.Org, "orgunit": fc.VCard.OrgUnit, "photo": fc.VCard.Photo,
		} {
			if v != nil {
				s.VCard[name] = *v
			}
		}
	}
	s.check(errs)
	if err := errs.Err(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// Check fills in the defaults of s and validates it. Its errors wrap
// sdk.ErrInvalid and name the config keys to fix.
func (s *Settings) Check() error {
	errs := &sdk.ConfigErrors{Prefix: "ldap backend config"}
	s.check(errs)
	return errs.Err()
}

// check fills in the defaults of s and adds its problems to errs.
func (s *Settings) check(errs *sdk.ConfigErrors) {
	bad := errs.Add
	if len(s.URLs) == 0 {
		bad("url", "missing; want ldaps://host:636, or a list tried in order")
	}
	for _, u := range s.URLs {
		p, err := url.Parse(u)
		switch {
		case err != nil || p.Host == "":
			bad("url", "%q is not an ldap:// or ldaps:// URL", u)
		case p.Scheme == "ldaps":
			if s.StartTLS {
				bad("url", "%q is already TLS; start_tls is for ldap:// URLs", u)
			}
		case p.Scheme == "ldap":
			if !s.StartTLS && !s.AllowPlaintext {
				bad("url", "%q sends passwords in clear text; use ldaps://, set start_tls = true, or (lab setups only) allow_plaintext = true", u)
			}
		default:
			bad("url", "%q: scheme %q is not ldap or ldaps", u, p.Scheme)
		}
	}
	if s.CAFile != "" {
		if _, err := s.tlsRoots(); err != nil {
			bad("ca_file", "%v", err)
		}
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = defaultConnectTimeout
	}
	if s.Timeout == 0 {
		s.Timeout = defaultTimeout
	}
	if s.ConnectTimeout < 0 {
		bad("connect_timeout", "must be positive")
	}
	if s.Timeout < 0 {
		bad("timeout", "must be positive")
	}
	if s.PoolSize == 0 {
		s.PoolSize = defaultPoolSize
	}
	if s.PoolSize < 1 || s.PoolSize > maxPoolSize {
		bad("pool_size", "%d is outside 1..%d", s.PoolSize, maxPoolSize)
	}
	checkDN := func(key, dn string, required bool) {
		if dn == "" {
			if required {
				bad(key, "missing")
			}
			return
		}
		if _, err := ldap.ParseDN(dn); err != nil {
			bad(key, "%q is not a DN: %v", dn, err)
		}
	}
	checkDN("base_dn", s.BaseDN, true)
	checkDN("group_base_dn", s.GroupBaseDN, false)
	checkDN("required_group", s.RequiredGroup, false)
	for _, g := range s.SharedGroups {
		checkDN("shared_groups", g, true)
	}
	if s.BindDN != "" && s.BindPassword == "" {
		bad("bind_password", "missing for bind_dn %q (an empty password would be an anonymous bind)", s.BindDN)
	}
	if s.BindDN == "" && s.BindPassword != "" {
		bad("bind_password", "set without bind_dn")
	}
	switch {
	case s.UserFilter == "":
		bad("user_filter", `missing; for example "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))" or "(uid={user})"`)
	case !strings.Contains(s.UserFilter, userPlaceholder):
		bad("user_filter", "%q has no {user}", s.UserFilter)
	default:
		if _, err := ldap.CompileFilter(strings.ReplaceAll(s.UserFilter, userPlaceholder, "x")); err != nil {
			bad("user_filter", "%q is not an LDAP filter: %v", s.UserFilter, err)
		}
	}
	if s.UserDNTemplate != "" && !strings.Contains(s.UserDNTemplate, userPlaceholder) {
		bad("user_dn_template", "%q has no {user}", s.UserDNTemplate)
	}
	if s.UsernameAttribute == "" {
		s.UsernameAttribute = "uid"
	}
	if s.GroupMembership == "" {
		s.GroupMembership = MembershipMember
	}
	switch s.GroupMembership {
	case MembershipMember, MembershipMemberOf, MembershipAD:
	default:
		bad("group_membership", "%q; want %q, %q or %q", s.GroupMembership, MembershipMember, MembershipMemberOf, MembershipAD)
	}
	if s.GroupBaseDN == "" {
		s.GroupBaseDN = s.BaseDN
	}
	if s.GroupFilter == "" {
		s.GroupFilter = defaultGroupFilter
	}
	if _, err := ldap.CompileFilter(s.GroupFilter); err != nil {
		bad("group_filter", "%q is not an LDAP filter: %v", s.GroupFilter, err)
	}
	if s.GroupMemberAttribute == "" {
		s.GroupMemberAttribute = "member"
	}
	if s.GroupNameAttribute == "" {
		s.GroupNameAttribute = "cn"
	}
	if s.ContactNameAttribute == "" {
		s.ContactNameAttribute = "displayName"
	}
	if s.RefreshInterval == 0 {
		s.RefreshInterval = defaultRefreshInterval
	}
	if s.RefreshInterval < 0 {
		bad("refresh_interval", "must be positive")
	}
	if s.PageSize == 0 {
		s.PageSize = defaultPageSize
	}
	if s.PageSize < 1 || s.PageSize > maxPageSize {
		bad("page_size", "%d is outside 1..%d", s.PageSize, maxPageSize)
	}
	vc := vcardFields()
	for name, attrs := range s.VCard {
		if _, ok := vc[name]; !ok {
			bad("vcard", "unknown field %q", name)
			continue
		}
		vc[name] = attrs
	}
	s.VCard = vc
}

// tlsRoots reads CAFile.
func (s *Settings) tlsRoots() (*x509.CertPool, error) {
	if s.CAFile == "" {
		return nil, nil
	}
	pemBytes, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("no PEM certificate in %s", s.CAFile)
	}
	return pool, nil
}

// tlsConfig is the client TLS configuration for host (from the URL).
func (s *Settings) tlsConfig(host string, roots *x509.CertPool) *tls.Config {
	name := s.TLSServerName
	if name == "" {
		name = host
	}
	return &tls.Config{
		RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: s.InsecureSkipVerify, //nolint:gosec // explicit opt-out for lab directories
	}
}
