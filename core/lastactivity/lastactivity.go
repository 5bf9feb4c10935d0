// Package lastactivity is XEP-0012 Last Activity: how long the server has
// been up, and how long ago an account's last resource went offline, with
// the status it left with.
//
// Namespace: jabber:iq:last. Full JIDs are answered by the client itself
// (the router delivers the IQ); the server answers for itself and, on an
// account's behalf, for its bare JID, to those subscribed to its presence.
//
// The moment an account went offline is kept in memory and, where the host
// has private XML storage (XEP-0049), in the account's private storage
// under the namespace urn:koi:last-activity, so that it survives a restart
// without a backend feature of its own.
package lastactivity

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Namespace is XEP-0012's.
const Namespace = "jabber:iq:last"

// storeNS and storeName name the private storage entry of an account.
const (
	storeNS   = "urn:koi:last-activity"
	storeName = "last"
)

// maxRemembered bounds the in-memory table; past it the oldest entries are
// dropped (they are in private storage where the host has it).
const maxRemembered = 100_000

// Private is the part of a private XML storage backend the tracker uses;
// nil where a host has none (then only memory remembers).
type Private interface {
	GetPrivate(ctx context.Context, owner, name, namespace string) (string, error)
	SetPrivate(ctx context.Context, owner, name, namespace, xml string) error
}

// Entry is an account's last going offline.
type Entry struct {
	At     time.Time
	Status string
}

// Tracker remembers when accounts went offline. Safe for concurrent use.
type Tracker struct {
	started time.Time
	now     func() time.Time

	mu   sync.Mutex
	seen map[jid.JID]Entry
}

// New returns a Tracker whose uptime counts from now; clock nil means
// time.Now.
func New(clock func() time.Time) *Tracker {
	if clock == nil {
		clock = time.Now
	}
	return &Tracker{started: clock(), now: clock, seen: map[jid.JID]Entry{}}
}

// WentOffline records that owner's last available resource sent
// unavailable presence (el), and stores it in p when p is not nil.
func (t *Tracker) WentOffline(ctx context.Context, owner jid.JID, el *xmlstream.Element, p Private) error {
	e := Entry{At: t.now(), Status: status(el)}
	t.mu.Lock()
	if len(t.seen) >= maxRemembered {
		var oldest jid.JID
		first := true
		for j, x := range t.seen {
			if first || x.At.Before(t.seen[oldest].At) {
				oldest, first = j, false
			}
		}
		delete(t.seen, oldest)
	}
	t.seen[owner.Bare()] = e
	t.mu.Unlock()
	if p == nil {
		return nil
	}
	rec := xmlstream.NewElement(storeNS, storeName).SetAttr("stamp", e.At.UTC().Format(time.RFC3339))
	if e.Status != "" {
		rec.AppendText(e.Status)
	}
	if err := p.SetPrivate(ctx, owner.Bare().String(), storeName, storeNS, string(rec.AppendXML(nil, ""))); err != nil {
		return fmt.Errorf("last activity: %w", err)
	}
	return nil
}

// Uptime is the answer for the server itself.
func (t *Tracker) Uptime() *xmlstream.Element {
	return query(t.now().Sub(t.started), "")
}

// Online is the answer for an account with an available resource.
func Online() *xmlstream.Element { return query(0, "") }

// ErrUnknown means nothing is known of the account's last activity.
var ErrUnknown = errors.New("last activity unknown")

// Offline is the answer for an account that is offline: seconds since its
// last resource left, with its status. ErrUnknown when it never went
// offline while anything remembered it.
func (t *Tracker) Offline(ctx context.Context, owner jid.JID, p Private) (*xmlstream.Element, error) {
	owner = owner.Bare()
	t.mu.Lock()
	e, ok := t.seen[owner]
	t.mu.Unlock()
	if !ok && p != nil {
		var err error
		if e, ok, err = load(ctx, owner, p); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, ErrUnknown
	}
	return query(t.now().Sub(e.At), e.Status), nil
}

func load(ctx context.Context, owner jid.JID, p Private) (Entry, bool, error) {
	s, err := p.GetPrivate(ctx, owner.String(), storeName, storeNS)
	if errors.Is(err, sdk.ErrNotFound) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("last activity: %w", err)
	}
	el, err := stanza.Parse(s)
	if err != nil {
		return Entry{}, false, nil // unreadable: as good as unknown
	}
	at, err := time.Parse(time.RFC3339, el.Attr("stamp"))
	if err != nil {
		return Entry{}, false, nil
	}
	return Entry{At: at, Status: el.Text()}, true, nil
}

// query builds <query xmlns='jabber:iq:last' seconds='…'>status</query>.
func query(d time.Duration, status string) *xmlstream.Element {
	secs := max(int64(d/time.Second), 0)
	q := xmlstream.NewElement(Namespace, "query").SetAttr("seconds", strconv.FormatInt(secs, 10))
	if status != "" {
		q.AppendText(status)
	}
	return q
}

// status is the text of an unavailable presence's <status/>, if any.
func status(el *xmlstream.Element) string {
	if el == nil {
		return ""
	}
	if s := el.Child(xmlstream.NSClient, "status"); s != nil {
		return s.Text()
	}
	return ""
}
