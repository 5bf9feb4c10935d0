package ldapbackend

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/sdk"
)

func parse(t *testing.T, js string) (Settings, error) {
	t.Helper()
	return ParseConfig(sdk.Config{Raw: []byte(js)})
}

const minimal = `"base_dn": "dc=example,dc=org", "user_filter": "(uid={user})"`

func TestParseConfigDefaults(t *testing.T) {
	s, err := parse(t, `{"url": "ldaps://dc1:636", `+minimal+`}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.URLs) != 1 || s.ConnectTimeout != 2*time.Second || s.Timeout != 3*time.Second || s.PoolSize != 4 ||
		s.PageSize != 500 || s.RefreshInterval != 5*time.Minute || s.UsernameAttribute != "uid" ||
		s.GroupMembership != MembershipMember || s.GroupBaseDN != "dc=example,dc=org" || s.GroupMemberAttribute != "member" ||
		s.GroupNameAttribute != "cn" || s.ContactNameAttribute != "displayName" || len(s.VCard["photo"]) != 2 {
		t.Errorf("defaults: %+v", s)
	}
	// Lists, and values as environment overrides deliver them (strings).
	s, err = parse(t, `{"url": ["ldap://a", "ldap://b"], "start_tls": "true", "pool_size": "8", "page_size": 100,
		"vcard": {"fn": "cn", "photo": ""}, `+minimal+`}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.URLs) != 2 || !s.StartTLS || s.PoolSize != 8 || s.PageSize != 100 ||
		len(s.VCard["fn"]) != 1 || len(s.VCard["photo"]) != 0 || len(s.VCard["email"]) != 1 {
		t.Errorf("parsed: %+v", s)
	}
}

// Every mistake names its key and wraps sdk.ErrInvalid.
func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ js, want string }{
		{`{` + minimal + `}`, "url: missing"},
		{`{"url": "http://x", ` + minimal + `}`, `scheme "http"`},
		{`{"url": "ldap://x", ` + minimal + `}`, "clear text"},
		{`{"url": "ldaps://x", "start_tls": true, ` + minimal + `}`, "already TLS"},
		{`{"url": "ldaps://x", "user_filter": "(uid={user})"}`, "base_dn: missing"},
		{`{"url": "ldaps://x", "base_dn": "not a dn", "user_filter": "(uid={user})"}`, "base_dn"},
		{`{"url": "ldaps://x", "base_dn": "dc=x"}`, "user_filter: missing"},
		{`{"url": "ldaps://x", "base_dn": "dc=x", "user_filter": "(uid=alice)"}`, "has no {user}"},
		{`{"url": "ldaps://x", "base_dn": "dc=x", "user_filter": "(uid={user}"}`, "not an LDAP filter"},
		{`{"url": "ldaps://x", "bind_dn": "cn=koi", ` + minimal + `}`, "bind_password: missing"},
		{`{"url": "ldaps://x", "bind_password": "x", ` + minimal + `}`, "without bind_dn"},
		{`{"url": "ldaps://x", "user_dn_template": "uid=x", ` + minimal + `}`, "user_dn_template"},
		{`{"url": "ldaps://x", "group_membership": "nested", ` + minimal + `}`, "group_membership"},
		{`{"url": "ldaps://x", "pool_size": 1000, ` + minimal + `}`, "pool_size"},
		{`{"url": "ldaps://x", "pool_size": "many", ` + minimal + `}`, "pool_size"},
		{`{"url": "ldaps://x", "page_size": -1, ` + minimal + `}`, "page_size"},
		{`{"url": "ldaps://x", "timeout": "soon", ` + minimal + `}`, "timeout"},
		{`{"url": "ldaps://x", "ca_file": "/nonexistent.pem", ` + minimal + `}`, "ca_file"},
		{`{"url": "ldaps://x", "shared_groups": ["cn=a", "junk"], ` + minimal + `}`, "shared_groups"},
		{`{"url": "ldaps://x", "vcard": {"fax": "x"}, ` + minimal + `}`, `fax: unknown key`},
		{`{"url": "ldaps://x", "urls": "x", ` + minimal + `}`, `urls: unknown key`},
		{`{"url": 5, ` + minimal + `}`, `url: want []string, got 5`},
	} {
		_, err := parse(t, tc.js)
		if !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant an invalid-config error containing %q", tc.js, err, tc.want)
		}
	}
}

// The directory blocks of the LDAP example configs are valid plugin configs,
// without warnings.
func TestExampleConfigs(t *testing.T) {
	var files []string
	for _, name := range []string{"active-directory.hcl", "openldap.hcl"} {
		files = append(files, filepath.Join("..", "..", "examples", "configs", name))
	}
	for _, f := range files {
		cfg, err := config.Load(f, nil)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		p, ok := cfg.Plugins["directory"]
		if !ok {
			t.Errorf("%s: no plugin \"directory\"", f)
			continue
		}
		if !strings.HasSuffix(p.Command, "bin/plugins/koi-backend-ldap") {
			t.Errorf("%s: command %s", f, p.Command)
		}
		if _, err := os.Stat(p.Config["ca_file"].(string)); err == nil {
			t.Fatalf("%s: ca_file %s exists here; the test expects to drop it", f, p.Config["ca_file"])
		}
		p.Config["ca_file"] = "" // an operator's path, not on this machine
		raw, _ := json.Marshal(p.Config)
		v, err := Validate(sdk.Config{Raw: raw})
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
		// The examples are what operators copy: no pitfalls in them.
		if len(v.Warnings) > 0 {
			t.Errorf("%s: warnings %v", f, v.Warnings)
		}
	}
}

// The user name cannot change a filter's structure.
func TestUserFilterEscaping(t *testing.T) {
	d := &Directory{s: Settings{UserFilter: "(&(objectClass=user)(sAMAccountName={user}))",
		RequiredGroup: "CN=a (b),DC=x", GroupMembership: MembershipAD}}
	for name, want := range map[string]string{
		"alice":    `(&(&(objectClass=user)(sAMAccountName=alice))(memberOf:1.2.840.113556.1.4.1941:=CN=a \28b\29,DC=x))`,
		"*)(cn=*":  `(&(&(objectClass=user)(sAMAccountName=\2a\29\28cn=\2a))(memberOf:1.2.840.113556.1.4.1941:=CN=a \28b\29,DC=x))`,
		"a\x00\\b": `(&(&(objectClass=user)(sAMAccountName=a\00\5cb))(memberOf:1.2.840.113556.1.4.1941:=CN=a \28b\29,DC=x))`,
		"jörg":     `(&(&(objectClass=user)(sAMAccountName=j\c3\b6rg))(memberOf:1.2.840.113556.1.4.1941:=CN=a \28b\29,DC=x))`,
	} {
		if got := d.userFilter(name); got != want {
			t.Errorf("userFilter(%q)\n got %s\nwant %s", name, got, want)
		}
	}
	d.s.UserDNTemplate = "uid={user},ou=people,dc=x"
	if got := d.bindName(user{local: "a,b=c+d"}); got != `uid=a\,b=c\+d,ou=people,dc=x` {
		t.Errorf("DN template: %s", got)
	}
	d.s.UserDNTemplate = "{user}@EXAMPLE.ORG"
	if got := d.bindName(user{local: "alice"}); got != "alice@EXAMPLE.ORG" {
		t.Errorf("UPN template: %s", got)
	}
}
