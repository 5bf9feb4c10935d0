// Package push is XEP-0357 Push Notifications, the user's server side: a
// client enables (or disables) notifications to the node of an app server,
// and when a message reaches the account while the device cannot take it
// live, the server publishes a notification to that node, from which the
// app server wakes the phone through its platform's push service.
//
// Namespace: urn:xmpp:push:0 (enable, disable, notification), with the
// summary form urn:xmpp:push:summary and the publish-options form of
// XEP-0060 passed on as the client gave it.
//
// The rules follow Prosody's mod_cloud_notify: the notification comes from
// the server's JID (XEP-0357 0.3); an app server's error answer counts
// against its registration, which goes after max_errors in a row (errors
// of type wait do not count, a result resets the count); an account keeps
// at most max_registrations, the oldest going first; only "important"
// messages notify (a body, an encrypted payload, a call proposal). What the
// app server learns is configured (include_body, include_sender,
// body_placeholder); bursts are collapsed to one notification per interval
// per registration, message-count telling how many it stands for.
//
// Registrations are kept in the account's private XML storage (XEP-0049)
// under urn:koi:push, as package lastactivity keeps its state, so that
// they survive a restart without a backend feature of their own; a host
// without writable private storage keeps them in memory only.
package push

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Namespaces of XEP-0357 and the forms and pubsub elements it uses.
const (
	NS             = "urn:xmpp:push:0"
	NSSummary      = "urn:xmpp:push:summary"
	NSPubSub       = "http://jabber.org/protocol/pubsub"
	NSData         = "jabber:x:data"
	PublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
)

// maxNode bounds a node name; app servers use tokens of a few dozen bytes.
const maxNode = 1023

// replyTimeout is how long an answer to a notification is waited for;
// one that comes later is ignored (it neither counts nor resets errors).
const replyTimeout = 2 * time.Minute

// maxAccounts bounds the accounts whose registrations are kept in memory;
// past it, accounts with nothing pending are forgotten (storage has them).
const maxAccounts = 100_000

// Config is the service's settings (config block push).
type Config struct {
	IncludeBody      bool
	IncludeSender    bool
	BodyPlaceholder  string
	MaxRegistrations int
	MaxErrors        int
	Interval         time.Duration
}

// Server is what the service needs of the module server (modules.Server
// implements it).
type Server interface {
	Host(name string) *modules.Host
	HandleOwnIQ(typ, ns string, h modules.OwnIQ)
	AddServerFeature(ns string, on func(*modules.Host) bool)
	AddAccountFeature(ns string, on func(*modules.Host) bool)
	HandleReplies(h modules.ReplyHandler)
	SetNotifier(n modules.Notifier)
}

// Registration is one app server node an account enabled.
type Registration struct {
	JID     jid.JID            // the app server (its push service)
	Node    string             // the node on it, which names the device
	Options *xmlstream.Element // the publish-options form, nil if none
	Enabled time.Time
}

// Service enables, disables and sends push notifications. Safe for
// concurrent use.
type Service struct {
	log    hclog.Logger
	cfg    Config
	srv    Server
	router *router.Router
	now    func() time.Time
	// after runs f once d has passed and returns what stops it: a timer,
	// which tests replace to fire by hand.
	after func(d time.Duration, f func()) (stop func() bool)

	mu        sync.Mutex
	accounts  map[jid.JID]*account
	waiting   map[string]sent // notifications sent, by IQ id
	lastSweep time.Time
	closed    bool
}

// account is one user's registrations in memory.
type account struct {
	mu     sync.Mutex
	loaded bool
	regs   []*reg // oldest first
}

// reg is a registration with its live state.
type reg struct {
	Registration
	resource string // the session that enabled it in this process, "" if none
	errors   int    // error answers in a row
	last     time.Time
	pending  int    // messages not yet notified
	sender   string // of the last of them
	body     string
	timer    func() bool // stops the collapsed notification waiting for the interval; nil if none
	removed  bool
	warned   bool // its remote app server was logged as unreachable
}

// sent is a notification waiting for its answer.
type sent struct {
	user jid.JID
	r    *reg
	to   jid.JID
	at   time.Time
}

// New returns a service; Register hooks it into the module server.
func New(log hclog.Logger, cfg Config, srv Server, r *router.Router, clock func() time.Time) *Service {
	if clock == nil {
		clock = time.Now
	}
	return &Service{
		log: log, cfg: cfg, srv: srv, router: r, now: clock,
		after:    func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop },
		accounts: map[jid.JID]*account{}, waiting: map[string]sent{},
	}
}

// Register builds the service and hooks it into srv: the enable and
// disable IQs, disco, the answers of app servers and the offline hook.
func Register(log hclog.Logger, cfg Config, srv Server, r *router.Router) *Service {
	s := New(log, cfg, srv, r, nil)
	srv.HandleOwnIQ("set", NS, s.handleIQ)
	on := func(*modules.Host) bool { return true }
	srv.AddServerFeature(NS, on)
	srv.AddAccountFeature(NS, on)
	srv.HandleReplies(s.HandleReply)
	srv.SetNotifier(s)
	return s
}

// Close stops the collapsed notifications still waiting; they are not
// sent.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	accounts := make([]*account, 0, len(s.accounts))
	for _, a := range s.accounts {
		accounts = append(accounts, a)
	}
	s.mu.Unlock()
	for _, a := range accounts {
		a.mu.Lock()
		for _, r := range a.regs {
			if r.timer != nil {
				r.timer()
				r.timer = nil
			}
		}
		a.mu.Unlock()
	}
}

func (s *Service) handleIQ(ctx context.Context, sess *router.Session, iq, payload *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	switch payload.Local {
	case "enable":
		return nil, s.enable(ctx, sess, payload)
	case "disable":
		return nil, s.disable(ctx, sess.JID().Bare(), payload)
	}
	return nil, stanza.ErrBadRequest.WithText("want <enable/> or <disable/>")
}

// appServer reads the jid attribute of enable or disable.
func appServer(el *xmlstream.Element) (jid.JID, *stanza.Error) {
	s := el.Attr("jid")
	if s == "" {
		return jid.JID{}, stanza.ErrBadRequest.WithText("<" + el.Local + "/> needs the jid of the app server")
	}
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, stanza.ErrJIDMalformed.WithText("the jid of the app server is not a valid JID")
	}
	return j, nil
}

// publishOptions checks the optional publish-options form of enable and
// returns a copy to store (nil when there is none).
func publishOptions(el *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	var form *xmlstream.Element
	for _, c := range el.Elements() {
		if c.Space != NSData || c.Local != "x" {
			continue // extensions of enable are not ours to refuse
		}
		if form != nil {
			return nil, stanza.ErrBadRequest.WithText("at most one publish-options form")
		}
		form = c
	}
	if form == nil {
		return nil, nil
	}
	if t := form.Attr("type"); t != "" && t != "submit" {
		return nil, stanza.ErrBadRequest.WithText("the publish-options form must be of type submit")
	}
	formType := ""
	for _, f := range form.Elements() {
		if f.Space != NSData || f.Local != "field" {
			continue
		}
		if f.Attr("var") == "" {
			return nil, stanza.ErrBadRequest.WithText("every field of the publish-options form needs a var")
		}
		if f.Attr("var") == "FORM_TYPE" {
			if v := f.Child(NSData, "value"); v != nil {
				formType = v.Text()
			}
		}
	}
	if formType != PublishOptions {
		return nil, stanza.ErrBadRequest.WithText("the form's FORM_TYPE must be " + PublishOptions)
	}
	c := form.Copy()
	c.SetAttr("type", "submit")
	return c, nil
}

func (s *Service) enable(ctx context.Context, sess *router.Session, el *xmlstream.Element) *stanza.Error {
	to, serr := appServer(el)
	if serr != nil {
		return serr
	}
	node := el.Attr("node")
	if node == "" {
		return stanza.ErrBadRequest.WithText("<enable/> needs the node the app server provisioned")
	}
	if len(node) > maxNode {
		return stanza.ErrBadRequest.WithText("the node is too long")
	}
	opts, serr := publishOptions(el)
	if serr != nil {
		return serr
	}
	user := sess.JID().Bare()
	a := s.account(user)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := s.load(ctx, user, a); err != nil {
		return stanza.ErrInternal.WithText("push registrations are unavailable; try again later")
	}
	// The same app server and node again replaces the old registration
	// (XEP-0357 §5: the last request's options count).
	keep := make([]*reg, 0, len(a.regs)+1)
	var dropped []*reg
	for _, r := range a.regs {
		if r.JID == to && r.Node == node {
			dropped = append(dropped, r)
			continue
		}
		keep = append(keep, r)
	}
	n := &reg{
		Registration: Registration{JID: to, Node: node, Options: opts, Enabled: s.now().UTC()},
		resource:     sess.JID().Resource(),
	}
	keep = append(keep, n)
	if over := len(keep) - s.cfg.MaxRegistrations; over > 0 {
		dropped = append(dropped, keep[:over]...)
		keep = keep[over:]
	}
	if err := s.save(ctx, user, keep); err != nil {
		s.log.Warn("push registration not stored", "user", user.String(), "error", err)
		return stanza.ErrInternal.WithText("the registration could not be stored; try again later")
	}
	for _, r := range dropped {
		r.remove()
		if r.JID != to || r.Node != node {
			s.log.Info("push registration dropped: too many for the account", "user", user.String(), "app_server", r.JID.String(), "max_registrations", s.cfg.MaxRegistrations)
		}
	}
	a.regs = keep
	if s.srv.Host(to.Domain()) == nil {
		s.log.Info("push app server is on another server: its notifications wait for federation, which koi does not have yet",
			"user", user.String(), "app_server", to.String())
	}
	return nil
}

func (s *Service) disable(ctx context.Context, user jid.JID, el *xmlstream.Element) *stanza.Error {
	to, serr := appServer(el)
	if serr != nil {
		return serr
	}
	node := el.Attr("node")
	a := s.account(user)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := s.load(ctx, user, a); err != nil {
		return stanza.ErrInternal.WithText("push registrations are unavailable; try again later")
	}
	keep := make([]*reg, 0, len(a.regs))
	var dropped []*reg
	for _, r := range a.regs {
		// Without a node, every node of the app server goes (XEP-0357 §6).
		if r.JID == to && (node == "" || r.Node == node) {
			dropped = append(dropped, r)
			continue
		}
		keep = append(keep, r)
	}
	if len(dropped) == 0 {
		return nil // nothing enabled: already as asked
	}
	if err := s.save(ctx, user, keep); err != nil {
		s.log.Warn("push registration not removed from storage", "user", user.String(), "error", err)
		return stanza.ErrInternal.WithText("the registration could not be removed; try again later")
	}
	for _, r := range dropped {
		r.remove()
	}
	a.regs = keep
	return nil
}

// remove stops r; the caller holds its account's lock.
func (r *reg) remove() {
	r.removed = true
	if r.timer != nil {
		r.timer()
		r.timer = nil
	}
}

// Registrations returns user's registrations, oldest first.
func (s *Service) Registrations(ctx context.Context, user jid.JID) ([]Registration, error) {
	user = user.Bare()
	a := s.account(user)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := s.load(ctx, user, a); err != nil {
		return nil, err
	}
	out := make([]Registration, len(a.regs))
	for i, r := range a.regs {
		out[i] = r.Registration
	}
	return out, nil
}

// account returns user's entry, creating it (not loaded).
func (s *Service) account(user jid.JID) *account {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[user]
	if a == nil {
		if len(s.accounts) >= maxAccounts {
			s.forgetIdle()
		}
		a = &account{}
		s.accounts[user] = a
	}
	return a
}

// forgetIdle drops accounts with no collapsed notification waiting, down
// to nine tenths of maxAccounts; the caller holds s.mu. An account in use
// by a caller at the same time is harmless to drop: its registrations are
// in storage and the caller's changes are saved there.
func (s *Service) forgetIdle() {
	for u, a := range s.accounts {
		if len(s.accounts) < maxAccounts*9/10 {
			return
		}
		if !a.mu.TryLock() {
			continue
		}
		busy := false
		for _, r := range a.regs {
			busy = busy || r.timer != nil
		}
		a.mu.Unlock()
		if !busy {
			delete(s.accounts, u)
		}
	}
}

// newID returns a fresh IQ id for a notification.
func newID() string {
	var b [9]byte
	rand.Read(b[:])
	return "push-" + hex.EncodeToString(b[:])
}

// Errors of delivery.
var (
	// errRemote: the app server is on another server, and koi does not
	// federate yet.
	errRemote = errors.New("the app server is on another server (no federation)")
	// errUnreachable: the app server is local and nothing there takes
	// the notification, as if it had answered service-unavailable.
	errUnreachable = errors.New("no session of the app server takes notifications")
)
