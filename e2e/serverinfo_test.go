package e2e

import (
	"slices"
	"testing"
)

// TestContactAddresses: the contact block's addresses are in the server's
// disco#info as the serverinfo form (XEP-0157), for every host.
func TestContactAddresses(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.Extra = `contact { abuse = ["mailto:abuse@localhost", "xmpp:abuse@localhost"]  support = ["https://localhost/help"] }` + "\n"
	srv := startServer(t, opt)
	const pw = "pw-contact"
	srv.addUser(t, "alice@localhost", pw)
	alice := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}, "alice@localhost/pc", pw)
	for _, host := range []string{"localhost", secondHost} {
		info := alice.iq("<iq type='get' to='" + host + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
		fields := map[string][]string{}
		for _, x := range info.child(nsDiscoInfo, "query").children("jabber:x:data", "x") {
			for _, f := range x.children("jabber:x:data", "field") {
				for _, v := range f.children("jabber:x:data", "value") {
					fields[f.attr("var")] = append(fields[f.attr("var")], v.Text)
				}
			}
		}
		if !slices.Equal(fields["FORM_TYPE"], []string{"http://jabber.org/network/serverinfo"}) ||
			!slices.Equal(fields["abuse-addresses"], []string{"mailto:abuse@localhost", "xmpp:abuse@localhost"}) ||
			!slices.Equal(fields["support-addresses"], []string{"https://localhost/help"}) || len(fields) != 3 {
			t.Fatalf("%s's contact addresses: %v in %s", host, fields, info)
		}
	}
}
