package adhoc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

type registrar struct {
	h     modules.OwnIQ
	msg   modules.ServerMessage
	nodes modules.ServerNodes
}

func (r *registrar) HandleServerIQ(_, _ string, h modules.OwnIQ)           { r.h = h }
func (r *registrar) AddServerFeature(string, func(*modules.Host) bool)     {}
func (r *registrar) SetServerNodes(n modules.ServerNodes)                  { r.nodes = n }
func (r *registrar) HandleServerMessage(_ string, h modules.ServerMessage) { r.msg = h }
func (nopConn) Send(*xmlstream.Element) bool                               { return true }
func (nopConn) Close(string, string)                                       {}
func (u *users) ListUsers(context.Context, string) ([]string, string, error) {
	return u.list(), "", nil
}

type nopConn struct{}

// users is an account store in memory, enough for the commands' rules.
type users struct{ pw map[string]string }

func (u *users) list() []string {
	var out []string
	for k := range u.pw {
		out = append(out, k)
	}
	return out
}

func (u *users) UserExists(_ context.Context, a jid.JID) (bool, error) {
	_, ok := u.pw[a.String()]
	return ok, nil
}

func (u *users) CreateUser(_ context.Context, a jid.JID, pw string) error {
	if _, ok := u.pw[a.String()]; ok {
		return sdk.ErrExists
	}
	u.pw[a.String()] = pw
	return nil
}

func (u *users) SetPassword(_ context.Context, a jid.JID, pw string) error {
	u.pw[a.String()] = pw
	return nil
}

func (u *users) DeleteUser(_ context.Context, a jid.JID) error {
	if _, ok := u.pw[a.String()]; !ok {
		return sdk.ErrNotFound
	}
	delete(u.pw, a.String())
	return nil
}

type online struct{}

func (online) OnlineJIDs(string) []string               { return nil }
func (online) Kick(jid.JID, string) bool                { return false }
func (online) Broadcast(string, *xmlstream.Element) int { return 0 }

type fixture struct {
	t     *testing.T
	r     *registrar
	u     *users
	now   time.Time
	admin *router.Session
	other *router.Session
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, r: &registrar{}, u: &users{pw: map[string]string{}}, now: time.Unix(1e9, 0)}
	Register(Config{
		IsAdmin: func(host string, u jid.JID) bool { return host == "example.com" && u.String() == "root@example.com" },
		Users:   f.u, Online: online{}, Now: func() time.Time { return f.now },
	}, f.r)
	rt := router.New()
	f.admin, _ = rt.Bind(jid.MustParse("root@example.com/pc"), nopConn{})
	f.other, _ = rt.Bind(jid.MustParse("eve@example.com/pc"), nopConn{})
	return f
}

// cmd sends a <command/> as s and returns the answer.
func (f *fixture) cmd(s *router.Session, xml string) (*xmlstream.Element, *stanza.Error) {
	f.t.Helper()
	iq, err := stanza.Parse("<iq type='set' to='example.com'>" + xml + "</iq>")
	if err != nil {
		f.t.Fatal(err)
	}
	return f.r.h(context.Background(), s, iq, iq.Elements()[0])
}

const addUser = "http://jabber.org/protocol/admin#add-user"

func addUserForm(account, pw, again string) string {
	return "<x xmlns='jabber:x:data' type='submit'><field var='accountjid'><value>" + account +
		"</value></field><field var='password'><value>" + pw + "</value></field><field var='password-verify'><value>" +
		again + "</value></field></x>"
}

func condition(e *stanza.Error) string {
	if e == nil {
		return ""
	}
	return e.Condition
}

func TestSessions(t *testing.T) {
	f := newFixture(t)
	exec := "<command xmlns='" + NS + "' node='" + addUser + "' action='execute'/>"

	// The form, then the form submitted under its session: done once.
	r, serr := f.cmd(f.admin, exec)
	if serr != nil || r.Attr("status") != "executing" || r.Child(NS, "actions").Child(NS, "complete") == nil {
		t.Fatalf("execute: %v %v", r, serr)
	}
	sid := r.Attr("sessionid")
	done := "<command xmlns='" + NS + "' node='" + addUser + "' sessionid='" + sid + "' action='complete'>" + addUserForm("new@example.com", "pw", "pw") + "</command>"
	if r, serr = f.cmd(f.admin, done); serr != nil || r.Attr("status") != "completed" || f.u.pw["new@example.com"] != "pw" {
		t.Fatalf("complete: %v %v", r, serr)
	}
	if _, serr = f.cmd(f.admin, done); condition(serr) != "bad-request" || !strings.Contains(serr.Text, "no such session") {
		t.Fatalf("the session again: %v", serr)
	}

	// A cancelled session and an expired one do not continue; nor does
	// anyone else's (eve is refused before that).
	r, _ = f.cmd(f.admin, exec)
	sid = r.Attr("sessionid")
	if _, serr = f.cmd(f.other, strings.Replace(done, "sessionid='"+r.Attr("sessionid")+"'", "sessionid='"+sid+"'", 1)); condition(serr) != "forbidden" {
		t.Fatalf("eve continuing root's session: %v", serr)
	}
	if r, serr = f.cmd(f.admin, "<command xmlns='"+NS+"' node='"+addUser+"' sessionid='"+sid+"' action='cancel'/>"); serr != nil || r.Attr("status") != "canceled" {
		t.Fatalf("cancel: %v %v", r, serr)
	}
	r, _ = f.cmd(f.admin, exec)
	f.now = f.now.Add(sessionTTL + time.Second)
	expired := "<command xmlns='" + NS + "' node='" + addUser + "' sessionid='" + r.Attr("sessionid") + "'>" + addUserForm("late@example.com", "pw", "pw") + "</command>"
	if _, serr = f.cmd(f.admin, expired); condition(serr) != "bad-request" {
		t.Fatalf("an expired session: %v", serr)
	}

	// A form submitted with the first request completes at once.
	oneStep := "<command xmlns='" + NS + "' node='" + addUser + "'>" + addUserForm("quick@example.com", "pw", "pw") + "</command>"
	if r, serr = f.cmd(f.admin, oneStep); serr != nil || r.Attr("status") != "completed" || f.u.pw["quick@example.com"] != "pw" {
		t.Fatalf("one step: %v %v", r, serr)
	}

	// At most sessionsPerJID sessions wait: the oldest goes.
	var ids []string
	for range sessionsPerJID + 1 {
		r, _ := f.cmd(f.admin, exec)
		ids = append(ids, r.Attr("sessionid"))
		f.now = f.now.Add(time.Millisecond)
	}
	cont := func(sid string) *stanza.Error {
		_, serr := f.cmd(f.admin, "<command xmlns='"+NS+"' node='"+addUser+"' sessionid='"+sid+"' action='cancel'/>")
		return serr
	}
	if cont(ids[0]) == nil {
		t.Fatal("the oldest of too many sessions is still there")
	}
	if serr := cont(ids[1]); serr != nil {
		t.Fatalf("the second oldest: %v", serr)
	}
}

func TestRules(t *testing.T) {
	f := newFixture(t)
	f.u.pw["old@example.com"] = "pw"
	tests := []struct {
		name, node, form string
		who              *router.Session
		want             string // the error condition, "" for success
	}{
		{"not an admin", addUser, addUserForm("a@example.com", "p", "p"), f.other, "forbidden"},
		{"unknown command", "http://jabber.org/protocol/admin#nope", "", f.admin, "item-not-found"},
		{"passwords differ", addUser, addUserForm("a@example.com", "p", "q"), f.admin, "not-acceptable"},
		{"empty password", addUser, addUserForm("a@example.com", "", ""), f.admin, "not-acceptable"},
		{"another host's account", addUser, addUserForm("a@elsewhere.example", "p", "p"), f.admin, "not-allowed"},
		{"not a JID", addUser, addUserForm("@@", "p", "p"), f.admin, "bad-request"},
		{"exists", addUser, addUserForm("old@example.com", "p", "p"), f.admin, "conflict"},
		{"delete unknown", "http://jabber.org/protocol/admin#delete-user",
			"<x xmlns='jabber:x:data' type='submit'><field var='accountjids'><value>ghost@example.com</value></field></x>", f.admin, "item-not-found"},
		{"delete", "http://jabber.org/protocol/admin#delete-user",
			"<x xmlns='jabber:x:data' type='submit'><field var='accountjids'><value>old@example.com</value></field></x>", f.admin, ""},
		{"not a submitted form", addUser, "<x xmlns='jabber:x:data' type='cancel'/>", f.admin, ""}, // asks for the form
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, serr := f.cmd(tc.who, "<command xmlns='"+NS+"' node='"+tc.node+"'>"+tc.form+"</command>")
			if condition(serr) != tc.want {
				t.Fatalf("got %v, want %q", serr, tc.want)
			}
		})
	}
	if _, ok := f.u.pw["old@example.com"]; ok {
		t.Fatal("delete-user left the account")
	}
}

func TestDiscovery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	items, serr := f.r.nodes.NodeItems(ctx, "example.com", f.admin.JID(), NS)
	if serr != nil || len(items.Elements()) != 9 {
		t.Fatalf("root's commands: %v %v", items, serr)
	}
	if items, _ = f.r.nodes.NodeItems(ctx, "example.com", f.other.JID(), NS); len(items.Elements()) != 0 {
		t.Fatalf("eve's commands: %v", items)
	}
	if info, serr := f.r.nodes.NodeInfo(ctx, "example.com", f.admin.JID(), addUser); serr != nil ||
		info.Child("http://jabber.org/protocol/disco#info", "identity").Attr("type") != "command-node" {
		t.Fatalf("add-user's info: %v %v", info, serr)
	}
	if _, serr := f.r.nodes.NodeInfo(ctx, "example.com", f.other.JID(), addUser); condition(serr) != "item-not-found" {
		t.Fatalf("add-user's info for eve: %v", serr)
	}
}

// announced records the announcements broadcast.
type announced struct {
	online
	got []string
}

func (a *announced) Broadcast(host string, el *xmlstream.Element) int {
	a.got = append(a.got, host+": "+el.Child(xmlstream.NSClient, "subject").Text()+"/"+el.Child(xmlstream.NSClient, "body").Text())
	return 1
}

// TestAnnounceMessage: a message to DOMAIN/announce/online (Gajim's and
// Psi's "Send server message") from an admin is broadcast; from anyone
// else it is refused, and an empty one too.
func TestAnnounceMessage(t *testing.T) {
	f := newFixture(t)
	a := &announced{}
	f.r = &registrar{}
	Register(Config{IsAdmin: func(host string, u jid.JID) bool { return u.String() == "root@example.com" }, Users: f.u, Online: a}, f.r)
	msg := func(s *router.Session, x string) *stanza.Error {
		el, err := stanza.Parse(x)
		if err != nil {
			t.Fatal(err)
		}
		return f.r.msg(context.Background(), s, el, jid.MustParse("example.com/announce/online"))
	}
	if serr := msg(f.admin, `<message to='example.com/announce/online'><subject>Maintenance</subject><body>at noon</body></message>`); serr != nil {
		t.Fatal(serr)
	}
	if serr := msg(f.other, `<message to='example.com/announce/online'><body>spam for all</body></message>`); condition(serr) != "forbidden" {
		t.Fatalf("eve's announcement: %v", serr)
	}
	if serr := msg(f.admin, `<message to='example.com/announce/online'><body> </body></message>`); condition(serr) != "not-acceptable" {
		t.Fatalf("an empty announcement: %v", serr)
	}
	if strings.Join(a.got, "|") != "example.com: Maintenance/at noon" {
		t.Fatalf("broadcast %q", a.got)
	}
}
