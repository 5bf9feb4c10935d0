package load

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/scan"
)

// PEPNode is the node the pep workload publishes to; contacts ask for its
// notifications with PEPNode+"+notify" in their capabilities.
const PEPNode = "urn:koi-bench:pep"

const (
	capsNode     = "https://koi-im.github.io/koi-bench"
	nsCaps       = "http://jabber.org/protocol/caps"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsPubSub     = "http://jabber.org/protocol/pubsub"
	capsIdentity = "client/bot//koi-bench"
)

// capsFeatures are what the contacts' disco#info announces.
var capsFeatures = []string{nsCaps, nsDiscoInfo, PEPNode + "+notify"}

// capsVer is the XEP-0115 §5.1 verification string of the contacts'
// identity and features, SHA-1, base64.
func capsVer() string { return capsVerOf(capsIdentity, capsFeatures) }

// capsVerOf computes the verification string of one identity
// (category/type/lang/name) and features, without forms.
func capsVerOf(identity string, features []string) string {
	f := append([]string(nil), features...)
	sort.Strings(f)
	s := identity + "<"
	for _, x := range f {
		s += x + "<"
	}
	h := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(h[:])
}

// PEP runs the PEP workload: user Offset publishes to PEPNode; users
// Offset+1..Offset+Receivers are its contacts (subscribed both ways, set
// up by presence subscriptions on the first run) whose presence carries
// caps with PEPNode+"+notify", which the server resolves by asking them
// disco#info (XEP-0163 §4.3, XEP-0115). Each publish is one notification
// to every contact.
func PEP(ctx context.Context, e *Env, p FanParams) (*FanResult, error) {
	p.Senders = 1
	if err := p.check("pep"); err != nil {
		return nil, err
	}
	f := newFanRun(e, "pep", p)
	r := &FanResult{Common: e.common("pep"), Receivers: p.Receivers, Senders: 1, Rate: p.Rate, Window: p.Window, BodySize: p.BodySize}
	setup := time.Now()
	conns, err := f.login(ctx, p.UserOffset, p.Receivers+1)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	defer f.stopReaders()
	r.Mechanism, r.TLS = conns[0].Mechanism(), conns[0].TLS()
	domain := e.Dialer.Options().Domain
	owner := e.Users.Name(p.UserOffset) + "@" + domain

	text := body(p.BodySize)
	pub := conns[0]
	f.addSender(pub, func(b, tag []byte) []byte {
		b = append(b, "<iq type='set' id='"...)
		b = append(b, tag...)
		b = append(b, "'><pubsub xmlns='"+nsPubSub+"'><publish node='"+PEPNode+"'><item id='current'><tick xmlns='"+PEPNode+"'>"...)
		b = append(b, tag...)
		b = append(b, ' ')
		b = scan.Escape(b, text)
		return append(b, "</tick></item></publish></pubsub></iq>"...)
	})

	ver := capsVer()
	var info []byte
	info = append(info, "'><query xmlns='"+nsDiscoInfo+"' node='"+capsNode+"#"+ver+"'><identity category='client' type='bot' name='koi-bench'/>"...)
	for _, x := range capsFeatures {
		info = append(info, "<feature var='"+x+"'/>"...)
	}
	info = append(info, "</query></iq>"...)
	var probed atomic.Int64
	probe := append(append([]byte("kb-probe."), f.needle...), "end"...)
	for _, c := range conns[1:] {
		var seen atomic.Bool
		f.addReceiver(c, func(raw []byte) bool {
			switch {
			case scan.IsNamed(raw, "message") && bytes.Contains(raw, probe):
				if !seen.Swap(true) {
					probed.Add(1)
				}
				return true
			case scan.IsNamed(raw, "iq"):
				t, _ := scan.Attr(raw, "type")
				q, ok := scan.Child(raw, "query")
				if string(t) != "get" || !ok {
					return false
				}
				id, _ := scan.Attr(raw, "id")
				from, _ := scan.Attr(raw, "from")
				b := append([]byte("<iq type='result' id='"), id...)
				b = append(append(b, "' to='"...), from...)
				if ns, _ := scan.Attr(q, "xmlns"); string(ns) == nsDiscoInfo {
					b = append(b, info...)
				} else {
					b = append(b, "'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"...)
					b = bytes.Replace(b, []byte("type='result'"), []byte("type='error'"), 1)
				}
				c.NetConn().Write(b)
				return true
			case scan.IsNamed(raw, "presence"):
				// The publisher's subscription request: accept it and ask
				// back, for a subscription both ways.
				if t, _ := scan.Attr(raw, "type"); string(t) == "subscribe" {
					from, _ := scan.Attr(raw, "from")
					to := scan.Escape(nil, string(from))
					c.NetConn().Write([]byte("<presence type='subscribed' to='" + string(to) + "'/><presence type='subscribe' to='" + string(to) + "'/>"))
				}
				return true
			}
			return false
		})
	}
	roster := make(chan []byte, 1)
	f.addDrain(pub, func(raw []byte) bool {
		switch {
		case scan.IsNamed(raw, "presence"):
			if t, _ := scan.Attr(raw, "type"); string(t) == "subscribe" {
				from, _ := scan.Attr(raw, "from")
				pub.NetConn().Write([]byte("<presence type='subscribed' to='" + string(scan.Escape(nil, string(from))) + "'/>"))
			}
			return true
		case scan.IsNamed(raw, "iq"):
			if id, _ := scan.Attr(raw, "id"); bytes.HasPrefix(id, []byte("kb-roster")) {
				select { // a late answer to a query given up on is dropped
				case roster <- bytes.Clone(raw):
				default:
				}
				return true
			}
		}
		return false
	})

	// Everyone available; the contacts with caps, which the server
	// resolves by asking one of them.
	capsPres := []byte("<presence><c xmlns='" + nsCaps + "' hash='sha-1' node='" + capsNode + "' ver='" + ver + "'/></presence>")
	for _, c := range conns[1:] {
		if _, err := c.NetConn().Write(capsPres); err != nil {
			return nil, fmt.Errorf("pep: %s: %w", c.JID(), err)
		}
	}
	contacts := make(map[string]bool, p.Receivers)
	for i := range p.Receivers {
		contacts[e.Users.Name(p.UserOffset+1+i)+"@"+domain] = true
	}
	both := func() (int, error) {
		if _, err := pub.NetConn().Write([]byte("<iq type='get' id='kb-roster'><query xmlns='jabber:iq:roster'/></iq>")); err != nil {
			return 0, err
		}
		var raw []byte
		select {
		case raw = <-roster:
		case <-time.After(e.Dialer.Options().Timeout):
			return 0, fmt.Errorf("no roster from the server")
		}
		q, _ := scan.Child(raw, "query")
		n := 0
		scan.Children(q, "item", func(it []byte) bool {
			j, _ := scan.Attr(it, "jid")
			s, _ := scan.Attr(it, "subscription")
			if string(s) == "both" && contacts[scan.Unescape(j)] {
				n++
			}
			return true
		})
		return n, nil
	}
	if _, err := pub.NetConn().Write([]byte("<presence/>")); err != nil {
		return nil, fmt.Errorf("pep: %s: %w", owner, err)
	}
	n, err := both()
	if err != nil {
		return nil, fmt.Errorf("pep: %w", err)
	}
	if n < p.Receivers {
		// First run against these users: subscribe both ways.
		var b []byte
		for i := range p.Receivers {
			b = append(b, "<presence type='subscribe' to='"...)
			b = scan.Escape(b, e.Users.Name(p.UserOffset+1+i)+"@"+domain)
			b = append(b, "'/>"...)
		}
		if _, err := pub.NetConn().Write(b); err != nil {
			return nil, fmt.Errorf("pep: %s: %w", owner, err)
		}
		stop := e.progress("pep", func() string { return fmt.Sprintf("subscribed both ways %d/%d", n, p.Receivers) })
		deadline := time.Now().Add(e.Dialer.Options().Timeout + time.Duration(p.Receivers)*10*time.Millisecond)
		for n < p.Receivers && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			if n, err = both(); err != nil {
				break
			}
		}
		stop()
		if err != nil {
			return nil, fmt.Errorf("pep: %w", err)
		}
		if n < p.Receivers {
			return nil, fmt.Errorf("pep: only %d of %d contacts subscribed both ways to %s (errors %d, first %v)", n, p.Receivers, owner, f.errs.n.Load(), f.errs.first)
		}
	}
	// Probe items until every contact is notified: the server has resolved
	// the caps (asking a contact, or from its cache of an earlier run), so
	// the measurement counts no publish lost that went to no one.
	probeIQ := []byte("<iq type='set' id='kb-probe'><pubsub xmlns='" + nsPubSub + "'><publish node='" + PEPNode + "'><item id='current'><tick xmlns='" + PEPNode + "'>" + string(probe) + "</tick></item></publish></pubsub></iq>")
	deadline := time.Now().Add(e.Dialer.Options().Timeout)
	for probed.Load() < int64(p.Receivers) && time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := pub.NetConn().Write(probeIQ); err != nil {
			return nil, fmt.Errorf("pep: %s: %w", owner, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := probed.Load(); n < int64(p.Receivers) {
		return nil, fmt.Errorf("pep: %d of %d contacts got a notification of a test item (caps +notify not honoured?)", n, p.Receivers)
	}
	r.SetupSeconds = time.Since(setup).Seconds()
	if err := f.measure(ctx, r); err != nil {
		return nil, err
	}
	if r.Received == 0 && r.Sent > 0 {
		r.Notes = append(r.Notes, "no contact got a notification: caps +notify not honoured?")
	}
	return r, nil
}
