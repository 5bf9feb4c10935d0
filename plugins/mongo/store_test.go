package mongobackend

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koi-im/koi/plugins/mongo/mongotest"
	"github.com/koi-im/koi/sdk"
)

// The tests run against a FerretDB of their own (see mongotest), or the
// MongoDB named by KOI_TEST_MONGO_URI.

func open(t *testing.T, set Settings) (*Store, mongotest.Server) {
	t.Helper()
	srv := mongotest.Start(t)
	set.URI, set.Database = srv.URI, srv.Database
	s, err := Open(t.Context(), set, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, srv
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		json    string
		want    Settings
		wantErr []string
	}{
		{json: `{"uri": "mongodb://127.0.0.1:27017/"}`,
			want: Settings{URI: "mongodb://127.0.0.1:27017/", Database: "koi", RetentionInterval: time.Hour, ConnectTimeout: 10 * time.Second,
				ArchiveWriters: defaultArchiveWriters}},
		{json: `{"uri": "mongodb://h/", "database": "chat", "fulltext": true, "retention_days": 30, "retention_interval": "10m", "connect_timeout": "2s", "archive_writers": 1}`,
			want: Settings{URI: "mongodb://h/", Database: "chat", FullText: true, RetentionDays: 30, RetentionInterval: 10 * time.Minute, ConnectTimeout: 2 * time.Second,
				ArchiveWriters: 1}},
		{json: `{}`, wantErr: []string{"uri: missing"}},
		{json: `{"uri": "http://h/", "database": "a.b", "retention_days": -1, "retention_interval": "soon"}`,
			wantErr: []string{"uri: must start with mongodb://", `database: "a.b"`, "retention_days: -1", `retention_interval: "soon"`}},
		{json: `{"uri": "mongodb://h/", "retension_days": 3}`, wantErr: []string{"retension_days"}},
		{json: `{"uri": "mongodb://h/", "archive_writers": -1}`, wantErr: []string{"archive_writers: -1"}},
		{json: `{"uri": "mongodb://h/", "archive_writers": 65}`, wantErr: []string{"archive_writers: 65"}},
	}
	for _, tt := range tests {
		got, err := ParseConfig(sdk.Config{Raw: []byte(tt.json)})
		if len(tt.wantErr) == 0 {
			if err != nil || got != tt.want {
				t.Errorf("%s: got %+v, %v; want %+v", tt.json, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("%s: error %v is not ErrInvalid", tt.json, err)
		}
		for _, w := range tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v does not mention %q", tt.json, err, w)
			}
		}
	}
}

func TestOpenFailsFastWithoutAServer(t *testing.T) {
	start := time.Now()
	_, err := Open(t.Context(), Settings{URI: "mongodb://127.0.0.1:1/", ConnectTimeout: 300 * time.Millisecond}, nil)
	if !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("Open without a server: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func archived(owner string, i int, body string) sdk.ArchivedMessage {
	return sdk.ArchivedMessage{
		Owner: owner, StanzaID: fmt.Sprintf("%016d", i), Peer: "bob@example.com", PeerResource: "phone",
		Stamp:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute),
		Stanza: fmt.Sprintf("<message><body>%s</body></message>", body), Body: body,
	}
}

func TestArchiveWritesAreIdempotentWithoutTransactions(t *testing.T) {
	s, _ := open(t, Settings{})
	ctx := t.Context()
	owner := "alice@example.com"
	var batch []sdk.ArchivedMessage
	for i := range 10 {
		batch = append(batch, archived(owner, i, fmt.Sprint("m", i)))
	}
	if err := s.AppendArchive(ctx, batch[:6]); err != nil {
		t.Fatal(err)
	}
	// The whole batch again (a resend after a lost acknowledgement): the
	// first six are skipped, the rest stored.
	if err := s.AppendArchive(ctx, batch); err != nil {
		t.Fatalf("resending a batch: %v", err)
	}
	if err := s.AppendArchive(ctx, batch); err != nil {
		t.Fatalf("resending it twice: %v", err)
	}
	p, err := s.QueryArchive(ctx, sdk.ArchiveQuery{Owner: owner, Max: 100, Count: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 10 || p.Count != 10 || !p.Complete {
		t.Fatalf("after resends: %d messages, count %d, complete %v; want 10 once each", len(p.Messages), p.Count, p.Complete)
	}
	bad := archived(owner, 99, "x")
	bad.Stanza = "nul\x00"
	if err := s.AppendArchive(ctx, []sdk.ArchivedMessage{archived(owner, 98, "fine"), bad}); !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("a batch with a NUL byte: %v, want ErrInvalid", err)
	}
	if p, _ := s.QueryArchive(ctx, sdk.ArchiveQuery{Owner: owner, IDs: []string{fmt.Sprintf("%016d", 98)}, Max: 1}); len(p.Messages) != 0 {
		t.Error("part of an invalid batch was stored")
	}
}

func TestFullTextFallsBackWhereTextIndexesAreMissing(t *testing.T) {
	s, srv := open(t, Settings{FullText: true})
	if !srv.Real && s.textIndex {
		t.Fatal("FerretDB was taken to have text indexes")
	}
	t.Logf("full-text search: %s", s.searchMode())
	if !s.Capabilities().Archive.FullText {
		t.Fatal("full-text search not declared")
	}
	ctx := t.Context()
	owner := "carol@example.com"
	msgs := []sdk.ArchivedMessage{
		archived(owner, 1, "Shall we meet at the Lighthouse?"),
		archived(owner, 2, "the ferry leaves at noon"),
		archived(owner, 3, "lighthouse tours are sold out"),
		archived(owner, 4, "a.b*c (regex characters)"),
	}
	if err := s.AppendArchive(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	search := func(text string) []string {
		t.Helper()
		p, err := s.QueryArchive(ctx, sdk.ArchiveQuery{Owner: owner, Text: text, Max: 10})
		if err != nil {
			t.Fatalf("search %q: %v", text, err)
		}
		var ids []string
		for _, m := range p.Messages {
			ids = append(ids, m.StanzaID[len(m.StanzaID)-1:])
		}
		return ids
	}
	if got := search("lighthouse"); !slices.Equal(got, []string{"1", "3"}) {
		t.Errorf("search lighthouse: %v, want messages 1 and 3", got)
	}
	if got := search("ferry"); !slices.Equal(got, []string{"2"}) {
		t.Errorf("search ferry: %v", got)
	}
	if !s.textIndex {
		// Regular-expression characters are searched for literally.
		if got := search("b*c ("); !slices.Equal(got, []string{"4"}) {
			t.Errorf("search with regex characters: %v", got)
		}
	}
}

func TestRetention(t *testing.T) {
	s, _ := open(t, Settings{RetentionDays: 7, RetentionInterval: 50 * time.Millisecond})
	ctx := t.Context()
	owner := "dave@example.com"
	old, recent := archived(owner, 1, "old"), archived(owner, 2, "recent")
	old.Stamp = time.Now().Add(-8 * 24 * time.Hour).UTC()
	recent.Stamp = time.Now().Add(-6 * 24 * time.Hour).UTC()
	if err := s.AppendArchive(ctx, []sdk.ArchivedMessage{old, recent}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := s.QueryArchive(ctx, sdk.ArchiveQuery{Owner: owner, Max: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) == 1 {
			if p.Messages[0].Body != "recent" {
				t.Fatalf("retention kept %q", p.Messages[0].Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention did not delete the 8-day-old message: %d left", len(p.Messages))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConcurrentRosterChangesAreNotLost(t *testing.T) {
	s, _ := open(t, Settings{})
	ctx := t.Context()
	owner := "erin@example.com"
	const workers, each = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				_, err := s.SetItem(ctx, owner, sdk.RosterItem{JID: fmt.Sprintf("c%d-%d@example.com", w, i), Subscription: sdk.SubNone})
				errs <- err
				errs <- s.SetPending(ctx, owner, sdk.PendingSubscription{JID: fmt.Sprintf("p%d-%d@example.com", w, i), Stanza: "<presence/>"})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.GetRoster(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Items) != workers*each || len(st.Pending) != workers*each || st.Version != fmt.Sprint(workers*each) {
		t.Fatalf("%d items, %d pending, version %s; want %d, %d, %d", len(st.Items), len(st.Pending), st.Version,
			workers*each, workers*each, workers*each)
	}
}

func TestOfflinePopReturnsEachMessageOnce(t *testing.T) {
	s, _ := open(t, Settings{})
	ctx := t.Context()
	owner := "frank@example.com"
	const n = 40
	for i := range n {
		if err := s.Store(ctx, owner, sdk.OfflineMessage{Stanza: fmt.Sprintf("<message id='%02d'/>", i), Stamp: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var got []string
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			msgs, err := s.Pop(ctx, owner)
			if err != nil {
				t.Error(err)
				return
			}
			var mine []string
			for _, m := range msgs {
				mine = append(mine, m.Stanza)
			}
			if !slices.IsSorted(mine) {
				t.Errorf("one Pop returned messages out of order: %v", mine)
			}
			mu.Lock()
			got = append(got, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(got) != n || len(slices.Compact(slices.Clone(got))) != n {
		t.Fatalf("concurrent Pops returned %d messages (%d distinct), want %d once each", len(got), len(slices.Compact(got)), n)
	}
	if c, err := s.Count(ctx, owner); err != nil || c != 0 {
		t.Fatalf("after Pop: count %d, %v", c, err)
	}
}

func TestDocuments(t *testing.T) {
	s, _ := open(t, Settings{})
	ctx := t.Context()
	owner := "gina@example.com"
	if _, err := s.GetVCard(ctx, owner); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("missing vCard: %v", err)
	}
	if err := s.DeleteVCard(ctx, owner); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("deleting a missing vCard: %v", err)
	}
	for _, v := range []string{"<vCard xmlns='vcard-temp'/>", "<vCard xmlns='vcard-temp'><FN>Gina</FN></vCard>"} {
		if err := s.SetVCard(ctx, owner, v); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetVCard(ctx, owner); err != nil || got != v {
			t.Fatalf("vCard = %q, %v; want %q", got, err, v)
		}
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if err := s.SetPrivate(ctx, owner, "storage", "storage:bookmarks", fmt.Sprintf("<storage n='%d'/>", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, err := s.GetPrivate(ctx, owner, "storage", "storage:bookmarks"); err != nil || !strings.HasPrefix(got, "<storage n=") {
		t.Fatalf("private = %q, %v", got, err)
	}
	if _, err := s.GetPrivate(ctx, owner, "storage", "other:ns"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("other namespace: %v", err)
	}
	if err := s.DeletePrivate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPrivate(ctx, owner, "storage", "storage:bookmarks"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.SetVCard(ctx, "", "<x/>"); !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("empty owner: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// Opening a database that is already set up must work, also from two
// processes at once (koi and koictl): FerretDB 1.24 drops the connection
// when asked to create an index that exists.
func TestOpenTwiceAndConcurrently(t *testing.T) {
	srv := mongotest.Start(t)
	set := Settings{URI: srv.URI, Database: srv.Database, FullText: true}
	for round := range 2 {
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				s, err := Open(t.Context(), set, nil)
				if err != nil {
					t.Errorf("round %d: %v", round, err)
					return
				}
				if err := s.Close(); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
}

func TestTheStampIndexComesWithRetentionOnly(t *testing.T) {
	for _, days := range []int{0, 7} {
		s, _ := open(t, Settings{RetentionDays: days})
		have, err := indexNames(t.Context(), s.archive)
		if err != nil {
			t.Fatal(err)
		}
		if !have["owner_time"] || !have["owner_peer_time"] {
			t.Errorf("retention_days %d: archive indexes %v lack the query indexes", days, have)
		}
		if have["stamp"] != (days > 0) {
			t.Errorf("retention_days %d: archive indexes %v; stamp wanted only with retention", days, have)
		}
	}
}
