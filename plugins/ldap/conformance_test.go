package ldapbackend

import (
	"encoding/json"
	"testing"

	"github.com/koi-im/koi/internal/testsvc"
	"github.com/koi-im/koi/sdk/sdktest"
)

// TestConformance runs the SDK's conformance kit against the backend, in
// process and as a plugin process started as koi starts it, on slapd.
func TestConformance(t *testing.T) {
	sd := needSlapd(t)
	cfg, err := json.Marshal(map[string]any{
		"url": sd.LDAPSURL, "ca_file": sd.CAFile, "base_dn": testsvc.SlapdBase,
		"bind_dn": testsvc.SlapdServiceDN, "bind_password": testsvc.SlapdServicePW,
		"user_filter":   "(&(objectClass=inetOrgPerson)(uid={user}))",
		"shared_groups": []string{"cn=xmpp-users," + testsvc.SlapdGroups},
	})
	if err != nil {
		t.Fatal(err)
	}
	sdktest.Run(t, New, sdktest.Options{
		Config:           cfg,
		PluginCommand:    sdktest.BuildPlugin(t, "./cmd/koi-backend-ldap"),
		ExistingUser:     "alice",
		ExistingPassword: "alicepw",
		LargeRoster:      -1, // the directory's rosters are not written
	})
}
