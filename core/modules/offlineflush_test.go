package modules

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// heldOffline is the offline store with a Pop or a Store that waits, the
// first time, until the test lets it go.
type heldOffline struct {
	sdk.Offline
	popIn, popGo     chan struct{} // nil: Pop does not wait
	storeIn, storeGo chan struct{} // nil: Store does not wait
	popOnce, stOnce  sync.Once
}

func (h *heldOffline) Pop(ctx context.Context, owner string) ([]sdk.OfflineMessage, error) {
	if h.popIn != nil {
		h.popOnce.Do(func() {
			close(h.popIn)
			<-h.popGo
		})
	}
	return h.Offline.Pop(ctx, owner)
}

func (h *heldOffline) Store(ctx context.Context, owner string, m sdk.OfflineMessage) error {
	if h.storeIn != nil {
		// On its way to the database: not in it yet.
		h.stOnce.Do(func() {
			close(h.storeIn)
			<-h.storeGo
		})
	}
	return h.Offline.Store(ctx, owner, m)
}

// bodies returns the bodies of the messages among els, in order.
func bodies(els []*xmlstream.Element) []string {
	var out []string
	for _, el := range els {
		if el.Local == "message" {
			out = append(out, el.Child(xmlstream.NSClient, "body").Text())
		}
	}
	return out
}

// A message routed live while bob's offline messages are being delivered
// comes after them: it was sent later.
func TestOfflineMessagesGoBeforeLiveOnes(t *testing.T) {
	e := newEnv(t)
	alice := e.login("alice@example.com/pc")
	alice.online("0")
	alice.send(`<message to='bob@example.com' type='chat'><body>while away</body></message>`)
	held := &heldOffline{Offline: e.host.Offline.Backend, popIn: make(chan struct{}), popGo: make(chan struct{})}
	e.host.Offline.Backend = held

	bob := e.login("bob@example.com/phone")
	var wg sync.WaitGroup
	wg.Go(func() { bob.send(`<presence/>`) })
	<-held.popIn // bob is available; his offline messages are being read
	wg.Go(func() { alice.send(`<message to='bob@example.com' type='chat'><body>live</body></message>`) })
	// The live message waits for the flush; give it the time to overtake
	// it if it could.
	time.Sleep(50 * time.Millisecond)
	close(held.popGo)
	wg.Wait()
	if got := bodies(bob.rec.Take()); len(got) != 2 || got[0] != "while away" || got[1] != "live" {
		t.Fatalf("bob got %q, want the offline message, then the live one", got)
	}
}

// A message that reaches offline storage just after bob's presence
// flushed it is delivered at once, not at his next login.
func TestOfflineMessageStoredDuringTheFlushIsDelivered(t *testing.T) {
	e := newEnv(t)
	alice := e.login("alice@example.com/pc")
	alice.online("0")
	held := &heldOffline{Offline: e.host.Offline.Backend, storeIn: make(chan struct{}), storeGo: make(chan struct{})}
	e.host.Offline.Backend = held

	var wg sync.WaitGroup
	wg.Go(func() { alice.send(`<message to='bob@example.com' type='chat'><body>straggler</body></message>`) })
	<-held.storeIn // on its way to the store
	bob := e.login("bob@example.com/phone")
	bob.send(`<presence/>`) // flushes before the message is stored
	close(held.storeGo)
	wg.Wait()
	if got := bodies(bob.rec.Take()); len(got) != 1 || got[0] != "straggler" {
		t.Fatalf("bob got %q, want the message stored while he came online", got)
	}
	if left, err := e.store.Count(context.Background(), "bob@example.com"); err != nil || left != 0 {
		t.Fatalf("%d messages left in offline storage (%v), want 0", left, err)
	}
}
