// Package spamreport takes the spam and abuse reports users attach to a
// block (XEP-0377) and hands them to the people who can act on them: each
// report is logged, and sent to the reporter's host's admins (its admins
// key) as a message that forwards the reported messages from the
// reporter's archive, as Prosody's mod_spam_reporting with
// mod_report_forward does.
//
// Both versions of the payload are read: version 1, <report
// xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'/> inside
// the blocked <item/> (Conversations, Gajim), and version 0, with <spam/>
// or <abuse/> inside, which slixmpp puts beside the items in the <block/>.
// The block itself is the blocking module's business and happens whatever
// the report says.
package spamreport

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Namespaces of XEP-0377.
const (
	NS  = "urn:xmpp:reporting:1"
	NS0 = "urn:xmpp:reporting:0"

	nsSID     = "urn:xmpp:sid:0"
	nsForward = "urn:xmpp:forward:0"
	nsDelay   = "urn:xmpp:delay"
)

// Features are what a server that takes reports advertises: both
// versions, and version 0's reasons.
var Features = []string{NS, NS0, "urn:xmpp:reporting:reason:spam:0", "urn:xmpp:reporting:reason:abuse:0"}

// Limits.
const (
	// maxIDs bounds the reported messages looked up in one report.
	maxIDs = 20
	// maxTextLen bounds the reporter's text kept.
	maxTextLen = 2000
	// perReporter reports of one user are forwarded to admins per
	// window; more are only logged, so a user cannot flood the admins.
	perReporter = 10
	window      = time.Hour
	// maxReporters bounds the users whose count is kept.
	maxReporters = 10000
)

// Report is one report: who reported whom, why, and which messages.
type Report struct {
	Reporter, Reported jid.JID
	Reason             string // "spam" or "abuse"
	Text               string
	StanzaIDs          []string // ids in the reporter's archive
}

// Parse reads the report on item (a <block/>'s <item/>) or, failing that,
// the one beside the items in block; ok is false when there is none.
func Parse(reporter, reported jid.JID, block, item *xmlstream.Element) (Report, bool) {
	for _, el := range []*xmlstream.Element{item, block} {
		if el == nil {
			continue
		}
		for _, r := range el.Elements() {
			if r.Local != "report" || (r.Space != NS && r.Space != NS0) {
				continue
			}
			rep := Report{Reporter: reporter.Bare(), Reported: reported}
			switch {
			case r.Space == NS:
				rep.Reason = strings.TrimPrefix(r.Attr("reason"), "urn:xmpp:reporting:")
			case r.Child(NS0, "abuse") != nil:
				rep.Reason = "abuse"
			default:
				rep.Reason = "spam"
			}
			if rep.Reason != "spam" && rep.Reason != "abuse" {
				rep.Reason = "spam" // an unknown reason is still a report
			}
			if t := r.Child(r.Space, "text"); t != nil {
				rep.Text = strings.TrimSpace(t.Text())
				if len(rep.Text) > maxTextLen {
					rep.Text = rep.Text[:maxTextLen]
				}
			}
			for _, c := range r.Elements() {
				if c.Space == nsSID && c.Local == "stanza-id" && c.Attr("id") != "" && len(rep.StanzaIDs) < maxIDs {
					rep.StanzaIDs = append(rep.StanzaIDs, c.Attr("id"))
				}
			}
			return rep, true
		}
	}
	return Report{}, false
}

// Archive reads a user's archive; nil when the host keeps none.
type Archive interface {
	// Sync waits until owner's pending messages are stored.
	Sync(ctx context.Context, owner string) error
	QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error)
}

// Config is what the service needs.
type Config struct {
	Log hclog.Logger
	// Admins are the bare JIDs of host's admins.
	Admins func(host string) []string
	// Archive is host's archive, nil when it has none.
	Archive func(host string) Archive
	// Send delivers a message to a local user (stored offline if need
	// be); false if to is not local.
	Send func(ctx context.Context, el *xmlstream.Element, to jid.JID) bool
	Now  func() time.Time // time.Now if nil
}

// Service hands reports on.
type Service struct {
	cfg Config

	mu     sync.Mutex
	counts map[jid.JID]*count
}

type count struct {
	n     int
	since time.Time
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, counts: map[jid.JID]*count{}}
}

// Reported takes a report whose block was stored.
func (s *Service) Reported(ctx context.Context, r Report) {
	s.cfg.Log.Info("abuse report", "reporter", r.Reporter.String(), "reported", r.Reported.String(),
		"reason", r.Reason, "text", r.Text, "messages", len(r.StanzaIDs))
	host := r.Reporter.Domain()
	admins := s.cfg.Admins(host)
	if len(admins) == 0 {
		return
	}
	if !s.allow(r.Reporter) {
		s.cfg.Log.Info("abuse report not forwarded to the admins: the reporter sent too many this hour", "reporter", r.Reporter.String(), "limit", perReporter)
		return
	}
	msg := s.message(ctx, r)
	for _, a := range admins {
		to, err := jid.Parse(a)
		if err != nil {
			continue
		}
		m := msg.Copy()
		m.SetAttr("to", to.String())
		if !s.cfg.Send(ctx, m, to) {
			s.cfg.Log.Warn("an abuse report could not be sent to an admin", "admin", a)
		}
	}
}

// allow counts a report of reporter against the limit.
func (s *Service) allow(reporter jid.JID) bool {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts[reporter]
	if c == nil || now.Sub(c.since) > window {
		if len(s.counts) >= maxReporters {
			clear(s.counts)
		}
		c = &count{since: now}
		s.counts[reporter] = c
	}
	c.n++
	return c.n <= perReporter
}

// message is what the admins get: a summary, the report itself (with the
// reported JID), and the reported messages forwarded (XEP-0297) from the
// reporter's archive, those of the reported JID only.
func (s *Service) message(ctx context.Context, r Report) *xmlstream.Element {
	host := r.Reporter.Domain()
	msg := xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("type", "normal").SetAttr("from", host).
		SetAttr("id", fmt.Sprintf("report-%d", s.cfg.Now().UnixNano()))
	msg.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "subject").AppendText("Abuse report: " + r.Reported.String()))
	body := fmt.Sprintf("%s reported %s for %s.", r.Reporter, r.Reported, r.Reason)
	if r.Text != "" {
		body += "\nTheir words: " + r.Text
	}
	forwarded := s.reportedMessages(ctx, r)
	switch {
	case len(forwarded) > 0:
		body += fmt.Sprintf("\nThe %d reported messages follow.", len(forwarded))
	case len(r.StanzaIDs) > 0:
		body += fmt.Sprintf("\n%d messages were named, none of them found in the reporter's archive.", len(r.StanzaIDs))
	}
	msg.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "body").AppendText(body))
	rep := xmlstream.NewElement(NS, "report").SetAttr("reason", "urn:xmpp:reporting:"+r.Reason).SetAttr("jid", r.Reported.String())
	if r.Text != "" {
		rep.AppendChild(xmlstream.NewElement(NS, "text").AppendText(r.Text))
	}
	msg.AppendChild(rep)
	for _, f := range forwarded {
		msg.AppendChild(f)
	}
	return msg
}

// reportedMessages reads the reported messages from the reporter's
// archive: only those the reported JID sent to the reporter, so that a
// report cannot make the server hand out anyone else's messages.
func (s *Service) reportedMessages(ctx context.Context, r Report) []*xmlstream.Element {
	if len(r.StanzaIDs) == 0 || s.cfg.Archive == nil {
		return nil
	}
	a := s.cfg.Archive(r.Reporter.Domain())
	if a == nil {
		return nil
	}
	if err := a.Sync(ctx, r.Reporter.String()); err != nil {
		s.cfg.Log.Warn("the reported messages could not be read from the archive", "reporter", r.Reporter.String(), "error", err)
		return nil
	}
	page, err := a.QueryArchive(ctx, sdk.ArchiveQuery{Owner: r.Reporter.String(), With: r.Reported.Bare().String(), IDs: r.StanzaIDs, Max: maxIDs})
	if err != nil {
		s.cfg.Log.Warn("the reported messages could not be read from the archive", "reporter", r.Reporter.String(), "error", err)
		return nil
	}
	var out []*xmlstream.Element
	for _, m := range page.Messages {
		if m.Outgoing {
			continue
		}
		el, err := stanza.Parse(m.Stanza)
		if err != nil {
			continue
		}
		fwd := xmlstream.NewElement(nsForward, "forwarded")
		fwd.AppendChild(xmlstream.NewElement(nsDelay, "delay").SetAttr("stamp", m.Stamp.UTC().Format(time.RFC3339)))
		fwd.AppendChild(el)
		out = append(out, fwd)
	}
	return out
}
