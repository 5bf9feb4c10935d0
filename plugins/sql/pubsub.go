package sqlbackend

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/koi-im/koi/sdk"
)

// Publish-subscribe nodes (XEP-0060) and PEP (XEP-0163). A node row has a
// generated id that its items, affiliations and subscriptions refer to:
// keying them by (service, node, ...) would pass MySQL's 3072-byte index
// limit (see maxKeyChars), and a node deleted and created again gets a new
// id, so nothing of the old one can show through.
//
// Items are ordered by published, then seq, a per-node counter kept in the
// node row. A publish first bumps it, which locks the node row until
// commit: publishes to one node are serialised, so the trim that follows
// sees every item and never leaves more than the node's max.
//
// Times are Unix microseconds, like the other tables'; config and options
// forms are JSON objects of string arrays, "" for none.

// pubsubStateChars bounds affiliation and subscription state values.
const pubsubStateChars = 16

// pubsubSchema is migration 5.
func pubsubSchema(d dialect) ([]step, error) {
	key := func(name string) columnDef { return columnDef{name: name, typ: colKey, size: maxKeyChars} }
	text := func(name string) columnDef { return columnDef{name: name, typ: colText} }
	bigint := func(name string) columnDef { return columnDef{name: name, typ: colBigInt} }
	state := func(name string) columnDef { return columnDef{name: name, typ: colKey, size: pubsubStateChars} }
	nodeRef := []foreignKey{{cols: []string{"node_id"}, refTable: "koi_pubsub_nodes", refCols: []string{"id"}}}
	tables := []tableDef{
		{
			name:   "koi_pubsub_nodes",
			cols:   []columnDef{{name: "id", typ: colAutoID}, key("service"), key("node"), text("config"), bigint("created"), bigint("seq")},
			unique: [][]string{{"service", "node"}},
		},
		{
			name: "koi_pubsub_items",
			cols: []columnDef{
				bigint("node_id"), key("item_id"), text("publisher"), text("payload"),
				bigint("published"), bigint("seq"),
			},
			primaryKey: []string{"node_id", "item_id"},
			foreignKey: nodeRef,
		},
		{
			name:       "koi_pubsub_affiliations",
			cols:       []columnDef{bigint("node_id"), key("jid"), state("affiliation")},
			primaryKey: []string{"node_id", "jid"},
			foreignKey: nodeRef,
		},
		{
			// bare is the bare part of jid: a JID's subscriptions are
			// looked up by it, whatever resources subscribed.
			name: "koi_pubsub_subscriptions",
			cols: []columnDef{
				bigint("node_id"), key("jid"), key("subid"), key("bare"), state("state"), text("options"),
			},
			primaryKey: []string{"node_id", "jid", "subid"},
			foreignKey: nodeRef,
		},
	}
	var steps []step
	for _, t := range tables {
		s, err := createTableSQL(d, t, false)
		if err != nil {
			return nil, err
		}
		steps = append(steps, step{do: s, undo: "DROP TABLE IF EXISTS " + t.name})
	}
	// A node's items newest first (every page), a JID's affiliations and
	// subscriptions across nodes.
	for _, ix := range []struct {
		name, table string
		cols        []string
	}{
		{"koi_pubsub_items_order_idx", "koi_pubsub_items", []string{"node_id", "published", "seq"}},
		{"koi_pubsub_affiliations_jid_idx", "koi_pubsub_affiliations", []string{"jid"}},
		{"koi_pubsub_subscriptions_bare_idx", "koi_pubsub_subscriptions", []string{"bare"}},
	} {
		create, err := createIndexSQL(d, ix.name, ix.table, ix.cols...)
		if err != nil {
			return nil, err
		}
		steps = append(steps, step{do: create, undo: d.dropIndex(ix.name, ix.table)})
	}
	return steps, nil
}

// Validation.

func checkService(service string) error { return checkKey("service", service) }

func checkServiceNode(service, node string) error {
	return checkAll(checkKey("service", service), checkKey("node", node))
}

// checkSubID allows the empty subid of a JID's single subscription.
func checkSubID(v string) error {
	if v == "" {
		return nil
	}
	return checkKey("subid", v)
}

func checkForm(field string, f map[string][]string) error {
	for k, vs := range f {
		if err := checkText(field+" field", k); err != nil {
			return err
		}
		for _, v := range vs {
			if err := checkText(field+" value", v); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkStamp(field string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%w: %s is not set", sdk.ErrInvalid, field)
	}
	return nil
}

func encodeForm(f map[string][]string) (string, error) {
	if len(f) == 0 {
		return "", nil
	}
	b, err := json.Marshal(f)
	return string(b), err
}

func decodeForm(s string) (map[string][]string, error) {
	if s == "" {
		return nil, nil
	}
	var f map[string][]string
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return nil, fmt.Errorf("stored form %.40q: %w", s, err)
	}
	return f, nil
}

func micros(t time.Time) int64      { return t.UnixMicro() }
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func bareJID(jid string) string {
	b, _, _ := strings.Cut(jid, "/")
	return b
}

// pubsubNodeID returns the node's id, ErrNotFound if there is none. With
// lock, the row stays locked until tx ends.
func (s *Store) pubsubNodeID(ctx context.Context, tx *sql.Tx, service, node string, lock bool) (int64, error) {
	q := "SELECT id FROM koi_pubsub_nodes WHERE service = ? AND node = ?"
	if lock {
		q += s.d.lockRows()
	}
	var id int64
	err := s.scanOne(ctx, tx, q, []any{service, node}, &id)
	if err == sql.ErrNoRows {
		return 0, fmt.Errorf("%w: no pubsub node %q at %s", sdk.ErrNotFound, node, service)
	}
	return id, err
}

// GetPubSubNode returns one node.
func (s *Store) GetPubSubNode(ctx context.Context, service, node string) (sdk.PubSubNode, error) {
	const op = "pubsub.GetNode"
	if err := checkServiceNode(service, node); err != nil {
		return sdk.PubSubNode{}, s.fail(op, err)
	}
	var config string
	var created int64
	err := s.scanOne(ctx, nil, "SELECT config, created FROM koi_pubsub_nodes WHERE service = ? AND node = ?",
		[]any{service, node}, &config, &created)
	if err == sql.ErrNoRows {
		return sdk.PubSubNode{}, s.fail(op, fmt.Errorf("%w: no pubsub node %q at %s", sdk.ErrNotFound, node, service))
	}
	if err != nil {
		return sdk.PubSubNode{}, s.fail(op, err)
	}
	form, err := decodeForm(config)
	if err != nil {
		return sdk.PubSubNode{}, s.fail(op, err)
	}
	return sdk.PubSubNode{Service: service, Node: node, Config: form, Created: fromMicros(created)}, nil
}

// ListPubSubNodes returns the service's nodes in byte order of their names.
func (s *Store) ListPubSubNodes(ctx context.Context, service string) ([]sdk.PubSubNode, error) {
	const op = "pubsub.ListNodes"
	if err := checkService(service); err != nil {
		return nil, s.fail(op, err)
	}
	rows, err := s.query(ctx, nil, "SELECT node, config, created FROM koi_pubsub_nodes WHERE service = ?", service)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := []sdk.PubSubNode{}
	for rows.Next() {
		var config string
		var created int64
		n := sdk.PubSubNode{Service: service}
		if err := rows.Scan(&n.Node, &config, &created); err != nil {
			return nil, s.fail(op, err)
		}
		if n.Config, err = decodeForm(config); err != nil {
			return nil, s.fail(op, err)
		}
		n.Created = fromMicros(created)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	slices.SortFunc(out, func(a, b sdk.PubSubNode) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// pubsubRow is an item with its place in the node's order.
type pubsubRow struct {
	it             sdk.PubSubItem
	published, seq int64
}

func newestFirst(a, b pubsubRow) int {
	return cmp.Or(cmp.Compare(b.published, a.published), cmp.Compare(b.seq, a.seq))
}

const itemCols = "item_id, publisher, payload, published, seq"

func scanItems(rows *sql.Rows) ([]pubsubRow, error) {
	defer rows.Close()
	var out []pubsubRow
	for rows.Next() {
		var r pubsubRow
		if err := rows.Scan(&r.it.ID, &r.it.Publisher, &r.it.Payload, &r.published, &r.seq); err != nil {
			return nil, err
		}
		r.it.Published = fromMicros(r.published)
		out = append(out, r)
	}
	return out, rows.Err()
}

// pubsubIDBatch is how many ids one lookup by ids asks for; short lists
// are padded, so that every lookup is one prepared statement.
const pubsubIDBatch = 20

// GetPubSubItems returns a page of a node's items, newest first.
func (s *Store) GetPubSubItems(ctx context.Context, q sdk.PubSubItemQuery) (sdk.PubSubItemPage, error) {
	const op = "pubsub.GetItems"
	if err := checkServiceNode(q.Service, q.Node); err != nil {
		return sdk.PubSubItemPage{}, s.fail(op, err)
	}
	if q.Max < 0 || q.Max > sdk.MaxPubSubPage || len(q.IDs) > sdk.MaxPubSubPage {
		return sdk.PubSubItemPage{}, s.fail(op, fmt.Errorf("%w: max %d with %d ids (limit %d)", sdk.ErrInvalid, q.Max, len(q.IDs), sdk.MaxPubSubPage))
	}
	var page sdk.PubSubItemPage
	err := s.read(ctx, op, func(tx *sql.Tx) error {
		page = sdk.PubSubItemPage{}
		id, err := s.pubsubNodeID(ctx, tx, q.Service, q.Node, false)
		if err != nil {
			return err
		}
		if err := s.scanOne(ctx, tx, "SELECT COUNT(*) FROM koi_pubsub_items WHERE node_id = ?", []any{id}, &page.Count); err != nil {
			return err
		}
		var rows []pubsubRow
		if len(q.IDs) > 0 {
			rows, err = s.pubsubItemsByID(ctx, tx, id, q.IDs)
			page.Complete = true
		} else {
			rows, page.Complete, err = s.pubsubPage(ctx, tx, id, q)
		}
		if err != nil {
			return err
		}
		for _, r := range rows {
			page.Items = append(page.Items, r.it)
		}
		return nil
	})
	return page, err
}

func (s *Store) pubsubItemsByID(ctx context.Context, tx *sql.Tx, nodeID int64, ids []string) ([]pubsubRow, error) {
	// An id that could not be stored cannot be found; a database may
	// refuse to compare with it.
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return checkKey("item id", id) != nil })
	slices.Sort(ids)
	ids = slices.Compact(ids)
	query := "SELECT " + itemCols + " FROM koi_pubsub_items WHERE node_id = ? AND item_id IN (" + placeholders(pubsubIDBatch) + ")"
	var out []pubsubRow
	for batch := range slices.Chunk(ids, pubsubIDBatch) {
		args := []any{nodeID}
		for i := range pubsubIDBatch {
			args = append(args, batch[min(i, len(batch)-1)])
		}
		rows, err := s.query(ctx, tx, query, args...)
		if err != nil {
			return nil, err
		}
		got, err := scanItems(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	slices.SortFunc(out, newestFirst)
	return out, nil
}

// pubsubCursor returns where an item stands in the node's order.
func (s *Store) pubsubCursor(ctx context.Context, tx *sql.Tx, nodeID int64, itemID string) (published, seq int64, err error) {
	err = s.scanOne(ctx, tx, "SELECT published, seq FROM koi_pubsub_items WHERE node_id = ? AND item_id = ?",
		[]any{nodeID, itemID}, &published, &seq)
	if err == sql.ErrNoRows {
		err = fmt.Errorf("%w: no item %q in the node", sdk.ErrNotFound, itemID)
	}
	return published, seq, err
}

// pubsubPage reads one page between the cursors After and Before: from the
// After side, newest first, or, with Before, the Max items closest to it.
// One row more than Max tells whether the window goes on.
func (s *Store) pubsubPage(ctx context.Context, tx *sql.Tx, nodeID int64, q sdk.PubSubItemQuery) ([]pubsubRow, bool, error) {
	where, args := "node_id = ?", []any{nodeID}
	if q.After != "" {
		p, seq, err := s.pubsubCursor(ctx, tx, nodeID, q.After)
		if err != nil {
			return nil, false, err
		}
		where += " AND (published < ? OR (published = ? AND seq < ?))"
		args = append(args, p, p, seq)
	}
	if q.Before != "" {
		p, seq, err := s.pubsubCursor(ctx, tx, nodeID, q.Before)
		if err != nil {
			return nil, false, err
		}
		where += " AND (published > ? OR (published = ? AND seq > ?))"
		args = append(args, p, p, seq)
	}
	order := " ORDER BY published DESC, seq DESC"
	if q.Before != "" {
		order = " ORDER BY published ASC, seq ASC"
	}
	rows, err := s.query(ctx, tx, "SELECT "+itemCols+" FROM koi_pubsub_items WHERE "+where+order+" LIMIT ?", append(args, q.Max+1)...)
	if err != nil {
		return nil, false, err
	}
	got, err := scanItems(rows)
	if err != nil {
		return nil, false, err
	}
	complete := len(got) <= q.Max
	got = got[:min(len(got), q.Max)]
	if q.Before != "" {
		slices.Reverse(got)
	}
	return got, complete, nil
}

// GetPubSubAffiliations returns a node's affiliations by JID, or a JID's
// on the service's nodes by node.
func (s *Store) GetPubSubAffiliations(ctx context.Context, service, node, jid string) ([]sdk.PubSubAffiliation, error) {
	const op = "pubsub.GetAffiliations"
	if err := checkPubSubLookup(service, node, jid); err != nil {
		return nil, s.fail(op, err)
	}
	out := []sdk.PubSubAffiliation{}
	err := s.read(ctx, op, func(tx *sql.Tx) error {
		out = out[:0]
		var rows *sql.Rows
		if node != "" {
			id, err := s.pubsubNodeID(ctx, tx, service, node, false)
			if err != nil {
				return err
			}
			q, args := "SELECT n.node, a.jid, a.affiliation FROM koi_pubsub_affiliations a JOIN koi_pubsub_nodes n ON n.id = a.node_id WHERE a.node_id = ?", []any{id}
			if jid != "" {
				q, args = q+" AND a.jid = ?", append(args, jid)
			}
			if rows, err = s.query(ctx, tx, q, args...); err != nil {
				return err
			}
		} else {
			var err error
			rows, err = s.query(ctx, tx, "SELECT n.node, a.jid, a.affiliation FROM koi_pubsub_affiliations a"+
				" JOIN koi_pubsub_nodes n ON n.id = a.node_id WHERE a.jid = ? AND n.service = ?", jid, service)
			if err != nil {
				return err
			}
		}
		defer rows.Close()
		for rows.Next() {
			a := sdk.PubSubAffiliation{Service: service}
			if err := rows.Scan(&a.Node, &a.JID, &a.Affiliation); err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b sdk.PubSubAffiliation) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.JID, b.JID))
	})
	return out, nil
}

// GetPubSubSubscriptions returns a node's subscriptions, or a JID's (by its
// bare JID) on the service's nodes.
func (s *Store) GetPubSubSubscriptions(ctx context.Context, service, node, jid string) ([]sdk.PubSubSubscription, error) {
	const op = "pubsub.GetSubscriptions"
	if err := checkPubSubLookup(service, node, jid); err != nil {
		return nil, s.fail(op, err)
	}
	out := []sdk.PubSubSubscription{}
	err := s.read(ctx, op, func(tx *sql.Tx) error {
		out = out[:0]
		var rows *sql.Rows
		if node != "" {
			id, err := s.pubsubNodeID(ctx, tx, service, node, false)
			if err != nil {
				return err
			}
			q, args := "SELECT n.node, s.jid, s.subid, s.state, s.options FROM koi_pubsub_subscriptions s JOIN koi_pubsub_nodes n ON n.id = s.node_id WHERE s.node_id = ?", []any{id}
			if jid != "" {
				q, args = q+" AND s.bare = ?", append(args, bareJID(jid))
			}
			if rows, err = s.query(ctx, tx, q, args...); err != nil {
				return err
			}
		} else {
			var err error
			rows, err = s.query(ctx, tx, "SELECT n.node, s.jid, s.subid, s.state, s.options FROM koi_pubsub_subscriptions s"+
				" JOIN koi_pubsub_nodes n ON n.id = s.node_id WHERE s.bare = ? AND n.service = ?", bareJID(jid), service)
			if err != nil {
				return err
			}
		}
		defer rows.Close()
		for rows.Next() {
			sub := sdk.PubSubSubscription{Service: service}
			var opts string
			if err := rows.Scan(&sub.Node, &sub.JID, &sub.SubID, &sub.State, &opts); err != nil {
				return err
			}
			var err error
			if sub.Options, err = decodeForm(opts); err != nil {
				return err
			}
			out = append(out, sub)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b sdk.PubSubSubscription) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.JID, b.JID), strings.Compare(a.SubID, b.SubID))
	})
	return out, nil
}

func checkPubSubLookup(service, node, jid string) error {
	if err := checkService(service); err != nil {
		return err
	}
	if node == "" && jid == "" {
		return fmt.Errorf("%w: neither a node nor a JID", sdk.ErrInvalid)
	}
	if node != "" {
		if err := checkKey("node", node); err != nil {
			return err
		}
	}
	if jid != "" {
		return checkKey("jid", jid)
	}
	return nil
}

// CreatePubSubNode creates the node and its owner's affiliation.
func (s *Store) CreatePubSubNode(ctx context.Context, n sdk.PubSubNode, owner string) error {
	const op = "pubsub.CreateNode"
	if err := checkAll(checkServiceNode(n.Service, n.Node), checkKey("owner", owner),
		checkForm("config", n.Config), checkStamp("created", n.Created)); err != nil {
		return s.fail(op, err)
	}
	config, err := encodeForm(n.Config)
	if err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		id, err := s.insertID(ctx, tx, "INSERT INTO koi_pubsub_nodes (service, node, config, created, seq) VALUES (?, ?, ?, ?, 0)",
			n.Service, n.Node, config, micros(n.Created))
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, "INSERT INTO koi_pubsub_affiliations (node_id, jid, affiliation) VALUES (?, ?, ?)",
			id, owner, sdk.PubSubOwner)
		return err
	})
}

// ConfigurePubSubNode replaces the node's config.
func (s *Store) ConfigurePubSubNode(ctx context.Context, n sdk.PubSubNode) error {
	const op = "pubsub.ConfigureNode"
	if err := checkAll(checkServiceNode(n.Service, n.Node), checkForm("config", n.Config)); err != nil {
		return s.fail(op, err)
	}
	config, err := encodeForm(n.Config)
	if err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		// Found first: MySQL counts an update that changes nothing as
		// no row.
		id, err := s.pubsubNodeID(ctx, tx, n.Service, n.Node, true)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, "UPDATE koi_pubsub_nodes SET config = ? WHERE id = ?", config, id)
		return err
	})
}

// DeletePubSubNode removes the node and everything of it.
func (s *Store) DeletePubSubNode(ctx context.Context, service, node string) error {
	const op = "pubsub.DeleteNode"
	if err := checkServiceNode(service, node); err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		id, err := s.pubsubNodeID(ctx, tx, service, node, true)
		if err != nil {
			return err
		}
		for _, q := range []string{
			"DELETE FROM koi_pubsub_items WHERE node_id = ?",
			"DELETE FROM koi_pubsub_affiliations WHERE node_id = ?",
			"DELETE FROM koi_pubsub_subscriptions WHERE node_id = ?",
			"DELETE FROM koi_pubsub_nodes WHERE id = ?",
		} {
			if _, err := s.exec(ctx, tx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// PublishPubSubItem stores it, replacing the item with its id, and trims
// the node to maxItems.
func (s *Store) PublishPubSubItem(ctx context.Context, service, node string, it sdk.PubSubItem, maxItems int) error {
	const op = "pubsub.Publish"
	if err := checkAll(checkServiceNode(service, node), checkKey("item id", it.ID), checkText("publisher", it.Publisher),
		checkText("payload", it.Payload), checkStamp("published", it.Published)); err != nil {
		return s.fail(op, err)
	}
	switch {
	case maxItems < 0:
		return s.fail(op, fmt.Errorf("%w: max items %d", sdk.ErrInvalid, maxItems))
	case len(it.Payload) > sdk.MaxPubSubPayload:
		return s.fail(op, fmt.Errorf("%w: payload of %d bytes, the limit is %d", sdk.ErrInvalid, len(it.Payload), sdk.MaxPubSubPayload))
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		// Locks the node row: publishes to the node wait for each other.
		id, err := s.pubsubNodeID(ctx, tx, service, node, true)
		if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "UPDATE koi_pubsub_nodes SET seq = seq + 1 WHERE id = ?", id); err != nil {
			return err
		}
		var seq int64
		if err := s.scanOne(ctx, tx, "SELECT seq FROM koi_pubsub_nodes WHERE id = ?", []any{id}, &seq); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "DELETE FROM koi_pubsub_items WHERE node_id = ? AND item_id = ?", id, it.ID); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "INSERT INTO koi_pubsub_items (node_id, item_id, publisher, payload, published, seq) VALUES (?, ?, ?, ?, ?, ?)",
			id, it.ID, it.Publisher, it.Payload, micros(it.Published), seq); err != nil {
			return err
		}
		if maxItems == 0 {
			return nil
		}
		return s.trimPubSubNode(ctx, tx, id, maxItems)
	})
}

// trimPubSubNode deletes the node's items beyond the newest max.
func (s *Store) trimPubSubNode(ctx context.Context, tx *sql.Tx, nodeID int64, max int) error {
	rows, err := s.query(ctx, tx, "SELECT item_id FROM koi_pubsub_items WHERE node_id = ? ORDER BY published DESC, seq DESC", nodeID)
	if err != nil {
		return err
	}
	var ids []string
	for n := 0; rows.Next(); n++ {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		if n >= max {
			ids = append(ids, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := s.exec(ctx, tx, "DELETE FROM koi_pubsub_items WHERE node_id = ? AND item_id = ?", nodeID, id); err != nil {
			return err
		}
	}
	return nil
}

// RetractPubSubItem deletes one item.
func (s *Store) RetractPubSubItem(ctx context.Context, service, node, itemID string) error {
	const op = "pubsub.Retract"
	if err := checkAll(checkServiceNode(service, node), checkKey("item id", itemID)); err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		id, err := s.pubsubNodeID(ctx, tx, service, node, false)
		if err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, "DELETE FROM koi_pubsub_items WHERE node_id = ? AND item_id = ?", id, itemID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: no item %q in node %q", sdk.ErrNotFound, itemID, node)
		}
		return nil
	})
}

// PurgePubSubNode deletes every item of the node.
func (s *Store) PurgePubSubNode(ctx context.Context, service, node string) error {
	const op = "pubsub.Purge"
	if err := checkServiceNode(service, node); err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		id, err := s.pubsubNodeID(ctx, tx, service, node, true)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, "DELETE FROM koi_pubsub_items WHERE node_id = ?", id)
		return err
	})
}

// SetPubSubAffiliation stores or ("none") removes an affiliation.
func (s *Store) SetPubSubAffiliation(ctx context.Context, a sdk.PubSubAffiliation) error {
	const op = "pubsub.SetAffiliation"
	if err := checkAll(checkServiceNode(a.Service, a.Node), checkKey("jid", a.JID)); err != nil {
		return s.fail(op, err)
	}
	if !sdk.ValidPubSubAffiliation(a.Affiliation) {
		return s.fail(op, fmt.Errorf("%w: affiliation %q", sdk.ErrInvalid, a.Affiliation))
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		id, err := s.pubsubNodeID(ctx, tx, a.Service, a.Node, false)
		if err != nil {
			return err
		}
		if a.Affiliation == sdk.PubSubNone {
			_, err = s.exec(ctx, tx, "DELETE FROM koi_pubsub_affiliations WHERE node_id = ? AND jid = ?", id, a.JID)
			return err
		}
		_, err = s.exec(ctx, tx, s.d.upsert("koi_pubsub_affiliations", []string{"node_id", "jid"}, []string{"affiliation"}),
			id, a.JID, a.Affiliation)
		return err
	})
}

// SetPubSubSubscription stores or ("none") removes a subscription.
func (s *Store) SetPubSubSubscription(ctx context.Context, sub sdk.PubSubSubscription) error {
	const op = "pubsub.SetSubscription"
	if err := checkAll(checkServiceNode(sub.Service, sub.Node), checkKey("jid", sub.JID), checkSubID(sub.SubID),
		checkForm("options", sub.Options)); err != nil {
		return s.fail(op, err)
	}
	if !sdk.ValidPubSubSubscriptionState(sub.State) {
		return s.fail(op, fmt.Errorf("%w: subscription state %q", sdk.ErrInvalid, sub.State))
	}
	opts, err := encodeForm(sub.Options)
	if err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		id, err := s.pubsubNodeID(ctx, tx, sub.Service, sub.Node, false)
		if err != nil {
			return err
		}
		if sub.State == sdk.PubSubNone {
			_, err = s.exec(ctx, tx, "DELETE FROM koi_pubsub_subscriptions WHERE node_id = ? AND jid = ? AND subid = ?", id, sub.JID, sub.SubID)
			return err
		}
		_, err = s.exec(ctx, tx, s.d.upsert("koi_pubsub_subscriptions", []string{"node_id", "jid", "subid"}, []string{"bare", "state", "options"}),
			id, sub.JID, sub.SubID, bareJID(sub.JID), sub.State, opts)
		return err
	})
}
