package sqlbackend

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

func TestClosedStoreUnavailable(t *testing.T) { forEachDB(t, testClosedStoreUnavailable) }

func testClosedStoreUnavailable(t *testing.T, s *Store) {
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	wantErr(t, "Ping", s.Ping(ctx), sdk.ErrUnavailable)
	_, err := s.GetVCard(ctx, "ann@example.org")
	wantErr(t, "GetVCard", err, sdk.ErrUnavailable)
	_, err = s.SetItem(ctx, "ann@example.org", sdk.RosterItem{JID: "bob@example.org", Subscription: sdk.SubNone})
	wantErr(t, "SetItem", err, sdk.ErrUnavailable)
}

// A writer held up by another process's lock gives up when its context
// ends, with ErrUnavailable, long before busy_timeout.
func TestLockedDatabaseUnavailable(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Store(short, "ann@example.org", sdk.OfflineMessage{Stanza: "<message/>"})
	wantErr(t, "Store while locked", err, sdk.ErrUnavailable)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Store waited %v despite a 200ms deadline", d)
	}
	// Reads are not blocked by a writer (WAL).
	if _, err := s.Count(ctx, "ann@example.org"); err != nil {
		t.Errorf("Count while another writer holds the lock: %v", err)
	}
}

func TestCanceledContext(t *testing.T) { forEachDB(t, testCanceledContext) }

func testCanceledContext(t *testing.T, s *Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.GetRoster(ctx, "ann@example.org")
	wantErr(t, "GetRoster with canceled context", err, sdk.ErrUnavailable)
	wantErr(t, "GetRoster with canceled context", err, context.Canceled)
}
