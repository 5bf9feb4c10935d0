// Package adhoc serves ad-hoc commands (XEP-0050) on each served domain:
// the service administration commands of XEP-0133 (admin.go), which a
// host's admins run from their client (Gajim, Psi, Profanity's /cmd,
// slixmpp) as Prosody's mod_admin_adhoc and ejabberd's mod_configure
// offer them.
//
// Every command here takes one form: executed, it answers with the form
// (status executing, a session id, the one action complete); the form
// submitted back under that session id, or with the first request,
// completes it with a note or a result form. Sessions are kept for ten
// minutes, at most a few per admin. Commands are listed (disco#items of
// the commands node) and described (disco#info of their node) only to
// those who may run them; anyone else gets <forbidden/> on running one.
package adhoc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// NS is the namespace of ad-hoc commands.
const NS = "http://jabber.org/protocol/commands"

const (
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
)

// Limits of sessions.
const (
	sessionTTL     = 10 * time.Minute
	sessionsPerJID = 8
)

// command is one command: its node, name, and what runs it.
type command struct {
	node, name string
	// form is what the command asks for; nil runs it at once.
	form func(ctx context.Context, host string) *xmlstream.Element
	// run completes the command with the submitted form (nil for a
	// command without one), returning a note or a result form.
	run func(ctx context.Context, c call, f *dataform.Form) (result, *stanza.Error)
}

// call is who runs a command, and where.
type call struct {
	host string  // the domain the command was sent to
	from jid.JID // the admin's full JID
}

// result is what a completed command answers: a note, a form, or both.
type result struct {
	note string
	form *xmlstream.Element
}

// session is a command waiting for its form.
type session struct {
	node    string
	from    string // the full JID that started it
	expires time.Time
}

// Config is what the commands need.
type Config struct {
	Log hclog.Logger
	// IsAdmin reports whether user (a bare JID) administers host.
	IsAdmin func(host string, user jid.JID) bool
	Users   Users
	Online  Online
	Now     func() time.Time // time.Now if nil
}

// Service answers ad-hoc commands.
type Service struct {
	cfg      Config
	commands map[string]*command
	order    []string // nodes, as listed

	mu       sync.Mutex
	sessions map[string]*session
}

// Registrar is where the service plugs into the server.
type Registrar interface {
	HandleServerIQ(typ, ns string, h modules.OwnIQ)
	HandleServerMessage(resource string, h modules.ServerMessage)
	AddServerFeature(ns string, on func(*modules.Host) bool)
	SetServerNodes(n modules.ServerNodes)
}

// Register serves the commands through srv.
func Register(cfg Config, srv Registrar) *Service {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, commands: map[string]*command{}, sessions: map[string]*session{}}
	for _, c := range s.adminCommands() {
		s.commands[c.node] = c
		s.order = append(s.order, c.node)
	}
	srv.HandleServerIQ("set", NS, s.handle)
	srv.HandleServerMessage("announce/online", s.announceMessage)
	srv.AddServerFeature(NS, func(*modules.Host) bool { return true })
	srv.SetServerNodes(s)
	return s
}

// may reports whether from may run the commands on host.
func (s *Service) may(host string, from jid.JID) bool {
	return s.cfg.IsAdmin != nil && s.cfg.IsAdmin(host, from.Bare())
}

// NodeItems lists the commands from may run on host (the commands node;
// other nodes are not ours).
func (s *Service) NodeItems(_ context.Context, host string, from jid.JID, node string) (*xmlstream.Element, *stanza.Error) {
	if node != NS {
		return nil, stanza.ErrItemNotFound
	}
	q := xmlstream.NewElement(nsDiscoItems, "query").SetAttr("node", NS)
	if !s.may(host, from) {
		return q, nil
	}
	for _, n := range s.order {
		q.AppendChild(xmlstream.NewElement(nsDiscoItems, "item").SetAttr("jid", host).
			SetAttr("node", n).SetAttr("name", s.commands[n].name))
	}
	return q, nil
}

// NodeInfo describes the commands node and each command's node (XEP-0050
// §2.3) to those who may run them.
func (s *Service) NodeInfo(_ context.Context, host string, from jid.JID, node string) (*xmlstream.Element, *stanza.Error) {
	q := xmlstream.NewElement(nsDiscoInfo, "query").SetAttr("node", node)
	identity := func(typ, name string) {
		q.AppendChild(xmlstream.NewElement(nsDiscoInfo, "identity").SetAttr("category", "automation").
			SetAttr("type", typ).SetAttr("name", name))
	}
	switch c := s.commands[node]; {
	case node == NS:
		identity("command-list", "Commands")
	case c != nil && s.may(host, from):
		identity("command-node", c.name)
		q.AppendChild(xmlstream.NewElement(nsDiscoInfo, "feature").SetAttr("var", NS))
		q.AppendChild(xmlstream.NewElement(nsDiscoInfo, "feature").SetAttr("var", dataform.NS))
	default:
		return nil, stanza.ErrItemNotFound
	}
	return q, nil
}

// Errors of XEP-0050 §4.6, with their application conditions.
var (
	errBadAction = commandError(stanza.ErrBadRequest.WithText("this command only completes or cancels"), "bad-action")
	errMalformed = commandError(stanza.ErrBadRequest.WithText("unknown action"), "malformed-action")
	errSession   = commandError(stanza.ErrBadRequest.WithText("no such session: it ended or expired"), "bad-sessionid")
	errPayload   = commandError(stanza.ErrBadRequest.WithText("want the command's form, submitted"), "bad-payload")
	errForbidden = stanza.ErrForbidden.WithText("only the host's admins run these commands")
	errNoCommand = stanza.ErrItemNotFound.WithText("no such command")
)

func commandError(e *stanza.Error, cond string) *stanza.Error {
	return e.WithApp(NS, cond)
}

// handle answers a <command/> set to a served domain.
func (s *Service) handle(ctx context.Context, sess *router.Session, iq, q *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	if q.Local != "command" {
		return nil, stanza.ErrBadRequest
	}
	from := sess.JID()
	host := from.Domain()
	if to, err := jid.Parse(iq.Attr("to")); err == nil && iq.Attr("to") != "" {
		host = to.Domain()
	}
	node := q.Attr("node")
	cmd := s.commands[node]
	switch {
	case cmd == nil:
		return nil, errNoCommand
	case !s.may(host, from):
		s.cfg.Log.Info("ad-hoc command refused: not an admin", "host", host, "from", from.String(), "node", node)
		return nil, errForbidden
	}
	c := call{host: host, from: from}
	action, sid := q.Attr("action"), q.Attr("sessionid")
	var submitted *xmlstream.Element
	for _, x := range q.Elements() {
		if x.Space == dataform.NS && x.Local == "x" {
			submitted = x
		}
	}
	switch action {
	case "", "execute", "complete":
	case "cancel":
		if sid == "" || !s.take(sid, node, from) {
			return nil, errSession
		}
		return reply(node, sid, "canceled", result{}), nil
	case "next", "prev":
		return nil, errBadAction
	default:
		return nil, errMalformed
	}
	switch {
	case sid != "":
		if !s.take(sid, node, from) {
			return nil, errSession
		}
	case cmd.form != nil && (submitted == nil || submitted.Attr("type") != "submit"):
		// The first step: the form to fill in.
		sid = s.start(node, from)
		r := reply(node, sid, "executing", result{form: cmd.form(ctx, host)})
		actions := xmlstream.NewElement(NS, "actions").SetAttr("execute", "complete")
		actions.AppendChild(xmlstream.NewElement(NS, "complete"))
		r.Children = append([]xmlstream.Node{{Elem: actions}}, r.Children...)
		return r, nil
	default:
		sid = newSessionID()
	}
	var f *dataform.Form
	if cmd.form != nil {
		var err error
		if f, err = dataform.Parse(submitted); err != nil || f.Type != "submit" {
			return nil, errPayload
		}
	}
	res, serr := cmd.run(ctx, c, f)
	if serr != nil {
		return nil, serr
	}
	s.cfg.Log.Info("ad-hoc command run", "host", host, "by", from.Bare().String(), "node", node)
	return reply(node, sid, "completed", res), nil
}

// reply is a <command/> answer.
func reply(node, sid, status string, r result) *xmlstream.Element {
	el := xmlstream.NewElement(NS, "command").SetAttr("node", node).SetAttr("sessionid", sid).SetAttr("status", status)
	if r.note != "" {
		el.AppendChild(xmlstream.NewElement(NS, "note").SetAttr("type", "info").AppendText(r.note))
	}
	if r.form != nil {
		el.AppendChild(r.form)
	}
	return el
}

// start opens a session of node for from and returns its id; from's
// oldest goes when from has too many.
func (s *Service) start(node string, from jid.JID) string {
	now := s.cfg.Now()
	id := newSessionID()
	s.mu.Lock()
	defer s.mu.Unlock()
	var mine []string
	for k, v := range s.sessions {
		switch {
		case now.After(v.expires):
			delete(s.sessions, k)
		case v.from == from.String():
			mine = append(mine, k)
		}
	}
	if len(mine) >= sessionsPerJID {
		sort.Slice(mine, func(i, j int) bool { return s.sessions[mine[i]].expires.Before(s.sessions[mine[j]].expires) })
		for _, k := range mine[:len(mine)-sessionsPerJID+1] {
			delete(s.sessions, k)
		}
	}
	s.sessions[id] = &session{node: node, from: from.String(), expires: now.Add(sessionTTL)}
	return id
}

// take ends session id of node, started by from; false if there is none.
func (s *Service) take(id, node string, from jid.JID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.sessions[id]
	if v == nil || v.node != node || v.from != from.String() || s.cfg.Now().After(v.expires) {
		return false
	}
	delete(s.sessions, id)
	return true
}

func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// accountJID parses an account's JID on host from a form field.
func accountJID(v, host string) (jid.JID, *stanza.Error) {
	j, err := jid.Parse(strings.TrimSpace(v))
	if err != nil || j.Local() == "" {
		return jid.JID{}, stanza.ErrBadRequest.WithText("not an account's JID: " + v)
	}
	if !strings.EqualFold(j.Domain(), host) {
		return jid.JID{}, stanza.ErrNotAllowed.WithText(j.String() + " is not an account of " + host)
	}
	return j, nil
}
