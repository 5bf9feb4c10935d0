package modules

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// prefsOutage is an archive backend whose preferences cannot be read
// (its plugin is restarting) for the first failures reads, or for ever
// when failures is negative.
type prefsOutage struct {
	sdk.Archive
	failures int64
	reads    atomic.Int64
}

func (p *prefsOutage) GetArchivePrefs(ctx context.Context, owner string) (sdk.ArchivePrefs, error) {
	if n := p.reads.Add(1); p.failures < 0 || n <= p.failures {
		return sdk.ArchivePrefs{}, fmt.Errorf("plugin restarting: %w", sdk.ErrUnavailable)
	}
	return p.Archive.GetArchivePrefs(ctx, owner)
}

// chatAndCollect has alice send bob one message and returns what bob
// received and what alice got back.
func chatAndCollect(t *testing.T, e *env) (toBob, toAlice []*xmlstream.Element) {
	t.Helper()
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("1")
	b.online("1")
	a.chat("bob@example.com", "m", 1)
	return b.rec.Take(), a.rec.Take()
}

func delivered(els []*xmlstream.Element) bool {
	return find(els, func(el *xmlstream.Element) bool { return el.Local == "message" && el.Attr("type") == "chat" }) != nil
}

func bounced(els []*xmlstream.Element) *xmlstream.Element {
	return find(els, func(el *xmlstream.Element) bool { return el.Local == "message" && el.Attr("type") == "error" })
}

// archived waits for owner's archive to settle and returns its size.
func archived(t *testing.T, e *env, owner string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.host.Archive.Backend.Sync(ctx, owner); err != nil {
		t.Fatal(err)
	}
	page, err := e.store.QueryArchive(ctx, sdk.ArchiveQuery{Owner: owner, Max: 10})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Messages)
}

// A message whose owners' preferences are not in memory while the
// archive plugin restarts waits for the plugin rather than being refused,
// and the preferences read then apply: bob said never.
func TestArchiveWaitsForPreferencesWhileThePluginRestarts(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	if err := e.store.SetArchivePrefs(context.Background(), "bob@example.com", sdk.ArchivePrefs{Default: sdk.ArchiveNever}); err != nil {
		t.Fatal(err)
	}
	outage := &prefsOutage{Archive: e.store, failures: 3}
	e.host.Archive.Backend.Backend = outage
	toBob, toAlice := chatAndCollect(t, e)
	if !delivered(toBob) || bounced(toAlice) != nil {
		t.Fatalf("the message was not delivered: bob got %v, alice got %v", toBob, toAlice)
	}
	if n := outage.reads.Load(); n < 4 {
		t.Fatalf("%d preferences reads, want the 3 failures and then the reads that worked", n)
	}
	if n := archived(t, e, "alice@example.com"); n != 1 {
		t.Errorf("alice's archive holds %d messages, want 1", n)
	}
	if n := archived(t, e, "bob@example.com"); n != 0 {
		t.Errorf("bob's archive holds %d messages, want 0: he said never", n)
	}
}

// When the preferences stay unreadable past the wait, the message is
// still delivered; the copy whose owner's preferences are unknown is not
// archived, the other one is.
func TestArchiveWithoutPreferencesDeliversAndSkipsTheCopy(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	ctx := context.Background()
	// alice's preferences are in memory (she asked for them), bob's not.
	e.m.archivePrefs(ctx, e.host, "alice@example.com")
	outage := &prefsOutage{Archive: e.store, failures: -1}
	e.host.Archive.Backend.Backend = outage
	e.host.Archive.Backend.PrefsWait = 50 * time.Millisecond
	start := time.Now()
	toBob, toAlice := chatAndCollect(t, e)
	if !delivered(toBob) || bounced(toAlice) != nil {
		t.Fatalf("the message was not delivered: bob got %v, alice got %v", toBob, toAlice)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("gave up on bob's preferences after %v, want the 50ms wait", waited)
	}
	if n := outage.reads.Load(); n < 2 {
		t.Errorf("bob's preferences were read %d times, want retries", n)
	}
	if n := archived(t, e, "alice@example.com"); n != 1 {
		t.Errorf("alice's archive holds %d messages, want 1", n)
	}
	if n := archived(t, e, "bob@example.com"); n != 0 {
		t.Errorf("bob's archive holds %d messages, want 0: his preferences are unknown", n)
	}
}

// A user's preferences are read when the user comes online, so that an
// outage of the plugin afterwards does not touch the user's messages.
func TestArchivePreferencesAreReadAtInitialPresence(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	outage := &prefsOutage{Archive: e.store}
	e.host.Archive.Backend.Backend = outage
	e.host.Archive.Backend.PrefsWait = 50 * time.Millisecond
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("1")
	b.online("1")
	if n := outage.reads.Load(); n != 2 {
		t.Fatalf("%d preferences reads at login, want 2", n)
	}
	outage.failures = -1 // the plugin goes down
	a.chat("bob@example.com", "m", 1)
	if toBob, toAlice := b.rec.Take(), a.rec.Take(); !delivered(toBob) || bounced(toAlice) != nil {
		t.Fatalf("the message was not delivered: bob got %v, alice got %v", toBob, toAlice)
	}
	if n := outage.reads.Load(); n != 2 {
		t.Errorf("%d preferences reads, want none after the logins", n)
	}
	for _, owner := range []string{"alice@example.com", "bob@example.com"} {
		if n := archived(t, e, owner); n != 1 {
			t.Errorf("%s's archive holds %d messages, want 1", owner, n)
		}
	}
}

// The cache's bound does not push out the preferences of a user who is
// online, and still holds for the others.
func TestOnlineUsersPreferencesStayInMemory(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	a := e.login("alice@example.com/pc")
	a.online("1")
	// Without the exemption alice's entry would survive 5 times the
	// bound of random evictions with a chance of e^-5.
	for i := range 5 * prefsCacheSize {
		e.m.cachePrefs(fmt.Sprintf("u%d@example.com", i), sdk.ArchivePrefs{Default: sdk.ArchiveAlways})
	}
	st := e.m.archive
	st.mu.RLock()
	_, kept := st.prefs["alice@example.com"]
	n := len(st.prefs)
	st.mu.RUnlock()
	if !kept {
		t.Error("alice is online and her preferences were forgotten")
	}
	if n > prefsCacheSize {
		t.Errorf("%d preferences in memory, bound %d", n, prefsCacheSize)
	}
	a.logout()
	st.mu.RLock()
	online := st.online["alice@example.com"]
	st.mu.RUnlock()
	if online {
		t.Error("alice logged out and her preferences are still kept as an online user's")
	}
}
