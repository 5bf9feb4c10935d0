package ldapbackend

import (
	"strings"

	"github.com/koi-im/koi/sdk"
)

// Validate is the plugin's sdk.Validator: it checks the config block as New
// does, without contacting the directory, and warns about settings that
// pass the checks but fail against a real Active Directory.
func Validate(cfg sdk.Config) (sdk.Validation, error) {
	s, err := ParseConfig(cfg)
	if err != nil {
		return sdk.Validation{}, err
	}
	return sdk.Validation{Capabilities: s.capabilities(), Warnings: s.adPitfalls()}, nil
}

// capabilities is what a Directory with these settings serves: read-only
// auth and vCards, and a read-only shared roster when there are groups to
// build it from.
func (s *Settings) capabilities() sdk.Capabilities {
	c := sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessRead, List: true}, VCard: sdk.AccessRead}
	if len(s.SharedGroups) > 0 {
		c.Roster = sdk.AccessRead
	}
	return c
}

// adPitfalls finds the Active Directory mistakes that the directory itself
// never reports: every search just finds nothing, or too much.
func (s *Settings) adPitfalls() []sdk.ConfigProblem {
	var warn []sdk.ConfigProblem
	// AD entries have no uid, so with the default every login fails as
	// "unknown user".
	if s.GroupMembership == MembershipAD && strings.EqualFold(s.UsernameAttribute, "uid") {
		warn = append(warn, sdk.ConfigProblem{Key: "username_attribute",
			Msg: `is "uid" (the default), but group_membership = "ad" means Active Directory, whose users have no uid; ` +
				`set username_attribute = "sAMAccountName" (or "userPrincipalName")`})
	}
	// In AD a computer account is objectClass=user too, so such a filter
	// lets a machine account log in with its (machine-set) password.
	f := strings.ToLower(strings.Join(strings.Fields(s.UserFilter), ""))
	if strings.Contains(f, "(objectclass=user)") &&
		!strings.Contains(f, "(objectcategory=person)") && !strings.Contains(f, "(!(objectclass=computer))") {
		warn = append(warn, sdk.ConfigProblem{Key: "user_filter",
			Msg: "matches computer accounts too (in Active Directory a computer is also objectClass=user); " +
				"add (objectCategory=person) or (!(objectClass=computer))"})
	}
	return warn
}
