// Package retraction puts tombstones in the places of one-to-one messages
// that their senders retracted (XEP-0424), in the archives of both
// parties, so that the server stops handing the text out while clients
// that sync their history later still learn that the message existed and
// was retracted.
//
// The retraction itself is archived like any message (package modules
// does it, and it must be: clients that were offline learn of it from the
// archive). Once it is, the Tombstoner searches each archive that holds
// it for the message it names: the latest message of the same
// conversation, in the same direction (so from the same bare JID: nobody
// retracts another's message), whose id or origin-id is the one named,
// among the conversation's most recent messages. That message, and the
// corrections of it (XEP-0308) which would otherwise keep its text, get a
// tombstone: their type, addresses and ids, and a <retracted/> element
// naming the retraction. This is what ejabberd and MongooseIM do too;
// Prosody keeps retracted messages as they were.
package retraction

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/sdk"
)

// Defaults of Config.
const (
	// DefaultDepth is how many of a conversation's latest messages are
	// searched for the one retracted: clients offer to retract recent
	// messages, and this bounds what a retraction costs the archive.
	DefaultDepth = 1000
	// DefaultConcurrency bounds the retractions handled at once; one that
	// comes while all are busy stays archived but leaves the message as
	// it was, and the log says so.
	DefaultConcurrency = 32
	// timeout bounds the handling of one retraction.
	timeout = 30 * time.Second
	// pageSize is the archive page read at a time.
	pageSize = 100
)

// Archive is a host's message archive as the Tombstoner uses it.
type Archive interface {
	// Sync waits until owner's pending messages are stored.
	Sync(ctx context.Context, owner string) error
	QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error)
	// CanRetract says whether Retract works.
	CanRetract() bool
	// Retract replaces owner's stored message stanzaID with tombstone.
	Retract(ctx context.Context, owner, stanzaID, tombstone string) error
}

// Config is what a Tombstoner needs.
type Config struct {
	Log hclog.Logger
	// Archive returns the archive of the host domain, nil when it has
	// none; it is called for each retraction, so a reloaded config is
	// followed.
	Archive func(domain string) Archive
	// Depth and Concurrency default to DefaultDepth and
	// DefaultConcurrency.
	Depth, Concurrency int
	// Now is the clock of the tombstones' stamps (time.Now if nil).
	Now func() time.Time
}

// Tombstoner replaces retracted messages in archives.
type Tombstoner struct {
	cfg   Config
	slots chan struct{}
	wg    sync.WaitGroup
	// busyLogged is when (Unix nanoseconds) a retraction was last logged
	// as dropped for want of a slot: once a minute at most.
	busyLogged atomic.Int64
}

// New returns a Tombstoner.
func New(cfg Config) *Tombstoner {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Depth <= 0 {
		cfg.Depth = DefaultDepth
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Tombstoner{cfg: cfg, slots: make(chan struct{}, cfg.Concurrency)}
}

// Retracted is told that the message retraction, whose id attribute is
// retraction and which names the message target, was archived as copies
// (in its sender's archive, its recipient's, or both); copies is kept, so
// the caller must not reuse it. The tombstones are put in place on a
// goroutine: the caller, which routes messages, does not wait for the
// archive.
func (t *Tombstoner) Retracted(copies []sdk.ArchivedMessage, target, retraction string) {
	if target == "" || len(copies) == 0 {
		return
	}
	select {
	case t.slots <- struct{}{}:
	default:
		now := time.Now().UnixNano()
		if last := t.busyLogged.Load(); now-last > int64(time.Minute) && t.busyLogged.CompareAndSwap(last, now) {
			t.cfg.Log.Warn("too many message retractions at once: a retracted message stays in the archive (the retraction is archived beside it)",
				"owner", copies[0].Owner, "id", target, "concurrency", t.cfg.Concurrency)
		}
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer func() { <-t.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		for _, j := range copies {
			if err := t.tombstone(ctx, j, target, retraction); err != nil {
				t.cfg.Log.Warn("a retracted message could not be replaced in the archive", "owner", j.Owner, "peer", j.Peer, "id", target, "error", err)
			}
		}
	}()
}

// Wait blocks until the retractions under way are done, or ctx ends.
func (t *Tombstoner) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tombstone finds, in j.Owner's archive, the message target that the
// retraction archived there as j retracts and replaces it and its corrections.
func (t *Tombstoner) tombstone(ctx context.Context, j sdk.ArchivedMessage, target, retraction string) error {
	owner, err := jid.Parse(j.Owner)
	if err != nil {
		return err
	}
	a := t.cfg.Archive(owner.Domain())
	if a == nil || !a.CanRetract() {
		return nil
	}
	if err := a.Sync(ctx, j.Owner); err != nil {
		return err
	}
	at := t.cfg.Now()
	before := j.StanzaID // the retracted message came first
	for seen := 0; seen < t.cfg.Depth; {
		page, err := a.QueryArchive(ctx, sdk.ArchiveQuery{
			Owner: j.Owner, With: j.Peer, Before: before, Last: true, Max: min(pageSize, t.cfg.Depth-seen),
		})
		if err != nil {
			return err
		}
		for i := len(page.Messages) - 1; i >= 0; i-- {
			m := page.Messages[i]
			if m.Outgoing != j.Outgoing || !strings.Contains(m.Stanza, target) {
				continue // cheap: most messages are not the one
			}
			el, err := stanza.Parse(m.Stanza)
			if err != nil || el.Child(archive.NSRetract1, "retracted") != nil || archive.RetractedID(el) != "" {
				continue
			}
			original := archive.Named(el, target)
			if !original && !archive.Corrects(el, target) {
				continue
			}
			if err := a.Retract(ctx, j.Owner, m.StanzaID, archive.Tombstone(el, retraction, at, nil).String()); err != nil {
				return err
			}
			if original {
				t.cfg.Log.Debug("retracted message replaced by a tombstone", "owner", j.Owner, "stanza_id", m.StanzaID)
				return nil
			}
		}
		seen += len(page.Messages)
		if page.Complete || len(page.Messages) == 0 {
			return nil
		}
		before = page.Messages[0].StanzaID
	}
	return nil
}
