package push

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/auth"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/router/routertest"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/sdk"
)

// The tests run the service inside the real module server against the
// real sql backend on a temporary SQLite file; only the client connections
// are recorders, and the clock and the collapsing timer are in the test's
// hands.

type recorder = routertest.Recorder

type namedStore struct{ *sqlbackend.Store }

func (namedStore) Name() string { return "sql" }

type env struct {
	t     *testing.T
	m     *modules.Server
	r     *router.Router
	svc   *Service
	store *sqlbackend.Store
	now   time.Time
	fire  []func() // collapsed notifications waiting, in order
}

func defaultConfig() Config {
	return Config{BodyPlaceholder: "New message", MaxRegistrations: 5, MaxErrors: 3, Interval: 5 * time.Second}
}

func openStore(t *testing.T, path string) *sqlbackend.Store {
	t.Helper()
	st, err := sqlbackend.Open(context.Background(), sqlbackend.Settings{Driver: "sqlite", DSN: path, SCRAMIterations: 4096}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	path := t.TempDir() + "/koi.db"
	st := openStore(t, path)
	for _, u := range []string{"alice", "bob", "app"} {
		if err := st.CreateUser(context.Background(), "example.com", u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	return startEnv(t, st, cfg)
}

// startEnv builds the module server and the service on st, as a start of
// koi does.
func startEnv(t *testing.T, st *sqlbackend.Store, cfg Config) *env {
	h := &modules.Host{
		Name:    "example.com",
		Auth:    auth.NewChain("example.com", []auth.Backend{namedStore{st}}),
		Roster:  modules.Feature[modules.RosterBackend]{Backend: st, On: true, Writable: true},
		Offline: modules.Feature[sdk.Offline]{Backend: st, On: true, Writable: true},
		Private: modules.Feature[modules.PrivateBackend]{Backend: st, On: true, Writable: true},
	}
	rt := router.New()
	m := modules.New(hclog.NewNullLogger(), rt, []*modules.Host{h}, "test")
	e := &env{t: t, m: m, r: rt, store: st, now: time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)}
	e.svc = Register(hclog.NewNullLogger(), cfg, m, rt)
	e.svc.now = func() time.Time { return e.now }
	e.svc.after = func(d time.Duration, f func()) func() bool {
		e.fire = append(e.fire, f)
		return func() bool { return true }
	}
	t.Cleanup(e.svc.Close)
	return e
}

// fireTimers runs the collapsed notifications waiting, as their timers
// would.
func (e *env) fireTimers() {
	fs := e.fire
	e.fire = nil
	for _, f := range fs {
		f()
	}
}

type client struct {
	e   *env
	s   *router.Session
	rec *recorder
}

// online binds full and sends initial presence.
func (e *env) online(full string) *client {
	rec := &recorder{}
	s, _ := e.r.Bind(jid.MustParse(full), rec)
	c := &client{e: e, s: s, rec: rec}
	c.send(`<presence/>`)
	rec.Take()
	return c
}

// offline ends c's session as the connection layer does.
func (c *client) offline() {
	c.e.r.Unbind(c.s)
	c.e.m.Closed(context.Background(), c.s)
}

func (c *client) send(x string) {
	c.e.t.Helper()
	el, err := stanza.Parse(x)
	if err != nil {
		c.e.t.Fatalf("bad test stanza %s: %v", x, err)
	}
	el.SetAttr("from", c.s.JID().String())
	c.e.m.Stanza(context.Background(), c.s, el)
}

// iq sends an IQ and returns the answer.
func (c *client) iq(x string) *xmlstream.Element {
	c.e.t.Helper()
	c.send(x)
	for _, el := range c.rec.Take() {
		if el.Local == "iq" && (el.Attr("type") == "result" || el.Attr("type") == "error") {
			return el
		}
	}
	c.e.t.Fatalf("no answer to %s", x)
	return nil
}

func (c *client) enable(attrs, inner string) *xmlstream.Element {
	c.e.t.Helper()
	return c.iq(`<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' ` + attrs + `>` + inner + `</enable></iq>`)
}

// notifications takes the publish IQs c (the app server) received.
func (c *client) notifications() []*xmlstream.Element {
	var out []*xmlstream.Element
	for _, el := range c.rec.Take() {
		if el.Local == "iq" && el.Attr("type") == "set" && el.Child(NSPubSub, "pubsub") != nil {
			out = append(out, el)
		}
	}
	return out
}

// summary returns the fields of a notification's summary form.
func summary(t *testing.T, iq *xmlstream.Element) map[string]string {
	t.Helper()
	p := iq.Child(NSPubSub, "pubsub").Child(NSPubSub, "publish")
	n := p.Child(NSPubSub, "item").Child(NS, "notification")
	x := n.Child(NSData, "x")
	out := map[string]string{}
	for _, f := range x.Elements() {
		out[f.Attr("var")] = f.Child(NSData, "value").Text()
	}
	if out["FORM_TYPE"] != NSSummary {
		t.Errorf("summary FORM_TYPE %q", out["FORM_TYPE"])
	}
	return out
}

const secretForm = `<x xmlns='jabber:x:data' type='submit'>` +
	`<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
	`<field var='secret'><value>s3cret</value></field></x>`

func condition(el *xmlstream.Element) string {
	if el.Attr("type") != "error" {
		return ""
	}
	return stanza.ErrorFrom(el).Condition
}

func TestDisco(t *testing.T) {
	e := newEnv(t, defaultConfig())
	alice := e.online("alice@example.com/phone")
	for _, to := range []string{"alice@example.com", "example.com"} {
		r := alice.iq(`<iq type='get' id='d' to='` + to + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
		if !strings.Contains(r.String(), `var="urn:xmpp:push:0"`) && !strings.Contains(r.String(), `var='urn:xmpp:push:0'`) {
			t.Errorf("disco#info of %s lacks urn:xmpp:push:0: %s", to, r)
		}
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, defaultConfig())
	alice := e.online("alice@example.com/phone")
	for _, c := range []struct{ name, iq, want string }{
		{"no jid", `<enable xmlns='urn:xmpp:push:0' node='n'/>`, "bad-request"},
		{"bad jid", `<enable xmlns='urn:xmpp:push:0' jid='a@@b' node='n'/>`, "jid-malformed"},
		{"no node", `<enable xmlns='urn:xmpp:push:0' jid='push.example.net'/>`, "bad-request"},
		{"long node", `<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='` + strings.Repeat("n", 1024) + `'/>`, "bad-request"},
		{"wrong form type", `<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'><x xmlns='jabber:x:data' type='submit'>` +
			`<field var='FORM_TYPE'><value>urn:example</value></field></x></enable>`, "bad-request"},
		{"no FORM_TYPE", `<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'><x xmlns='jabber:x:data' type='submit'>` +
			`<field var='secret'><value>x</value></field></x></enable>`, "bad-request"},
		{"form not submitted", `<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'>` +
			strings.Replace(secretForm, "submit", "form", 1) + `</enable>`, "bad-request"},
		{"two forms", `<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'>` + secretForm + secretForm + `</enable>`, "bad-request"},
		{"field without var", `<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'>` +
			strings.Replace(secretForm, `var='secret'`, "", 1) + `</enable>`, "bad-request"},
		{"disable without jid", `<disable xmlns='urn:xmpp:push:0'/>`, "bad-request"},
		{"unknown element", `<subscribe xmlns='urn:xmpp:push:0' jid='push.example.net'/>`, "bad-request"},
	} {
		r := alice.iq(`<iq type='set' id='b'>` + c.iq + `</iq>`)
		if got := condition(r); got != c.want {
			t.Errorf("%s: got %q, want %q: %s", c.name, got, c.want, r)
		}
	}
	// Another user's account is not ours to configure.
	if got := condition(alice.iq(`<iq type='set' id='o' to='bob@example.com'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'/></iq>`)); got != "service-unavailable" {
		t.Errorf("enable on bob's account: %q, want service-unavailable", got)
	}
	if regs, _ := e.svc.Registrations(context.Background(), jid.MustParse("alice@example.com")); len(regs) != 0 {
		t.Errorf("bad requests left registrations: %v", regs)
	}
	// The stored registrations are the server's: a client may not read or
	// forge them through private storage.
	if got := condition(alice.iq(`<iq type='get' id='p'><query xmlns='jabber:iq:private'><registrations xmlns='urn:koi:push'/></query></iq>`)); got != "not-acceptable" {
		t.Errorf("private storage of urn:koi:push: %q, want not-acceptable", got)
	}
}

// A device enables push, goes offline, a contact writes: the app server
// gets one notification per message, with the publish options, from the
// server's JID, no sender and only the placeholder body by default.
func TestOfflineNotification(t *testing.T) {
	e := newEnv(t, defaultConfig())
	app := e.online("app@example.com/push")
	alice := e.online("alice@example.com/phone")
	if r := alice.enable(`jid='app@example.com/push' node='dev1'`, secretForm); r.Attr("type") != "result" {
		t.Fatalf("enable: %s", r)
	}
	alice.offline()
	bob := e.online("bob@example.com/pc")
	bob.send(`<message to='alice@example.com' type='chat' id='m1'><body>Wherefore art thou?</body></message>`)
	got := app.notifications()
	if len(got) != 1 {
		t.Fatalf("app server got %d notifications, want 1", len(got))
	}
	n := got[0]
	if n.Attr("from") != "example.com" || n.Attr("to") != "app@example.com/push" {
		t.Errorf("notification addressed from %q to %q", n.Attr("from"), n.Attr("to"))
	}
	if node := n.Child(NSPubSub, "pubsub").Child(NSPubSub, "publish").Attr("node"); node != "dev1" {
		t.Errorf("node %q", node)
	}
	f := summary(t, n)
	if f["message-count"] != "1" || f["last-message-body"] != "New message" {
		t.Errorf("summary %v: want count 1 and the placeholder body", f)
	}
	if _, ok := f["last-message-sender"]; ok {
		t.Errorf("sender sent by default: %v", f)
	}
	opts := n.Child(NSPubSub, "pubsub").Child(NSPubSub, "publish-options")
	if opts == nil || !strings.Contains(opts.String(), "s3cret") {
		t.Errorf("publish options not forwarded: %s", n)
	}
	// The app server's result keeps the registration; an unimportant
	// message (a receipt) notifies nobody.
	app.send(`<iq type='result' id='` + n.Attr("id") + `' to='example.com'/>`)
	bob.send(`<message to='alice@example.com' id='m2'><received xmlns='urn:xmpp:receipts' id='x'/></message>`)
	if got := app.notifications(); len(got) != 0 {
		t.Errorf("a receipt notified: %v", got)
	}
	// A message a connected session takes notifies nobody.
	alice = e.online("alice@example.com/phone")
	bob.send(`<message to='alice@example.com' type='chat'><body>live</body></message>`)
	if got := app.notifications(); len(got) != 0 {
		t.Errorf("a message delivered live notified: %v", got)
	}

	// Disabled: nothing more.
	if r := alice.iq(`<iq type='set' id='d'><disable xmlns='urn:xmpp:push:0' jid='app@example.com/push' node='dev1'/></iq>`); r.Attr("type") != "result" {
		t.Fatalf("disable: %s", r)
	}
	alice.offline()
	e.now = e.now.Add(time.Minute)
	bob.send(`<message to='alice@example.com' type='chat'><body>after disable</body></message>`)
	if got := app.notifications(); len(got) != 0 {
		t.Errorf("notified after disable: %v", got)
	}
}

func TestBodyAndSenderWhenConfigured(t *testing.T) {
	cfg := defaultConfig()
	cfg.IncludeBody, cfg.IncludeSender = true, true
	e := newEnv(t, cfg)
	app := e.online("app@example.com/push")
	alice := e.online("alice@example.com/phone")
	alice.enable(`jid='app@example.com/push' node='dev1'`, "")
	alice.offline()
	bob := e.online("bob@example.com/pc")
	bob.send(`<message to='alice@example.com' type='chat'><body>the text</body></message>`)
	got := app.notifications()
	if len(got) != 1 {
		t.Fatalf("%d notifications", len(got))
	}
	f := summary(t, got[0])
	if f["last-message-body"] != "the text" || f["last-message-sender"] != "bob@example.com/pc" {
		t.Errorf("summary %v", f)
	}
	if got[0].Child(NSPubSub, "pubsub").Child(NSPubSub, "publish-options") != nil {
		t.Errorf("publish-options without any enabled: %s", got[0])
	}
}

// A burst is collapsed: the first message notifies at once, the next ones
// within the interval wait for it and go as one, counted.
func TestBurstCollapsed(t *testing.T) {
	e := newEnv(t, defaultConfig())
	app := e.online("app@example.com/push")
	alice := e.online("alice@example.com/phone")
	alice.enable(`jid='app@example.com/push' node='dev1'`, "")
	alice.offline()
	bob := e.online("bob@example.com/pc")
	for i := range 4 {
		bob.send(`<message to='alice@example.com' type='chat'><body>` + string(rune('a'+i)) + `</body></message>`)
		e.now = e.now.Add(time.Second)
	}
	got := app.notifications()
	if len(got) != 1 || summary(t, got[0])["message-count"] != "1" {
		t.Fatalf("before the interval: %v", got)
	}
	if len(e.fire) != 1 {
		t.Fatalf("%d collapsed notifications waiting, want 1", len(e.fire))
	}
	e.now = e.now.Add(time.Second)
	e.fireTimers()
	got = app.notifications()
	if len(got) != 1 || summary(t, got[0])["message-count"] != "3" {
		t.Fatalf("after the interval: %v, want one notification for 3 messages", got)
	}
	// Once the interval has passed, the next message goes at once.
	e.now = e.now.Add(10 * time.Second)
	bob.send(`<message to='alice@example.com' type='chat'><body>later</body></message>`)
	if got := app.notifications(); len(got) != 1 || summary(t, got[0])["message-count"] != "1" {
		t.Errorf("after a quiet interval: %v", got)
	}
}

// Error answers count; max_errors in a row drop the registration (from
// storage too); a wait error does not count and a result resets the count.
// An answer from anyone but the app server is ignored.
func TestErrorsDropRegistration(t *testing.T) {
	e := newEnv(t, defaultConfig()) // MaxErrors 3
	app := e.online("app@example.com/push")
	alice := e.online("alice@example.com/phone")
	alice.enable(`jid='app@example.com/push' node='dev1'`, "")
	alice.offline()
	bob := e.online("bob@example.com/pc")
	user := jid.MustParse("alice@example.com")
	notify := func() *xmlstream.Element {
		t.Helper()
		e.now = e.now.Add(time.Minute)
		bob.send(`<message to='alice@example.com' type='chat'><body>hi</body></message>`)
		got := app.notifications()
		if len(got) != 1 {
			t.Fatalf("%d notifications, want 1", len(got))
		}
		return got[0]
	}
	answer := func(c *client, n *xmlstream.Element, typ, cond string) {
		c.send(`<iq type='error' id='` + n.Attr("id") + `' to='example.com'><error type='` + typ + `'><` + cond +
			` xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	}
	answer(app, notify(), "cancel", "item-not-found")
	answer(app, notify(), "cancel", "item-not-found")
	app.send(`<iq type='result' id='` + notify().Attr("id") + `' to='example.com'/>`) // resets
	answer(app, notify(), "wait", "resource-constraint")                              // does not count
	answer(bob, notify(), "cancel", "item-not-found")                                 // not the app server
	answer(app, notify(), "auth", "forbidden")
	answer(app, notify(), "cancel", "item-not-found")
	if regs, _ := e.svc.Registrations(context.Background(), user); len(regs) != 1 {
		t.Fatalf("after 2 errors in a row: %d registrations, want 1", len(regs))
	}
	answer(app, notify(), "cancel", "item-not-found")
	if regs, _ := e.svc.Registrations(context.Background(), user); len(regs) != 0 {
		t.Fatalf("after 3 errors in a row: %v, want none", regs)
	}
	e.now = e.now.Add(time.Minute)
	bob.send(`<message to='alice@example.com' type='chat'><body>hi</body></message>`)
	if got := app.notifications(); len(got) != 0 {
		t.Errorf("notified after the registration was dropped: %v", got)
	}
	// Gone from storage too: a restart does not bring it back.
	e2 := startEnv(t, e.store, defaultConfig())
	if regs, err := e2.svc.Registrations(context.Background(), user); err != nil || len(regs) != 0 {
		t.Errorf("after a restart: %v, %v", regs, err)
	}
}

// App servers koi cannot reach: a local one with no session to take the
// notification (or a bare JID, which the server would answer itself)
// counts as an error answer, service-unavailable, and goes after
// max_errors; a remote one needs federation: nothing is sent, and the
// registration stays for when koi federates.
func TestUnreachableAppServers(t *testing.T) {
	for _, c := range []struct {
		name string
		jids []string
		kept int
	}{
		{"local, not connected", []string{"app@example.com/push", "app@example.com"}, 0},
		{"remote", []string{"push.example.net"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, defaultConfig())
			alice := e.online("alice@example.com/phone")
			for _, j := range c.jids {
				if r := alice.enable(`jid='`+j+`' node='dev1'`, ""); r.Attr("type") != "result" {
					t.Fatalf("enable %s: %s", j, r)
				}
			}
			alice.offline()
			bob := e.online("bob@example.com/pc")
			for range 5 {
				e.now = e.now.Add(time.Minute)
				bob.send(`<message to='alice@example.com' type='chat'><body>hi</body></message>`)
			}
			if regs, _ := e.svc.Registrations(context.Background(), jid.MustParse("alice@example.com")); len(regs) != c.kept {
				t.Errorf("registrations %v, want %d kept", regs, c.kept)
			}
		})
	}
}

// Registrations survive a restart, with their publish options; enabling
// the same node again replaces it; past max_registrations the oldest goes.
func TestRegistrationsStoredAndBounded(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxRegistrations = 2
	e := newEnv(t, cfg)
	alice := e.online("alice@example.com/phone")
	alice.enable(`jid='app@example.com/push' node='one'`, "")
	e.now = e.now.Add(time.Second)
	alice.enable(`jid='app@example.com/push' node='two'`, secretForm)
	e.now = e.now.Add(time.Second)
	alice.enable(`jid='app@example.com/push' node='one'`, "") // again: now the newest
	e.now = e.now.Add(time.Second)
	alice.enable(`jid='other@example.com/push' node='three'`, "")
	user := jid.MustParse("alice@example.com")
	names := func(s *Service) string {
		regs, err := s.Registrations(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range regs {
			out = append(out, r.JID.String()+"#"+r.Node)
		}
		return strings.Join(out, ",")
	}
	want := "app@example.com/push#one,other@example.com/push#three"
	if got := names(e.svc); got != want {
		t.Errorf("registrations %s, want %s", got, want)
	}
	e2 := startEnv(t, e.store, cfg)
	if got := names(e2.svc); got != want {
		t.Errorf("after a restart: %s, want %s", got, want)
	}
	// Disable without a node: every node of that app server.
	alice2 := e2.online("alice@example.com/phone")
	alice2.enable(`jid='app@example.com/push' node='four'`, secretForm)
	alice2.iq(`<iq type='set' id='d'><disable xmlns='urn:xmpp:push:0' jid='app@example.com/push'/></iq>`)
	if got, want := names(e2.svc), "other@example.com/push#three"; got != want {
		t.Errorf("after disabling the app server: %s, want %s", got, want)
	}
	e3 := startEnv(t, e.store, cfg)
	alice3 := e3.online("alice@example.com/x")
	alice3.enable(`jid='app@example.com/push' node='five'`, secretForm)
	e4 := startEnv(t, e.store, cfg)
	regs, _ := e4.svc.Registrations(context.Background(), user)
	if len(regs) != 2 || regs[1].Node != "five" || regs[1].Options == nil || !strings.Contains(regs[1].Options.String(), "s3cret") {
		t.Errorf("publish options after a restart: %v", regs)
	}
}

// Notify for a full JID (a session hibernating under stream management)
// reaches only the registrations that session enabled.
func TestNotifySession(t *testing.T) {
	e := newEnv(t, defaultConfig())
	app := e.online("app@example.com/push")
	phone := e.online("alice@example.com/phone")
	tablet := e.online("alice@example.com/tablet")
	phone.enable(`jid='app@example.com/push' node='phone'`, "")
	tablet.enable(`jid='app@example.com/push' node='tablet'`, "")
	msg, _ := stanza.Parse(`<message from='bob@example.com/pc' to='alice@example.com/phone' type='chat'><body>hi</body></message>`)
	e.svc.Notify(context.Background(), jid.MustParse("alice@example.com/phone"), msg)
	got := app.notifications()
	if len(got) != 1 || got[0].Child(NSPubSub, "pubsub").Child(NSPubSub, "publish").Attr("node") != "phone" {
		t.Fatalf("notifications %v, want one to node phone", got)
	}
	e.svc.Notify(context.Background(), jid.MustParse("alice@example.com/laptop"), msg)
	if got := app.notifications(); len(got) != 0 {
		t.Errorf("a session without push notified: %v", got)
	}
}

func TestImportant(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{`<message type='chat'><body>hi</body></message>`, true},
		{`<message><body>hi</body></message>`, true},
		{`<message type='chat'><body></body></message>`, false},
		{`<message type='headline'><body>news</body></message>`, false},
		{`<message type='error'><body>hi</body></message>`, false},
		{`<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, false},
		{`<message><received xmlns='urn:xmpp:receipts' id='a'/></message>`, false},
		{`<message type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`, true},
		{`<message type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`, true},
		{`<message><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>`, true},
		{`<message type='groupchat'><subject>topic</subject><body>x</body></message>`, false},
		{`<message><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>mine</body></message></forwarded></sent></message>`, false},
		{`<message><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>theirs</body></message></forwarded></received></message>`, true},
		{`<presence/>`, false},
	} {
		el, err := stanza.Parse(c.msg)
		if err != nil {
			t.Fatal(err)
		}
		if got := Important(el); got != c.want {
			t.Errorf("Important(%s) = %v, want %v", c.msg, got, c.want)
		}
	}
}

func TestDecodeSkipsDamagedEntries(t *testing.T) {
	regs, bad := decode(`<registrations xmlns='urn:koi:push'>`+
		`<registration jid='a@b/c' node='n1' stamp='2026-01-01T00:00:00Z'/>`+
		`<registration jid='@@' node='n2'/>`+
		`<registration jid='x.example' node='n3' stamp='nonsense'/>`+
		`</registrations>`, 5)
	if len(regs) != 2 || bad == nil {
		t.Fatalf("decode: %v, %v", regs, bad)
	}
	if regs[0].Node != "n1" || regs[1].Node != "n3" || !regs[1].Enabled.IsZero() {
		t.Errorf("decoded %+v", regs)
	}
	if _, bad := decode(`<x/>`, 5); bad == nil {
		t.Error("a foreign element decoded without complaint")
	}
	in := []Registration{{JID: jid.MustParse("a@b/c"), Node: "n&<'", Enabled: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}}
	out, bad := decode(encode(in), 5)
	if bad != nil || len(out) != 1 || out[0].Node != in[0].Node || !out[0].Enabled.Equal(in[0].Enabled) {
		t.Errorf("round trip: %+v, %v", out, bad)
	}
}
