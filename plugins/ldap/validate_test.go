package ldapbackend

import (
	"strings"
	"testing"

	"github.com/koi-im/koi/sdk"
)

func TestValidate(t *testing.T) {
	const base = `"url": "ldaps://dc1:636", "base_dn": "dc=corp,dc=example"`
	tests := []struct {
		name     string
		js       string
		caps     sdk.Capabilities
		problems []string // prefixes, in order
		warnings []string // keys, in order
	}{
		{name: "openldap", js: `{` + base + `, "user_filter": "(uid={user})"}`,
			caps: sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessRead, List: true}, VCard: sdk.AccessRead}},
		{name: "shared roster", js: `{` + base + `, "user_filter": "(uid={user})", "shared_groups": "cn=staff,dc=corp,dc=example"}`,
			caps: sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessRead, List: true}, VCard: sdk.AccessRead, Roster: sdk.AccessRead}},
		{name: "good ad", js: `{` + base + `, "group_membership": "ad", "username_attribute": "sAMAccountName",
			"user_filter": "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))"}`,
			caps: sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessRead, List: true}, VCard: sdk.AccessRead}},
		{name: "ad excluding computers", js: `{` + base + `, "username_attribute": "sAMAccountName",
			"user_filter": "(&(objectClass=user)(!(objectClass=computer))(sAMAccountName={user}))"}`,
			caps: sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessRead, List: true}, VCard: sdk.AccessRead}},
		{name: "ad pitfalls", js: `{` + base + `, "group_membership": "ad",
			"user_filter": "(&(objectClass=User)(sAMAccountName={user}))"}`,
			caps:     sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessRead, List: true}, VCard: sdk.AccessRead},
			warnings: []string{"username_attribute", "user_filter"}},
		{name: "problems", js: `{"url": "ldaps://dc1:636", "user_filterr": "x", "bind_dn": "cn=koi"}`,
			problems: []string{"user_filterr: unknown key"}},
		{name: "several problems", js: `{"url": "http://x", "timeout": "soon", "bind_dn": "cn=koi"}`,
			problems: []string{"timeout: ", "url: ", "base_dn: missing", "bind_password: missing", "user_filter: missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := sdk.Validate(Validate, sdk.Config{Raw: []byte(tt.js)})
			if len(rep.Problems) != len(tt.problems) || rep.OK != (len(tt.problems) == 0) {
				t.Fatalf("problems %v (ok %v), want %q", rep.Problems, rep.OK, tt.problems)
			}
			for i, p := range rep.Problems {
				if !strings.HasPrefix(p.String(), tt.problems[i]) {
					t.Errorf("problem %d is %q, want %q…", i, p, tt.problems[i])
				}
			}
			if rep.Capabilities != tt.caps {
				t.Errorf("capabilities %+v, want %+v", rep.Capabilities, tt.caps)
			}
			var keys []string
			for _, w := range rep.Warnings {
				keys = append(keys, w.Key)
			}
			if strings.Join(keys, ",") != strings.Join(tt.warnings, ",") {
				t.Errorf("warnings %v, want keys %v", rep.Warnings, tt.warnings)
			}
		})
	}
}
