package sqlbackend

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

func benchMsgs(owner string, from, n int) []sdk.ArchivedMessage {
	msgs := make([]sdk.ArchivedMessage, n)
	for i := range msgs {
		k := from + i
		msgs[i] = sdk.ArchivedMessage{
			Owner: owner, StanzaID: fmt.Sprintf("%016d", k), Peer: "peer" + strconv.Itoa(k%20) + "@example.com",
			Stamp: time.UnixMilli(1_700_000_000_000 + int64(k)).UTC(), Outgoing: k%2 == 0,
			Stanza: "<message xmlns='jabber:client' from='alice@example.com/pc' to='bob@example.com' type='chat' id='a1b2c3d4'><body>" +
				"hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob</body></message>",
			Body: "hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob",
		}
	}
	return msgs
}

// BenchmarkArchiveAppend is the plugin side of archive writes: batches of
// 256 messages into the store, without the gRPC transport.
func BenchmarkArchiveAppend(b *testing.B) {
	for _, driver := range testDrivers() {
		b.Run(driver, func(b *testing.B) {
			s := openOn(b, testSettings(b, driver))
			const batch = 256
			n := 0
			b.ResetTimer()
			for b.Loop() {
				if err := s.AppendArchive(b.Context(), benchMsgs("u"+strconv.Itoa(n%50)+"@example.com", n, batch)); err != nil {
					b.Fatal(err)
				}
				n += batch
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/msg")
		})
	}
}

// BenchmarkArchivePage measures MAM pages of 50 from one user's archive of
// KOI_BENCH_ARCHIVE_ROWS messages (default 1,000,000) with 20 peers, on
// each database: the newest page, a page further back, a page of one
// conversation, and the page after an id. It reports the median and the
// 99th percentile of each shape. Filling the archive takes a minute or so.
//
//	go test ./plugins/sql -run '^$' -bench ArchivePage -benchtime 2000x
func BenchmarkArchivePage(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("KOI_BENCH_ARCHIVE_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("KOI_BENCH_ARCHIVE_ROWS=%q: want a number of at least 1000", v)
		}
		rows = n
	}
	for _, driver := range testDrivers() {
		b.Run(driver, func(b *testing.B) {
			s := openOn(b, testSettings(b, driver))
			const owner = "alice@example.com"
			start := time.Now()
			for from := 0; from < rows; from += 1000 {
				if err := s.AppendArchive(b.Context(), benchMsgs(owner, from, min(1000, rows-from))); err != nil {
					b.Fatal(err)
				}
				// Another user's messages in between, as in a shared table.
				if err := s.AppendArchive(b.Context(), benchMsgs("bob@example.com", from, 10)); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("%s: %d messages archived in %v", driver, rows, time.Since(start).Round(time.Second))
			if _, err := s.db.ExecContext(b.Context(), "ANALYZE"); err != nil && driver != "mysql" {
				b.Fatal(err)
			}
			id := func(k int) string { return fmt.Sprintf("%016d", k) }
			shapes := []struct {
				name string
				q    func(i int) sdk.ArchiveQuery
			}{
				{"newest", func(int) sdk.ArchiveQuery { return sdk.ArchiveQuery{Owner: owner, Max: 50, Last: true} }},
				{"back", func(i int) sdk.ArchiveQuery {
					return sdk.ArchiveQuery{Owner: owner, Max: 50, Last: true, Before: id(rows/2 + i*37%(rows/2))}
				}},
				{"conversation", func(i int) sdk.ArchiveQuery {
					return sdk.ArchiveQuery{Owner: owner, With: "peer7@example.com", Max: 50, Last: true, Before: id(rows/2 + i*37%(rows/2))}
				}},
				{"after", func(i int) sdk.ArchiveQuery {
					return sdk.ArchiveQuery{Owner: owner, Max: 50, After: id(i * 97 % (rows - 100))}
				}},
			}
			lat := make([][]time.Duration, len(shapes))
			i := 0
			b.ResetTimer()
			for b.Loop() {
				k := i % len(shapes)
				t0 := time.Now()
				p, err := s.QueryArchive(b.Context(), shapes[k].q(i))
				lat[k] = append(lat[k], time.Since(t0))
				if err != nil || len(p.Messages) != 50 {
					b.Fatalf("%s: %d messages, %v", shapes[k].name, len(p.Messages), err)
				}
				i++
			}
			for k, sh := range shapes {
				if len(lat[k]) == 0 {
					continue
				}
				slices.Sort(lat[k])
				p := func(q float64) float64 {
					return float64(lat[k][min(len(lat[k])-1, int(q*float64(len(lat[k]))))].Microseconds()) / 1000
				}
				b.ReportMetric(p(0.5), sh.name+"-p50-ms")
				b.ReportMetric(p(0.99), sh.name+"-p99-ms")
			}
		})
	}
}

// TestArchiveQueryPlans checks that every query shape of QueryArchive is a
// range scan of an index in stanza id order, on every database: no full
// scan, no sort.
func TestArchiveQueryPlans(t *testing.T) {
	forEachDB(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		for from := 0; from < 3000; from += 1000 {
			for _, owner := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
				if err := s.AppendArchive(ctx, benchMsgs(owner, from, 1000)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if s.d.name() != "mysql" {
			if _, err := s.db.ExecContext(ctx, "ANALYZE"); err != nil {
				t.Fatal(err)
			}
		} else if _, err := s.db.ExecContext(ctx, "ANALYZE TABLE koi_archive"); err != nil {
			t.Fatal(err)
		}
		const owner = "alice@example.com"
		shapes := map[string]sdk.ArchiveQuery{
			"newest page":         {Owner: owner, Max: 50, Last: true},
			"page back":           {Owner: owner, Max: 50, Last: true, Before: "0000000000001500"},
			"page forward":        {Owner: owner, Max: 50, After: "0000000000001500"},
			"time range":          {Owner: owner, Max: 50, AfterID: "0000000000000100", BeforeID: "0000000000000900"},
			"conversation":        {Owner: owner, With: "peer3@example.com", Max: 50, Last: true},
			"conversation after":  {Owner: owner, With: "peer3@example.com", Max: 50, After: "0000000000001500"},
			"resource":            {Owner: owner, With: "peer3@example.com", WithResource: "x", Max: 50},
			"ids":                 {Owner: owner, IDs: []string{"0000000000000007", "0000000000002007"}, Max: 50},
			"conversation by ids": {Owner: owner, With: "peer7@example.com", IDs: []string{"0000000000000007"}, Max: 50},
		}
		for name, q := range shapes {
			query, args := archiveSelect(q)
			plan := explain(t, s, query, args)
			// Sorting is fine where few rows can come: a list of ids, or
			// (PostgreSQL's choice when it expects next to no row) one
			// resource of a conversation.
			sortOK := len(q.IDs) > 0 || q.WithResource != ""
			bad := badPlan(s.d.name(), plan, sortOK)
			if bad == "" && q.With != "" && len(q.IDs) == 0 && !strings.Contains(plan, "koi_archive_peer_idx") {
				bad = "a conversation without the (owner, peer, stanza_id) index"
			}
			if bad != "" {
				t.Errorf("%s: %s\n%s\nplan:\n%s", name, bad, query, plan)
			}
		}
	})
}

// explain returns the database's plan for query.
func explain(t *testing.T, s *Store, query string, args []any) string {
	t.Helper()
	ctx := t.Context()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prefix := "EXPLAIN "
	switch s.d.name() {
	case "sqlite":
		prefix = "EXPLAIN QUERY PLAN "
	case "postgres":
		// With a few thousand rows a sequential scan may be cheapest;
		// the question here is whether an index serves the query.
		if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
			t.Fatal(err)
		}
		defer conn.ExecContext(ctx, "RESET enable_seqscan")
	}
	rows, err := conn.QueryContext(ctx, s.q(prefix+query), args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			fmt.Fprintf(&b, "%s=%v ", cols[i], v)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// badPlan says what is wrong with a plan, or "".
func badPlan(driver, plan string, sortOK bool) string {
	switch driver {
	case "sqlite":
		if strings.Contains(plan, "TEMP B-TREE") && !sortOK {
			return "sorts"
		}
		if !strings.Contains(plan, "USING INDEX") && !strings.Contains(plan, "USING PRIMARY KEY") && !strings.Contains(plan, "USING COVERING INDEX") {
			return "no index"
		}
	case "postgres":
		if strings.Contains(plan, "Seq Scan") {
			return "full scan"
		}
		if !strings.Contains(plan, "Index") {
			return "no index"
		}
		if strings.Contains(plan, "Sort") && !sortOK {
			return "sorts"
		}
	case "mysql":
		if strings.Contains(plan, "filesort") && !sortOK {
			return "sorts"
		}
		if strings.Contains(plan, "type=ALL") || strings.Contains(plan, "key=<nil>") {
			return "full scan"
		}
	}
	return ""
}

// A group commit joins the batches waiting on the stream, so a batch
// resent after a lost acknowledgement can meet its first copy in the same
// AppendArchive call: each (owner, stanza id) is stored once, the first
// copy kept, and the rest of the call stored, on every database and
// whichever statement shape a dialect uses for a batch.
func TestArchiveDuplicatesInOneCall(t *testing.T) {
	forEachDB(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		const owner = "ann@example.org"
		first := benchMsgs(owner, 0, 100)
		again := slices.Clone(first[10:20])
		for i := range again {
			again[i].Body, again[i].Stanza = "resent", "<message><body>resent</body></message>"
		}
		call := append(append(slices.Clone(first[:50]), again...), first[50:]...)
		if err := s.AppendArchive(ctx, call); err != nil {
			t.Fatalf("AppendArchive of %d messages with %d resent: %v", len(call), len(again), err)
		}
		p, err := s.QueryArchive(ctx, sdk.ArchiveQuery{Owner: owner, Max: sdk.MaxArchivePage, Count: true})
		if err != nil {
			t.Fatal(err)
		}
		if p.Count != len(first) || len(p.Messages) != len(first) {
			t.Fatalf("count %d, page of %d; want %d", p.Count, len(p.Messages), len(first))
		}
		for i, m := range p.Messages {
			if m.StanzaID != first[i].StanzaID || m.Body != first[i].Body {
				t.Fatalf("message %d is %s %q, want %s %q (the first copy)", i, m.StanzaID, m.Body, first[i].StanzaID, first[i].Body)
			}
		}
	})
}

// With archive_writers above 1 the SDK stores several groups at once, and
// after a broken stream the host resends batches whose first copies may
// still be being stored: concurrent AppendArchive calls over the same
// messages, in opposite orders, all succeed (a deadlock between them is
// broken by the database and the transaction run again) and store each
// message once.
func TestArchiveConcurrentAppends(t *testing.T) {
	forEachDB(t, func(t *testing.T, s *Store) {
		if _, sqlite := s.d.(sqliteDialect); sqlite {
			if w := s.AppendWriters(); w != 1 {
				t.Errorf("SQLite AppendWriters = %d, want 1", w)
			}
		} else if w := s.AppendWriters(); w != defaultArchiveWriters {
			t.Errorf("AppendWriters = %d, want the default %d", w, defaultArchiveWriters)
		}
		ctx := t.Context()
		owners := []string{"ann@example.org", "bob@example.org", "cat@example.org"}
		var all []sdk.ArchivedMessage
		for i, o := range owners {
			all = append(all, benchMsgs(o, i*1000, 200)...)
		}
		const writers = 4
		errs := make(chan error, writers)
		for w := range writers {
			call := slices.Clone(all[w*len(all)/(2*writers):]) // overlapping tails
			if w%2 == 1 {
				slices.Reverse(call)
			}
			go func() { errs <- s.AppendArchive(ctx, call) }()
		}
		for range writers {
			if err := <-errs; err != nil {
				t.Fatalf("concurrent AppendArchive: %v", err)
			}
		}
		if err := s.AppendArchive(ctx, all); err != nil { // the head nobody stored
			t.Fatal(err)
		}
		for _, o := range owners {
			p, err := s.QueryArchive(ctx, sdk.ArchiveQuery{Owner: o, Max: sdk.MaxArchivePage, Count: true})
			if err != nil {
				t.Fatal(err)
			}
			if p.Count != 200 || len(p.Messages) != 200 {
				t.Errorf("%s: count %d, page of %d; want 200", o, p.Count, len(p.Messages))
			}
		}
	})
}
