// Command koi-backend-ldap is koi's LDAP directory backend plugin
// (Active Directory, OpenLDAP): read-only authentication, a shared roster
// from directory groups and vCards from directory entries. koi starts it
// as configured in a plugin block; it is not meant to be run by hand.
package main

import (
	ldapbackend "github.com/koi-im/koi/plugins/ldap"
	"github.com/koi-im/koi/sdk"
)

func main() {
	sdk.Serve(ldapbackend.New, sdk.WithValidator(ldapbackend.Validate))
}
