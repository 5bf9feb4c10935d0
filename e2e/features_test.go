package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestFeatures covers the server's small modules: service discovery,
// ping, time, version, vcard-temp, private XML storage, in-band
// registration and password change.
func TestFeatures(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions()) // registration on example.test only
	const pw = "pw-features"
	srv.addUser(t, "olga@localhost", pw)
	srv.addUser(t, "pete@localhost", pw)
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	c := login(t, local, "olga@localhost/f", pw)

	t.Run("disco#info", func(t *testing.T) {
		r := c.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		q := r.child(nsDiscoInfo, "query")
		if r.attr("type") != "result" || q == nil {
			t.Fatalf("disco#info: %s", r)
		}
		if id := q.child(nsDiscoInfo, "identity"); id.attr("category") != "server" || id.attr("type") != "im" {
			t.Errorf("identity %s, want category server, type im", id)
		}
		have := map[string]bool{}
		for _, f := range q.children(nsDiscoInfo, "feature") {
			have[f.attr("var")] = true
		}
		for _, want := range []string{nsDiscoInfo, nsPing, nsVersion, nsTime, nsVCard, nsPrivate} {
			if !have[want] {
				t.Errorf("disco#info lacks feature %s: %s", want, r)
			}
		}
	})

	t.Run("ping", func(t *testing.T) {
		r := c.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		if r.attr("type") != "result" || r.attr("from") != "localhost" {
			t.Errorf("ping: %s", r)
		}
	})

	t.Run("time", func(t *testing.T) {
		r := c.iq("<iq type='get' to='localhost'><time xmlns='urn:xmpp:time'/></iq>")
		tm := r.child(nsTime, "time")
		if r.attr("type") != "result" || tm == nil {
			t.Fatalf("time: %s", r)
		}
		utc, err := time.Parse(time.RFC3339, strings.TrimSpace(tm.path("utc").Text))
		if err != nil {
			t.Fatalf("utc %q: %v", tm.path("utc").Text, err)
		}
		if d := time.Since(utc); d > time.Minute || d < -time.Minute {
			t.Errorf("server time %v is %v off", utc, d)
		}
		if tzo := tm.path("tzo"); tzo == nil || len(strings.TrimSpace(tzo.Text)) != 6 {
			t.Errorf("tzo %s, want like +00:00", tzo)
		}
	})

	t.Run("version", func(t *testing.T) {
		r := c.iq("<iq type='get' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
		q := r.child(nsVersion, "query")
		if r.attr("type") != "result" || q == nil {
			t.Fatalf("version: %s", r)
		}
		if q.path("name").Text != "koi" || q.path("version") == nil || q.path("version").Text == "" {
			t.Errorf("version: %s, want name koi and a version", r)
		}
	})

	t.Run("vcard-temp", func(t *testing.T) {
		if r := c.iq("<iq type='get'><vCard xmlns='vcard-temp'/></iq>"); r.attr("type") != "result" || r.child(nsVCard, "vCard") == nil || len(r.child(nsVCard, "vCard").Children) != 0 {
			t.Errorf("vCard before any set: %s, want an empty vCard", r)
		}
		set := "<iq type='set'><vCard xmlns='vcard-temp'><FN>Olga Ivanova</FN><NICKNAME>olga &amp; co</NICKNAME><EMAIL><USERID>olga@example.org</USERID></EMAIL></vCard></iq>"
		if r := c.iq(set); r.attr("type") != "result" {
			t.Fatalf("vCard set: %s", r)
		}
		r := c.iq("<iq type='get'><vCard xmlns='vcard-temp'/></iq>")
		v := r.child(nsVCard, "vCard")
		if v.path("FN").Text != "Olga Ivanova" || v.path("NICKNAME").Text != "olga & co" || v.path("EMAIL", "USERID").Text != "olga@example.org" {
			t.Errorf("vCard get: %s", r)
		}
		// Another user reads it at the bare JID; only the owner writes.
		pete := login(t, local, "pete@localhost/p", pw)
		r = pete.iq("<iq type='get' to='olga@localhost'><vCard xmlns='vcard-temp'/></iq>")
		if r.attr("from") != "olga@localhost" || r.path("vCard", "FN").Text != "Olga Ivanova" {
			t.Errorf("pete reads olga's vCard: %s", r)
		}
		r = pete.iq("<iq type='set' to='olga@localhost'><vCard xmlns='vcard-temp'><FN>pwned</FN></vCard></iq>")
		if r.attr("type") != "error" {
			t.Errorf("pete changed olga's vCard: %s", r)
		}
	})

	t.Run("private XML storage", func(t *testing.T) {
		get := "<iq type='get'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>"
		if r := c.iq(get); r.attr("type") != "result" || r.path("query", "prefs") == nil || len(r.path("query", "prefs").Children) != 0 {
			t.Errorf("private get before any set: %s, want the empty element", r)
		}
		set := "<iq type='set'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'><color>teal</color><size n='3'/></prefs></query></iq>"
		if r := c.iq(set); r.attr("type") != "result" {
			t.Fatalf("private set: %s", r)
		}
		r := c.iq(get)
		p := r.path("query", "prefs")
		if !p.is("urn:example:prefs", "prefs") || p.path("color").Text != "teal" || p.path("size").attr("n") != "3" {
			t.Errorf("private get: %s", r)
		}
		// Another namespace is another item.
		r = c.iq("<iq type='get'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:other'/></query></iq>")
		if p := r.path("query", "prefs"); p == nil || len(p.Children) != 0 {
			t.Errorf("private get of another namespace: %s", r)
		}
	})

	t.Run("unknown namespace", func(t *testing.T) {
		for _, to := range []string{"localhost", "olga@localhost"} {
			r := c.iq("<iq type='get' to='" + to + "'><query xmlns='urn:example:nothing-here'/></iq>")
			if typ, cond := r.stanzaError(); r.attr("type") != "error" || cond != "service-unavailable" || typ != "cancel" {
				t.Errorf("IQ to %s in an unknown namespace: %s, want cancel/service-unavailable", to, r)
			}
		}
	})

	t.Run("registration", func(t *testing.T) {
		// example.test has registration on.
		cfg := srv.tlsConfig(t, secondHost)
		r := dialRaw(t, srv.c2s, nil)
		r.open(secondHost)
		f := r.startTLS(secondHost, cfg)
		if f.child(nsRegFeat, "register") == nil {
			t.Errorf("features of %s lack <register/>: %s", secondHost, f)
		}
		r.send("<iq type='get' id='reg1'><query xmlns='jabber:iq:register'/></iq>")
		form := r.mustNext()
		if form.attr("type") != "result" || form.path("query", "username") == nil || form.path("query", "password") == nil {
			t.Fatalf("registration form: %s", form)
		}
		r.send("<iq type='set' id='reg2'><query xmlns='jabber:iq:register'><username>newbie</username><password>fresh pass</password></query></iq>")
		if res := r.mustNext(); res.attr("type") != "result" || res.attr("id") != "reg2" {
			t.Fatalf("registration: %s", res)
		}
		r.send("<iq type='set' id='reg3'><query xmlns='jabber:iq:register'><username>newbie</username><password>again</password></query></iq>")
		if res := r.mustNext(); res.attr("type") != "error" {
			t.Errorf("registering a taken name: %s, want an error", res)
		} else if _, cond := res.stanzaError(); cond != "conflict" {
			t.Errorf("registering a taken name: %s, want <conflict/>", res)
		}
		n := login(t, dialOpts{addr: srv.c2s, tls: cfg}, "newbie@"+secondHost+"/first", "fresh pass")
		if res := n.iq("<iq type='get' to='" + secondHost + "'><ping xmlns='urn:xmpp:ping'/></iq>"); res.attr("type") != "result" {
			t.Errorf("ping as the new account: %s", res)
		}

		// The account can be removed again (XEP-0077 §3.2), addressed to the
		// server as in the XEP's examples; its sessions end.
		other := login(t, dialOpts{addr: srv.c2s, tls: cfg}, "newbie@"+secondHost+"/second", "fresh pass")
		if res := n.iq("<iq type='get' to='" + secondHost + "'><query xmlns='jabber:iq:register'/></iq>"); res.attr("type") != "result" || res.path("query", "registered") == nil {
			t.Errorf("registration info asked of the server: %s, want <registered/>", res)
		}
		if res := n.iq("<iq type='set' to='localhost'><query xmlns='jabber:iq:register'><remove/></query></iq>"); res.attr("type") != "error" {
			t.Fatalf("removal addressed to another domain: %s, want an error", res)
		}
		if res := n.iq("<iq type='set' to='" + secondHost + "'><query xmlns='jabber:iq:register'><remove/></query></iq>"); res.attr("type") != "result" {
			t.Fatalf("account removal: %s", res)
		}
		if cond, err := other.waitStreamError(waitTimeout); cond != "not-authorized" {
			t.Errorf("session of a removed account ended with %q (%v), want <not-authorized/>", cond, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if c, err := connect(ctx, t, dialOpts{addr: srv.c2s, tls: cfg}, "newbie@"+secondHost+"/third", "fresh pass"); err == nil {
			c.close()
			t.Errorf("a removed account can still log in")
		}

		// localhost has it off.
		r = dialRaw(t, srv.c2s, nil)
		r.open("localhost")
		f = r.startTLS("localhost", srv.tlsConfig(t, "localhost"))
		if f.child(nsRegFeat, "register") != nil {
			t.Errorf("localhost offers registration with registration = false: %s", f)
		}
		r.send("<iq type='set' id='reg4'><query xmlns='jabber:iq:register'><username>sneaky</username><password>x</password></query></iq>")
		res, err := r.next(waitTimeout)
		if err != nil {
			t.Fatalf("registration on localhost: %v", err)
		}
		if res.attr("type") != "error" {
			t.Fatalf("registration on localhost: %s, want an error", res)
		}
		if _, cond := res.stanzaError(); cond != "not-allowed" {
			t.Errorf("registration on localhost: %s, want <not-allowed/>", res)
		}
		if out, err := srv.koictl("user", "list", "localhost"); err != nil || strings.Contains(out, "sneaky") {
			t.Errorf("koictl user list localhost: %v\n%s", err, out)
		}
	})

	t.Run("password change", func(t *testing.T) {
		pete := login(t, local, "pete@localhost/pw", pw)
		r := pete.iq("<iq type='set'><query xmlns='jabber:iq:register'><username>pete</username><password>new secret</password></query></iq>")
		if r.attr("type") != "result" {
			t.Fatalf("password change: %s", r)
		}
		login(t, local, "pete@localhost/new", "new secret")
		// The same, addressed to the server as in XEP-0077's examples.
		r = pete.iq("<iq type='set' to='localhost'><query xmlns='jabber:iq:register'><username>pete</username><password>newer secret</password></query></iq>")
		if r.attr("type") != "result" {
			t.Fatalf("password change addressed to the server: %s", r)
		}
		login(t, local, "pete@localhost/newer", "newer secret")
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if old, err := connect(ctx, t, local, "pete@localhost/old", pw); err == nil {
			old.close()
			t.Errorf("the old password still works")
		}
		// Nobody changes another account's password.
		r = pete.iq("<iq type='set' to='olga@localhost'><query xmlns='jabber:iq:register'><username>olga</username><password>mine now</password></query></iq>")
		if r.attr("type") != "error" {
			t.Errorf("pete changed olga's password: %s", r)
		}
	})
}
