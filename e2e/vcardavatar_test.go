package e2e

import (
	"strings"
	"testing"
)

// XEP-0398 between real clients: a vCard-era client and a PEP client
// see each other's avatars (the mellium rows are in TestCompliance2023PEP;
// this one is slixmpp's own XEP-0153, XEP-0054 and XEP-0084 plugins).

// TestVCardAvatarConversionSlixmpp runs Debian's python3-slixmpp: alice
// sets her avatar with XEP-0153 and bob, who uses XEP-0084, hears of it
// through PEP and fetches it; bob publishes his with XEP-0084 and alice
// reads it from his vCard after his presence brought its hash.
func TestVCardAvatarConversionSlixmpp(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0084", "slixmpp.plugins.xep_0153", "slixmpp.plugins.xep_0054")
	srv := startServer(t, defaultOptions())
	const pw = "pw-slix-398"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	a := login(t, local, "alice@localhost/setup", pw)
	b := login(t, local, "bob@localhost/setup", pw)
	subscribeBoth(t, a, b)
	a.close()
	b.close()

	out, log, err := runSlixmpp(t, srv, "slixmpp_avatar_conversion.py",
		map[string]any{"alice": "alice@localhost", "bob": "bob@localhost", "password": pw}, func(string) {})
	if err != nil || !strings.HasSuffix(out, "OK") {
		t.Fatalf("slixmpp: %v; its output: %s\nits log:\n%s", err, out, log)
	}
}
