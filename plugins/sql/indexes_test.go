package sqlbackend

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// Every query the store runs is served by an index: the test runs each
// feature once, then asks each database for the plan of every statement
// the store prepared.
func TestQueriesUseIndexes(t *testing.T) {
	forEachDB(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		const owner = "ann@example.org"
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		// Some rows, so that a planner has something to choose by.
		for i := range 50 {
			u := fmt.Sprintf("u%02d", i)
			must(s.CreateUser(ctx, host, u, "pw"))
			_, err := s.SetItem(ctx, u+"@"+host, sdk.RosterItem{JID: owner, Subscription: sdk.SubBoth, Groups: []string{"g"}})
			must(err)
			must(s.Store(ctx, u+"@"+host, sdk.OfflineMessage{Stanza: "<message/>", Stamp: time.Now()}))
		}
		_, err := s.UserExists(ctx, host, "u01")
		must(err)
		_, err = s.CheckPassword(ctx, host, "u01", "pw")
		must(err)
		must(s.SetPassword(ctx, host, "u01", "pw2"))
		_, err = s.ListUsers(ctx, host)
		must(err)
		must(s.DeleteUser(ctx, host, "u02"))
		_, err = s.SetItem(ctx, owner, sdk.RosterItem{JID: "bob@example.org", Subscription: sdk.SubTo, Groups: []string{"a", "b"}})
		must(err)
		must(s.SetPending(ctx, owner, sdk.PendingSubscription{JID: "carl@example.org", Stanza: "<presence/>"}))
		_, err = s.GetRoster(ctx, owner)
		must(err)
		_, err = s.DeleteItem(ctx, owner, "bob@example.org")
		must(err)
		must(s.DeletePending(ctx, owner, "carl@example.org"))
		must(s.DeleteRoster(ctx, "u03@"+host))
		_, err = s.Count(ctx, "u04@"+host)
		must(err)
		_, err = s.Pop(ctx, "u04@"+host)
		must(err)
		must(s.DeleteAll(ctx, "u05@"+host))
		must(s.SetVCard(ctx, owner, "<vCard/>"))
		_, err = s.GetVCard(ctx, owner)
		must(err)
		must(s.DeleteVCard(ctx, owner))
		must(s.SetPrivate(ctx, owner, "a", "b", "<a xmlns='b'/>"))
		_, err = s.GetPrivate(ctx, owner, "a", "b")
		must(err)
		must(s.DeletePrivate(ctx, owner))
		pubsubWorkload(t, s, owner)

		conn, err := s.db.Conn(ctx)
		must(err)
		defer conn.Close()
		if s.d.name() == "postgres" {
			// A sequential scan then happens only where no index serves.
			_, err := conn.ExecContext(ctx, "SET enable_seqscan = off")
			must(err)
		}
		s.mu.Lock()
		var queries []string
		for q := range s.stmts {
			queries = append(queries, q)
		}
		s.mu.Unlock()
		checked := 0
		for _, q := range queries {
			if strings.HasPrefix(q, "INSERT") {
				continue
			}
			args := make([]any, strings.Count(q, "?"))
			for i := range args {
				args[i] = "1"
			}
			if bad := fullScans(t, conn, s, q, args); bad != "" {
				t.Errorf("%s\nscans a whole table: %s", q, bad)
			}
			checked++
		}
		if checked < 15 {
			t.Errorf("checked only %d queries: the workload missed some", checked)
		}
	})
}

// fullScans returns the plan lines of q that read a whole table, or "".
func fullScans(t *testing.T, conn *sql.Conn, s *Store, q string, args []any) string {
	t.Helper()
	ctx := t.Context()
	var explain string
	switch s.d.name() {
	case "sqlite":
		explain = "EXPLAIN QUERY PLAN "
	default:
		explain = "EXPLAIN "
	}
	rows, err := conn.QueryContext(ctx, explain+s.q(q), args...)
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var bad []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		col := func(name string) string {
			for i, c := range cols {
				if strings.EqualFold(c, name) {
					return vals[i].String
				}
			}
			return ""
		}
		switch s.d.name() {
		case "sqlite":
			if d := col("detail"); strings.HasPrefix(d, "SCAN ") {
				bad = append(bad, d)
			}
		case "postgres":
			if p := col("QUERY PLAN"); strings.Contains(p, "Seq Scan") {
				bad = append(bad, strings.TrimSpace(p))
			}
		default:
			// A table row without a usable key is a full scan.
			if col("table") != "" && col("possible_keys") == "" {
				bad = append(bad, fmt.Sprintf("table %s type %s", col("table"), col("type")))
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(bad, "; ")
}

// pubsubWorkload runs every pubsub statement, on a few nodes with items.
func pubsubWorkload(t *testing.T, s *Store, owner string) {
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	stamp := time.Now().UTC()
	for i := range 20 {
		n := sdk.PubSubNode{Service: owner, Node: fmt.Sprintf("urn:n%02d", i), Created: stamp}
		must(s.CreatePubSubNode(ctx, n, owner))
		for j := range 5 {
			must(s.PublishPubSubItem(ctx, owner, n.Node, sdk.PubSubItem{ID: fmt.Sprint(j), Published: stamp}, 3))
		}
		must(s.SetPubSubSubscription(ctx, sdk.PubSubSubscription{Service: owner, Node: n.Node, JID: "bob@example.org/x", State: sdk.PubSubSubscribed}))
	}
	const node = "urn:n01"
	must(s.ConfigurePubSubNode(ctx, sdk.PubSubNode{Service: owner, Node: node, Config: map[string][]string{"a": {"b"}}}))
	_, err := s.GetPubSubNode(ctx, owner, node)
	must(err)
	_, err = s.ListPubSubNodes(ctx, owner)
	must(err)
	for _, q := range []sdk.PubSubItemQuery{
		{Max: 10}, {After: "4", Max: 1}, {Before: "3", Max: 1}, {IDs: []string{"3", "4"}},
	} {
		q.Service, q.Node = owner, node
		_, err = s.GetPubSubItems(ctx, q)
		must(err)
	}
	must(s.SetPubSubAffiliation(ctx, sdk.PubSubAffiliation{Service: owner, Node: node, JID: "bob@example.org", Affiliation: sdk.PubSubMember}))
	must(s.SetPubSubAffiliation(ctx, sdk.PubSubAffiliation{Service: owner, Node: node, JID: "bob@example.org", Affiliation: sdk.PubSubNone}))
	must(s.SetPubSubSubscription(ctx, sdk.PubSubSubscription{Service: owner, Node: node, JID: "bob@example.org/x", State: sdk.PubSubNone}))
	for _, n := range []string{node, ""} {
		_, err = s.GetPubSubAffiliations(ctx, owner, n, "bob@example.org")
		must(err)
		_, err = s.GetPubSubSubscriptions(ctx, owner, n, "bob@example.org")
		must(err)
	}
	_, err = s.GetPubSubAffiliations(ctx, owner, node, "")
	must(err)
	_, err = s.GetPubSubSubscriptions(ctx, owner, node, "")
	must(err)
	must(s.RetractPubSubItem(ctx, owner, node, "4"))
	must(s.PurgePubSubNode(ctx, owner, node))
	must(s.DeletePubSubNode(ctx, owner, node))
}
