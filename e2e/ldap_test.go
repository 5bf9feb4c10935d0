package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"mellium.im/sasl"

	"github.com/koi-im/koi/e2e/internal/koiproc"
	"github.com/koi-im/koi/internal/testsvc"
)

// The ldap plugin end to end: koi runs the shipped example configs
// (examples/configs/openldap.hcl and active-directory.hcl), pointed by
// KOI_ variables at a throwaway slapd or Samba AD domain controller, and a
// real XMPP client logs in with its directory password.

const ldapDomain = "example.org" // the host of both example configs

var ldapPlugin struct {
	once sync.Once
	path string
	err  error
}

// ldapPluginBin builds plugins/ldap once, next to the other plugins.
func ldapPluginBin(t testing.TB) string {
	t.Helper()
	ldapPlugin.once.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			ldapPlugin.err = err
			return
		}
		out := filepath.Join(binDir, "plugins", "koi-backend-ldap")
		args := []string{"build", "-o", out, "./plugins/ldap/cmd/koi-backend-ldap"}
		if os.Getenv("E2E_RACE") != "" {
			args = append([]string{"build", "-race"}, args[1:]...)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			ldapPlugin.err = fmt.Errorf("go %v: %w\n%s", args, err, b)
			return
		}
		ldapPlugin.path = out
	})
	if ldapPlugin.err != nil {
		t.Fatal(ldapPlugin.err)
	}
	return ldapPlugin.path
}

// ldapServer is a koi started on an example config with overrides.
type ldapServer struct {
	*server
	env []string // the KOI_ overrides, for koictl too
}

// startExample starts koi on examples/configs/NAME with the test's paths
// and addresses, plus the directory overrides in extra (KOI_ variables).
func startExample(t testing.TB, name string, extra ...string) *ldapServer {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "examples", "configs", name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c2s, c2sTLS := freeAddr(t), freeAddr(t)
	env := append([]string{
		"KOI_LOG__LEVEL=debug",
		"KOI_LISTEN__C2S__ADDRESS=" + c2s,
		"KOI_LISTEN__C2S_TLS__ADDRESS=" + c2sTLS,
		"KOI_TLS__CERT_FILE=" + filepath.Join(dir, "tls", "cert.pem"),
		"KOI_TLS__KEY_FILE=" + filepath.Join(dir, "tls", "key.pem"),
		"KOI_PLUGIN__STORE__COMMAND=" + pluginBin(),
		"KOI_PLUGIN__STORE__CONFIG__DSN=" + filepath.Join(dir, "koi.db"),
		"KOI_PLUGIN__DIRECTORY__COMMAND=" + ldapPluginBin(t),
		"KOI_SERVER__DATA_DIR=" + filepath.Join(dir, "data"),
		"KOI_SERVER__SHUTDOWN_TIMEOUT=5s",
		// Many deliberate failures below; the throttle is tested elsewhere.
		"KOI_LIMITS__AUTH_FAILURES_PER_IP=0",
		"KOI_LIMITS__AUTH_FAILURES_PER_ACCOUNT=0",
	}, extra...)
	s := launch(t, dir, path, c2s, c2sTLS, options{}, env)
	return &ldapServer{server: s, env: env}
}

// koictl runs koictl on the same config and overrides as the server.
func (s *ldapServer) koictl(args ...string) (string, error) { return s.koictlEnv(nil, args...) }

// koictlEnv is koictl with more KOI_ overrides.
func (s *ldapServer) koictlEnv(env []string, args ...string) (string, error) {
	cmd := exec.Command(koictlBin(), append([]string{"-config", s.config}, args...)...)
	cmd.Env = append(append(koiproc.ChildEnv(), s.env...), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// plain logs in with SASL PLAIN, the only mechanism a directory allows.
func (s *ldapServer) plain(t *testing.T, full, password string) *client {
	t.Helper()
	return login(t, dialOpts{addr: s.c2s, tls: s.tlsConfig(t, ldapDomain), mechs: []sasl.Mechanism{sasl.Plain}}, full, password)
}

// saslResult tries user/password with PLAIN on a raw stream and returns
// the SASL failure condition, or "success".
func (s *ldapServer) saslResult(t *testing.T, user, password string) string {
	t.Helper()
	r := dialRaw(t, s.c2s, nil)
	r.open(ldapDomain)
	r.startTLS(ldapDomain, s.tlsConfig(t, ldapDomain))
	el := r.auth(sasl.Plain, user, password)
	if el.is(nsSASL, "success") {
		return "success"
	}
	return saslCondition(el)
}

// mechanisms returns the SASL mechanisms offered after STARTTLS.
func (s *ldapServer) mechanisms(t *testing.T) []string {
	t.Helper()
	r := dialRaw(t, s.c2s, nil)
	r.open(ldapDomain)
	f := r.startTLS(ldapDomain, s.tlsConfig(t, ldapDomain))
	var out []string
	for _, m := range f.child(nsSASL, "mechanisms").children(nsSASL, "mechanism") {
		out = append(out, strings.TrimSpace(m.Text))
	}
	return out
}

// rosterItems gets the roster: "jid|name|subscription|group,group" lines.
func rosterItems(t *testing.T, c *client) []string {
	t.Helper()
	r := c.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
	if r.attr("type") != "result" {
		t.Fatalf("roster get: %s", r)
	}
	var out []string
	for _, it := range r.child(nsRoster, "query").children(nsRoster, "item") {
		var groups []string
		for _, g := range it.children(nsRoster, "group") {
			groups = append(groups, g.Text)
		}
		sort.Strings(groups)
		out = append(out, it.attr("jid")+"|"+it.attr("name")+"|"+it.attr("subscription")+"|"+strings.Join(groups, ","))
	}
	sort.Strings(out)
	return out
}

func TestLDAPOpenLDAP(t *testing.T) {
	t.Parallel()
	sd, err := testsvc.StartSlapd(context.Background(), t.TempDir(), testsvc.SlapdOptions{})
	testsvc.Require(t, err)
	t.Cleanup(func() { sd.Stop() })
	srv := startExample(t, "openldap.hcl",
		"KOI_PLUGIN__DIRECTORY__CONFIG__URL="+sd.URL, // StartTLS, as the example
		"KOI_PLUGIN__DIRECTORY__CONFIG__CA_FILE="+sd.CAFile,
		"KOI_PLUGIN__DIRECTORY__CONFIG__BIND_PASSWORD="+testsvc.SlapdServicePW,
		"KOI_PLUGIN__DIRECTORY__CONFIG__REFRESH_INTERVAL=1s",
		"KOI_PLUGIN__DIRECTORY__CONFIG__CONNECT_TIMEOUT=500ms",
		"KOI_PLUGIN__DIRECTORY__CONFIG__TIMEOUT=1s",
	)
	const d = "@" + ldapDomain

	t.Run("only PLAIN is offered", func(t *testing.T) {
		if got := srv.mechanisms(t); !slices.Equal(got, []string{"PLAIN"}) {
			t.Errorf("mechanisms after STARTTLS = %q, want only PLAIN", got)
		}
		r := dialRaw(t, srv.c2s, nil)
		if f := r.open(ldapDomain); f.child(nsSASL, "mechanisms") != nil {
			t.Errorf("SASL offered before TLS: %s", f)
		}
	})

	t.Run("directory users log in", func(t *testing.T) {
		a := srv.plain(t, "alice"+d+"/pc", "alicepw")
		if r := a.iq("<iq type='get' to='" + ldapDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("ping: %s", r)
		}
		srv.plain(t, "jürgen"+d+"/pc", "jürgenpw")
		srv.plain(t, "carol"+d+"/pc", "carolpw") // in xmpp-users through xmpp-admins
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if c, err := connect(ctx, t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, ldapDomain), mechs: []sasl.Mechanism{sasl.ScramSha256}}, "alice"+d+"/scram", "alicepw"); err == nil {
			c.close()
			t.Error("SCRAM-SHA-256 login against a directory succeeded")
		}
	})

	t.Run("refused logins", func(t *testing.T) {
		for _, tc := range []struct{ name, user, password, want string }{
			{"wrong password", "alice", "bobpw", "not-authorized"},
			{"password case", "alice", "ALICEPW", "not-authorized"},
			{"unknown user", "nobody", "alicepw", "not-authorized"},
			{"not in the required group", "dave", "davepw", "not-authorized"},
			{"empty password", "alice", "", "not-authorized"},
			{"whitespace password", "alice", "   ", "not-authorized"},
			{"filter wildcard", "*", "alicepw", "not-authorized"},
			{"filter injection", ")(uid=*", "alicepw", "not-authorized"},
			{"filter injection after a name", "alice)(uid=*", "alicepw", "not-authorized"},
			{"filter injection with or", "*)(|(uid=*", "*", "not-authorized"},
			{"escaped NUL", `alice\00`, "alicepw", "not-authorized"},
			{"NUL in the name", "alice\x00", "alicepw", "malformed-request"},
			{"NUL in the password", "alice", "alice\x00pw", "malformed-request"},
			{"a DN as name", "uid=alice,ou=people,dc=example,dc=org", "alicepw", "not-authorized"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := srv.saslResult(t, tc.user, tc.password); got != tc.want {
					t.Errorf("PLAIN %q/%q: %s, want %s", tc.user, tc.password, got, tc.want)
				}
			})
		}
		// Unicode names are normalised as JIDs are: JÜRGEN is jürgen.
		if got := srv.saslResult(t, "JÜRGEN", "jürgenpw"); got != "success" {
			t.Errorf("JÜRGEN: %s", got)
		}
	})

	t.Run("the directory is read-only", func(t *testing.T) {
		a := srv.plain(t, "alice"+d+"/ro", "alicepw")
		r := a.iq("<iq type='set'><query xmlns='jabber:iq:register'><username>alice</username><password>new pass</password></query></iq>")
		if _, cond := r.stanzaError(); r.attr("type") != "error" || cond != "not-allowed" {
			t.Errorf("password change: %s, want <not-allowed/>", r)
		}
		r = a.iq("<iq type='set'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>")
		if _, cond := r.stanzaError(); cond != "not-allowed" {
			t.Errorf("vCard set: %s, want <not-allowed/>", r)
		}
		raw := dialRaw(t, srv.c2s, nil)
		raw.open(ldapDomain)
		raw.startTLS(ldapDomain, srv.tlsConfig(t, ldapDomain))
		raw.send("<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>newbie</username><password>x</password></query></iq>")
		if res := raw.mustNext(); res.attr("type") != "error" {
			t.Errorf("registration: %s, want an error", res)
		} else if _, cond := res.stanzaError(); cond != "not-allowed" {
			t.Errorf("registration: %s, want <not-allowed/>", res)
		}
		out, err := srv.koictl("user", "passwd", "alice"+d, "new pass")
		if err == nil || !strings.Contains(out, "read-only") {
			t.Errorf("koictl user passwd for a directory user: %v\n%s", err, out)
		}
		if out, err := srv.koictl("user", "add", "alice"+d, "x"); err == nil {
			t.Errorf("koictl created alice, who is in the directory:\n%s", out)
		}
		// A host with only the directory: koictl refuses and says why.
		out, err = srv.koictlEnv([]string{"KOI_HOST__EXAMPLE.ORG__AUTH=directory"}, "user", "add", "newbie"+d, "x")
		if err == nil || !strings.Contains(out, "read-only") || !strings.Contains(out, "directory") {
			t.Errorf("koictl user add on a directory-only host: %v\n%s", err, out)
		}
	})

	t.Run("auth chain: bots in SQL", func(t *testing.T) {
		if out, err := srv.koictl("user", "add", "build-bot"+d, "bot secret"); err != nil {
			t.Fatalf("koictl user add build-bot: %v\n%s", err, out)
		}
		// koictl user list names the backend of each account in a chain,
		// and lists the directory's (members of xmpp-users, carol nested).
		out, err := srv.koictl("user", "list", ldapDomain)
		for _, line := range []string{"alice" + d + "\tdirectory", "carol" + d + "\tdirectory", "jürgen" + d + "\tdirectory", "build-bot" + d + "\tstore"} {
			if err != nil || !strings.Contains(out, line+"\n") {
				t.Errorf("koictl user list: %v, no line %q in\n%s", err, line, out)
			}
		}
		if strings.Contains(out, "dave"+d) {
			t.Errorf("koictl user list shows dave, who is not in xmpp-users:\n%s", out)
		}
		out, err = srv.koictlEnv([]string{"KOI_HOST__EXAMPLE.ORG__AUTH=directory"}, "user", "list", ldapDomain)
		if err != nil || !strings.Contains(out, "alice"+d+"\n") || strings.Contains(out, "\t") || !strings.Contains(out, `plugin "directory" live in a directory`) {
			t.Errorf("koictl user list on a directory-only host: %v\n%s", err, out)
		}
		b := srv.plain(t, "build-bot"+d+"/ci", "bot secret")
		if r := b.iq("<iq type='get' to='" + ldapDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("ping as the bot: %s", r)
		}
		if got := srv.saslResult(t, "build-bot", "alicepw"); got != "not-authorized" {
			t.Errorf("bot with a wrong password: %s", got)
		}
		// The bot changes its own password in SQL; directory users cannot.
		r := b.iq("<iq type='set'><query xmlns='jabber:iq:register'><username>build-bot</username><password>rotated</password></query></iq>")
		if r.attr("type") != "result" {
			t.Errorf("bot password change: %s", r)
		}
	})

	t.Run("messages: known users get them later, unknown bounce", func(t *testing.T) {
		a := srv.plain(t, "alice"+d+"/msg", "alicepw")
		a.send("<presence/>")
		a.send("<message to='bob" + d + "' type='chat' id='m1'><body>for later</body></message>")
		a.send("<message to='nobody" + d + "' type='chat' id='m2'><body>lost</body></message>")
		a.send("<message to='dave" + d + "' type='chat' id='m3'><body>not an XMPP user</body></message>")
		for _, id := range []string{"m2", "m3"} {
			e := a.expect("bounce of "+id, func(e *element) bool { return e.is("", "message") && e.attr("id") == id })
			if _, cond := e.stanzaError(); cond != "service-unavailable" {
				t.Errorf("message to an unknown user: %s", e)
			}
		}
		a.expectNone("bounce of m1", 300*time.Millisecond, func(e *element) bool { return e.attr("id") == "m1" })
		b := srv.plain(t, "bob"+d+"/phone", "bobpw")
		b.send("<presence/>")
		m := b.expect("the offline message", isMessageFrom("alice"+d+"/msg"))
		if m.path("body").Text != "for later" || m.child(nsDelay, "delay") == nil {
			t.Errorf("offline message: %s", m)
		}
	})

	t.Run("shared roster", func(t *testing.T) {
		a := srv.plain(t, "alice"+d+"/roster", "alicepw")
		want := []string{
			"bob" + d + "|Bob Builder|both|Everyone",
			"carol" + d + "|carol|both|Everyone,Research Team", // no displayName: cn
			"jürgen" + d + "|Jürgen Müller|both|Everyone",
		}
		if got := rosterItems(t, a); !slices.Equal(got, want) {
			t.Fatalf("alice's roster:\n got %q\nwant %q", got, want)
		}
		// A personal contact joins the shared ones; shared ones stay.
		r := a.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='build-bot" + d + "' name='CI'/></query></iq>")
		if r.attr("type") != "result" {
			t.Fatalf("adding a personal contact: %s", r)
		}
		a.expect("roster push", isRosterPush("build-bot"+d))
		r = a.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='carol" + d + "' subscription='remove'/></query></iq>")
		if _, cond := r.stanzaError(); cond != "not-allowed" {
			t.Errorf("removing a shared contact: %s, want <not-allowed/>", r)
		}
		if got := rosterItems(t, a); len(got) != 4 || got[1] != "build-bot"+d+"|CI|none|" {
			t.Errorf("roster after the changes: %q", got)
		}
		// Shared contacts get each other's presence without subscribing.
		a.send("<presence/>")
		c := srv.plain(t, "carol"+d+"/phone", "carolpw")
		c.send("<presence><status>here</status></presence>")
		c.expect("alice's presence (probe)", isPresence("", "alice"+d+"/roster"))
		a.expect("carol's presence", isPresence("", "carol"+d+"/phone"))
	})

	t.Run("vCard from the directory", func(t *testing.T) {
		a := srv.plain(t, "alice"+d+"/vcard", "alicepw")
		v := a.iq("<iq type='get'><vCard xmlns='vcard-temp'/></iq>").child(nsVCard, "vCard")
		if v.path("FN").Text != "Alice Liddell" || v.path("TITLE").Text != "Engineer" || v.path("ORG", "ORGUNIT").Text != "Research" ||
			v.path("TEL", "NUMBER").Text != "+1 555 0100" || v.path("EMAIL", "USERID").Text != "alice@example.org" ||
			v.path("PHOTO", "TYPE").Text != "image/jpeg" {
			t.Errorf("alice's vCard: %s", v)
		}
		if b, err := base64.StdEncoding.DecodeString(v.path("PHOTO", "BINVAL").Text); err != nil || len(b) < 100 {
			t.Errorf("photo: %d bytes, %v", len(b), err)
		}
		if v := a.iq("<iq type='get' to='bob"+d+"'><vCard xmlns='vcard-temp'/></iq>").child(nsVCard, "vCard"); v.path("FN").Text != "Bob Builder" {
			t.Errorf("bob's vCard: %s", v)
		}
	})

	t.Run("directory changes show after the refresh interval", func(t *testing.T) {
		ad, err := ldap.DialURL(sd.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer ad.Close()
		if err := ad.Bind(testsvc.SlapdAdminDN, testsvc.SlapdAdminPW); err != nil {
			t.Fatal(err)
		}
		mod := ldap.NewModifyRequest("cn=research,"+testsvc.SlapdGroups, nil)
		mod.Add("member", []string{"uid=bob," + testsvc.SlapdPeople})
		if err := ad.Modify(mod); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		b := srv.plain(t, "bob"+d+"/later", "bobpw") // no other session of bob: the roster is read afresh
		if got := rosterItems(t, b); !slices.Contains(got, "alice"+d+"|Alice Liddell|both|Everyone,Research Team") {
			t.Errorf("bob's roster after joining research: %q", got)
		}
	})

	t.Run("a slow directory", func(t *testing.T) {
		if err := sd.Pause(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got := srv.saslResult(t, "alice", "alicepw")
		sd.Resume()
		if got != "temporary-auth-failure" {
			t.Errorf("login with the directory frozen: %s, want temporary-auth-failure", got)
		}
		if el := time.Since(start); el > 4*time.Second {
			t.Errorf("the failure took %v", el)
		}
		if got := srv.saslResult(t, "alice", "alicepw"); got != "success" {
			t.Errorf("login after the directory recovered: %s", got)
		}
	})

	t.Run("the directory is down", func(t *testing.T) {
		a := srv.plain(t, "alice"+d+"/down", "alicepw")
		if err := sd.Stop(); err != nil {
			t.Fatal(err)
		}
		if got := srv.saslResult(t, "alice", "alicepw"); got != "temporary-auth-failure" {
			t.Errorf("login with the directory down: %s, want temporary-auth-failure", got)
		}
		// Whether carol exists cannot be known: the sender hears so.
		a.send("<message to='carol" + d + "' type='chat' id='down1'><body>?</body></message>")
		e := a.expect("an error for the message", func(e *element) bool { return e.attr("id") == "down1" })
		if typ, cond := e.stanzaError(); cond != "internal-server-error" || typ != "wait" {
			t.Errorf("message while the directory is down: %s", e)
		}
		// The established session is unaffected.
		if r := a.iq("<iq type='get' to='" + ldapDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("ping: %s", r)
		}
	})
}

// TestLDAPActiveDirectory runs examples/configs/active-directory.hcl
// against Samba AD.
func TestLDAPActiveDirectory(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ad, err := testsvc.StartSambaAD(ctx)
	testsvc.Require(t, err)
	t.Cleanup(func() { ad.Stop() })
	t.Logf("samba AD: %s", ad.Setup)
	srv := startExample(t, "active-directory.hcl",
		"KOI_PLUGIN__DIRECTORY__CONFIG__URL="+ad.LDAPSURL,
		"KOI_PLUGIN__DIRECTORY__CONFIG__CA_FILE="+ad.CAFile,
		"KOI_PLUGIN__DIRECTORY__CONFIG__BIND_PASSWORD="+testsvc.ADPasswords["svc-koi"],
	)
	pw := testsvc.ADPasswords
	const d = "@" + ldapDomain

	t.Run("logins", func(t *testing.T) {
		if got := srv.mechanisms(t); !slices.Equal(got, []string{"PLAIN"}) {
			t.Errorf("mechanisms = %q, want only PLAIN", got)
		}
		srv.plain(t, "alice"+d+"/pc", pw["alice"])
		srv.plain(t, "carol"+d+"/pc", pw["carol"]) // nested group
		srv.plain(t, "jörg"+d+"/pc", pw["jörg"])
		for _, tc := range []struct{ user, password, want string }{
			{"alice", pw["bob"], "not-authorized"},
			{"bob", pw["bob"], "not-authorized"},   // not in xmpp-users
			{"dave", pw["dave"], "not-authorized"}, // disabled
			{"svc-koi", pw["svc-koi"], "not-authorized"},
			{"*", pw["alice"], "not-authorized"},
			{"alice)(sAMAccountName=*", pw["alice"], "not-authorized"},
			{`EXAMPLE\alice`, pw["alice"], "not-authorized"},
			{"alice", "", "not-authorized"},
			{"alice", " ", "not-authorized"},
			{"ALICE", pw["alice"], "success"},
		} {
			if got := srv.saslResult(t, tc.user, tc.password); got != tc.want {
				t.Errorf("PLAIN %q/%q: %s, want %s", tc.user, tc.password, got, tc.want)
			}
		}
		out, err := srv.koictl("user", "passwd", "alice"+d, "x")
		if err == nil || !strings.Contains(out, "read-only") {
			t.Errorf("koictl user passwd: %v\n%s", err, out)
		}
	})

	t.Run("shared roster, presence and vCard", func(t *testing.T) {
		a := srv.plain(t, "alice"+d+"/r", pw["alice"])
		want := []string{"carol" + d + "|carol|both|xmpp-users", "jörg" + d + "|jörg|both|xmpp-users"} // dave is disabled; names from cn
		if got := rosterItems(t, a); !slices.Equal(got, want) {
			t.Errorf("alice's roster:\n got %q\nwant %q", got, want)
		}
		a.send("<presence/>")
		c := srv.plain(t, "carol"+d+"/r", pw["carol"])
		c.send("<presence/>")
		c.expect("alice's presence", isPresence("", "alice"+d+"/r"))
		a.expect("carol's presence", isPresence("", "carol"+d+"/r"))
		v := c.iq("<iq type='get' to='alice"+d+"'><vCard xmlns='vcard-temp'/></iq>").child(nsVCard, "vCard")
		if v.path("FN").Text != "Alice Liddell" || v.path("ORG", "ORGUNIT").Text != "Research" || v.path("PHOTO", "BINVAL") == nil {
			t.Errorf("alice's vCard from AD: %s", v)
		}
		// A disabled account still exists: its messages wait; bob is no XMPP user.
		a.send("<message to='dave" + d + "' id='x1'><body>hi</body></message>")
		a.send("<message to='bob" + d + "' id='x2'><body>hi</body></message>")
		e := a.expect("bounce", func(e *element) bool { return e.is("", "message") && e.attr("type") == "error" })
		if e.attr("id") != "x2" {
			t.Errorf("bounced: %s, want the message to bob", e)
		}
	})
}

// BenchmarkLDAPLogin measures whole XMPP logins (TCP, STARTTLS, SASL PLAIN
// checked by the ldap plugin against slapd, resource binding) from 50
// concurrent clients, and reports logins per second with p50 and p99.
//
//	go test ./e2e -run '^$' -bench LDAPLogin -benchtime 3000x
func BenchmarkLDAPLogin(b *testing.B) {
	const workers = 50
	sd, err := testsvc.StartSlapd(context.Background(), b.TempDir(), testsvc.SlapdOptions{BulkUsers: workers})
	testsvc.Require(b, err)
	b.Cleanup(func() { sd.Stop() })
	srv := startExample(b, "openldap.hcl",
		"KOI_LOG__LEVEL=warn",
		"KOI_PLUGIN__DIRECTORY__CONFIG__URL="+sd.URL,
		"KOI_PLUGIN__DIRECTORY__CONFIG__CA_FILE="+sd.CAFile,
		"KOI_PLUGIN__DIRECTORY__CONFIG__BIND_PASSWORD="+testsvc.SlapdServicePW,
		"KOI_PLUGIN__DIRECTORY__CONFIG__REQUIRED_GROUP=cn=bulk,"+testsvc.SlapdGroups,
		"KOI_PLUGIN__DIRECTORY__CONFIG__POOL_SIZE="+envOr("LDAP_BENCH_POOL", "4"),
	)
	tlsCfg := srv.tlsConfig(b, ldapDomain)
	lat := make([]time.Duration, b.N)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			full := fmt.Sprintf("bulk%04d@%s/bench", w, ldapDomain)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, err := connect(ctx, b, dialOpts{addr: srv.c2s, tls: tlsCfg, mechs: []sasl.Mechanism{sasl.Plain}}, full, testsvc.SlapdBulkPW)
				cancel()
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				c.close()
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d logins failed, first: %v", n, b.N, firstErr.Load())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/el.Seconds(), "logins/s")
	b.ReportMetric(float64(lat[b.N/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[b.N*99/100].Microseconds())/1000, "p99-ms")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
