// Package contactinfo publishes who runs the server (XEP-0157): abuse,
// admin, feedback, sales, security and support addresses, as the
// serverinfo form in the disco#info of each host (XEP-0128), where
// clients and other operators look for them (as Prosody's
// mod_server_contact_info).
package contactinfo

import (
	"slices"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/xmlstream"
)

// FormType is the form's FORM_TYPE.
const FormType = "http://jabber.org/network/serverinfo"

// Registrar is what publishing needs of the module server
// (modules.Server implements it).
type Registrar interface {
	AddServerInfo(f func(*modules.Host) *xmlstream.Element)
}

// Register publishes addrs (URIs by role: "abuse", "admin"…) on every
// host of srv; nothing when there are none.
func Register(addrs map[string][]string, srv Registrar) {
	if len(addrs) == 0 {
		return
	}
	srv.AddServerInfo(func(*modules.Host) *xmlstream.Element { return Form(addrs) })
}

// Form is the serverinfo form of addrs: a list-multi field ROLE-addresses
// for each role, in the order of the roles' names.
func Form(addrs map[string][]string) *xmlstream.Element {
	roles := make([]string, 0, len(addrs))
	for r := range addrs {
		roles = append(roles, r)
	}
	slices.Sort(roles)
	fields := make([]dataform.Field, len(roles))
	for i, r := range roles {
		fields[i] = dataform.Field{Var: r + "-addresses", Type: "list-multi", Values: addrs[r]}
	}
	return dataform.Build("result", FormType, "", "", fields)
}
