package sqlbackend

import (
	"context"
	"database/sql"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// distinctKeys are pairs of strings that some database collation takes for
// equal. The core hands the store JIDs already prepared (PRECIS), so the
// store must compare them byte for byte, on every database alike.
func distinctKeys() [][2]string {
	return [][2]string{
		{"alice", "Alice"},                         // case (MySQL *_ci, SQL Server)
		{"straße", "strasse"},                      // ß expands to ss (utf8mb4_unicode_ci, ICU)
		{"émile", "emile"},                         // accents (utf8mb4_general_ci)
		{"\u00e9t\u00e9", "e\u0301te\u0301"},       // NFC and NFD of é
		{"ann", "ann "},                            // trailing space (PAD SPACE: utf8mb4_bin on MariaDB)
		{"ı", "i"},                                 // dotless i (Turkish folding)
		{"ａ", "a"},                                 // full-width (compatibility folding)
		{"ﬁ", "fi"},                                // ligature
		{"😀", "😃"},                                 // 4-byte characters (MySQL utf8mb3 sees '?' for both)
		{"zoë@例え.jp", "ZOË@例え.jp"},                 // both parts of a JID
		{"bob@example.org", "bob@example.org/res"}, // a prefix is not equal
	}
}

func TestKeysExact(t *testing.T) { forEachDB(t, testKeysExact) }

func testKeysExact(t *testing.T, s *Store) {
	ctx := t.Context()
	for _, pair := range distinctKeys() {
		a, b := pair[0], pair[1]
		t.Run(a+" vs "+b, func(t *testing.T) {
			// Accounts: both can exist, each with its own password.
			pw := map[string]string{a: "first secret", b: "second secret"}
			for _, u := range pair {
				if err := s.CreateUser(ctx, host, u, pw[u]); err != nil {
					t.Fatalf("CreateUser(%q): %v", u, err)
				}
			}
			for _, u := range pair {
				if ok, err := s.CheckPassword(ctx, host, u, pw[u]); !ok || err != nil {
					t.Errorf("CheckPassword(%q) with its own password = %v, %v", u, ok, err)
				}
			}
			if ok, _ := s.CheckPassword(ctx, host, a, pw[b]); ok {
				t.Errorf("%q logs in with the password of %q", a, b)
			}
			if err := s.DeleteUser(ctx, host, b); err != nil {
				t.Fatal(err)
			}
			if ok, err := s.UserExists(ctx, host, a); !ok || err != nil {
				t.Errorf("deleting %q removed %q: %v", b, a, err)
			}
			if err := s.DeleteUser(ctx, host, a); err != nil {
				t.Fatal(err)
			}

			// Roster items of one owner, and two owners' rosters.
			owner := "owner@example.org"
			for _, c := range pair {
				if _, err := s.SetItem(ctx, owner, sdk.RosterItem{JID: c, Name: c, Subscription: sdk.SubNone}); err != nil {
					t.Fatalf("SetItem(%q): %v", c, err)
				}
				if _, err := s.SetItem(ctx, c, sdk.RosterItem{JID: owner, Name: c, Subscription: sdk.SubBoth}); err != nil {
					t.Fatalf("SetItem for owner %q: %v", c, err)
				}
			}
			st := getRoster(t, s, owner)
			var got []string
			for _, it := range st.Items {
				got = append(got, it.JID)
				if it.Name != it.JID {
					t.Errorf("item %q carries the name of %q", it.JID, it.Name)
				}
			}
			want := []string{a, b}
			slices.Sort(want) // byte order, as Go sorts
			if !slices.Equal(got, want) {
				t.Errorf("roster items %q, want %q in byte order", got, want)
			}
			for _, c := range pair {
				if st := getRoster(t, s, c); len(st.Items) != 1 || st.Items[0].Name != c {
					t.Errorf("roster of %q = %+v", c, st.Items)
				}
			}
			if err := s.DeleteRoster(ctx, owner); err != nil {
				t.Fatal(err)
			}

			// Offline queues, vCards and private storage.
			for _, o := range pair {
				if err := s.Store(ctx, o, sdk.OfflineMessage{Stanza: "<message>" + o + "</message>", Stamp: time.Now()}); err != nil {
					t.Fatal(err)
				}
				if err := s.SetVCard(ctx, o, "<vCard>"+o+"</vCard>"); err != nil {
					t.Fatal(err)
				}
				if err := s.SetPrivate(ctx, owner, o, o, "<x>"+o+"</x>"); err != nil {
					t.Fatal(err)
				}
			}
			for _, o := range pair {
				msgs, err := s.Pop(ctx, o)
				if err != nil || len(msgs) != 1 || msgs[0].Stanza != "<message>"+o+"</message>" {
					t.Errorf("Pop(%q) = %+v, %v", o, msgs, err)
				}
				if v, err := s.GetVCard(ctx, o); v != "<vCard>"+o+"</vCard>" || err != nil {
					t.Errorf("GetVCard(%q) = %q, %v", o, v, err)
				}
				if v, err := s.GetPrivate(ctx, owner, o, o); v != "<x>"+o+"</x>" || err != nil {
					t.Errorf("GetPrivate(%q) = %q, %v", o, v, err)
				}
				s.DeleteVCard(ctx, o)
			}
			s.DeletePrivate(ctx, owner)
		})
	}
	// ListUsers returns byte order whatever the server's collation.
	var all []string
	for _, pair := range distinctKeys() {
		for _, u := range pair {
			if err := s.CreateUser(ctx, "list.example", u, "pw"); err != nil {
				t.Fatal(err)
			}
			all = append(all, u)
		}
	}
	slices.Sort(all)
	if got, err := s.ListUsers(ctx, "list.example"); err != nil || !slices.Equal(got, all) {
		t.Errorf("ListUsers = %q, %v; want %q", got, err, all)
	}
}

// A transaction the database aborts to break a deadlock is run again, so
// both writers succeed. (SQLite's single writer cannot deadlock.)
func TestDeadlockRetried(t *testing.T) {
	for _, driver := range []string{"postgres", "mysql"} {
		t.Run(driver, func(t *testing.T) {
			s := openOn(t, testSettings(t, driver))
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			for _, o := range []string{"a@example.org", "b@example.org"} {
				if err := s.SetVCard(ctx, o, "<vCard/>"); err != nil {
					t.Fatal(err)
				}
			}
			// Each writer updates its first row, waits until the other
			// has too, then updates the other's: a deadlock, once.
			var ready sync.WaitGroup
			ready.Add(2)
			var attempts [2]int
			var mu sync.Mutex
			write := func(i int, first, second string) error {
				return s.write(ctx, "test", func(tx *sql.Tx) error {
					mu.Lock()
					attempts[i]++
					n := attempts[i]
					mu.Unlock()
					if _, err := s.exec(ctx, tx, "UPDATE koi_vcards SET xml = ? WHERE owner = ?", "<vCard>1</vCard>", first); err != nil {
						return err
					}
					if n == 1 {
						ready.Done()
						ready.Wait()
					}
					_, err := s.exec(ctx, tx, "UPDATE koi_vcards SET xml = ? WHERE owner = ?", "<vCard>2</vCard>", second)
					return err
				})
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			wg.Go(func() { errs[0] = write(0, "a@example.org", "b@example.org") })
			wg.Go(func() { errs[1] = write(1, "b@example.org", "a@example.org") })
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("writer %d: %v", i, err)
				}
			}
			if attempts[0]+attempts[1] < 3 {
				t.Errorf("attempts %v: the deadlock did not happen, the test proves nothing", attempts)
			}
		})
	}
}
