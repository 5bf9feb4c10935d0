package mongobackend

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/koi-im/koi/sdk"
)

// Store is koi's MongoDB backend. It is safe for concurrent use.
type Store struct {
	client *mongo.Client
	set    Settings
	log    sdk.Logger

	users, archive, prefs, offline, vcards, private, blocklist, tokens *mongo.Collection
	mucRooms, mucAffs                                                  *mongo.Collection

	rosterItems, rosterPending, rosterVersions *mongo.Collection
	rosterJournal                              *mongo.Collection // rosterbatch.go
	rosterLocks                                rosterLocks

	psNodes, psItems, psAffs, psSubs *mongo.Collection
	psLocks                          pubsubLocks

	// textIndex is true when full-text search runs on a text index
	// ($text); false means the regular-expression fallback.
	textIndex bool

	stop context.CancelFunc
	wg   sync.WaitGroup
}

var (
	_ sdk.Backend           = (*Store)(nil)
	_ sdk.Pinger            = (*Store)(nil)
	_ sdk.AppendConcurrency = (*Store)(nil)
	_ sdk.Auth              = (*Store)(nil)
	_ sdk.AuthAdmin         = (*Store)(nil)
	_ sdk.Archive           = (*Store)(nil)
	_ sdk.Roster            = (*Store)(nil)
	_ sdk.RosterWriter      = (*Store)(nil)
	_ sdk.RosterBatchWriter = (*Store)(nil)
	_ sdk.Offline           = (*Store)(nil)
	_ sdk.VCard             = (*Store)(nil)
	_ sdk.VCardWriter       = (*Store)(nil)
	_ sdk.Private           = (*Store)(nil)
	_ sdk.PrivateWriter     = (*Store)(nil)
	_ sdk.Blocklist         = (*Store)(nil)
	_ sdk.BlocklistWriter   = (*Store)(nil)
	_ sdk.Tokens            = (*Store)(nil)
	_ sdk.TokensWriter      = (*Store)(nil)
	_ sdk.MUC               = (*Store)(nil)
	_ sdk.MUCWriter         = (*Store)(nil)
	_ sdk.PubSub            = (*Store)(nil)
	_ sdk.PubSubWriter      = (*Store)(nil)
)

// Open connects, creates the indexes koi's queries need (creating an index
// that exists is a no-op) and starts the retention job. log may be nil.
func Open(ctx context.Context, set Settings, log sdk.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	errs := &sdk.ConfigErrors{Prefix: "mongo backend config"}
	set.check(errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	set = set.withDefaults()
	client, err := mongo.Connect(options.Client().ApplyURI(set.URI).
		SetConnectTimeout(set.ConnectTimeout).SetServerSelectionTimeout(set.ConnectTimeout).
		SetAppName("koi-backend-mongo"))
	if err != nil {
		// The driver's parse errors may quote the URI, password included.
		return nil, fmt.Errorf("%w: mongo backend config: uri: cannot be used", sdk.ErrInvalid)
	}
	s := &Store{client: client, set: set, log: log, rosterLocks: rosterLocks{seed: maphash.MakeSeed()}}
	db := client.Database(set.Database)
	s.users, s.archive, s.prefs = db.Collection("users"), db.Collection("archive"), db.Collection("archive_prefs")
	s.rosterItems, s.rosterPending = db.Collection("roster_items"), db.Collection("roster_pending")
	s.rosterVersions, s.offline = db.Collection("roster_versions"), db.Collection("offline")
	s.rosterJournal = db.Collection("roster_journal")
	s.vcards, s.private = db.Collection("vcards"), db.Collection("private")
	s.blocklist, s.tokens = db.Collection("blocklist"), db.Collection("fast_tokens")
	s.mucRooms, s.mucAffs = db.Collection("muc_rooms"), db.Collection("muc_affiliations")
	s.psNodes, s.psItems = db.Collection("pubsub_nodes"), db.Collection("pubsub_items")
	s.psAffs, s.psSubs = db.Collection("pubsub_affiliations"), db.Collection("pubsub_subscriptions")

	cctx, cancel := context.WithTimeout(ctx, set.ConnectTimeout)
	defer cancel()
	if err := client.Ping(cctx, readpref.Primary()); err != nil {
		client.Disconnect(context.Background())
		return nil, s.fail("connect", err)
	}
	if err := s.createIndexesRetrying(cctx); err != nil {
		client.Disconnect(context.Background())
		return nil, s.fail("create indexes", err)
	}
	if set.FullText {
		s.textIndex = s.tryTextIndex(cctx)
	}
	if err := s.recoverJournal(cctx, journalGrace); err != nil {
		log.Warn("roster journal recovery failed; will retry", "error", err)
	}
	rctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	if set.RetentionDays > 0 {
		s.wg.Go(func() { s.retain(rctx) })
	}
	s.wg.Go(func() { s.recoverLoop(rctx) })
	log.Info("mongo backend ready", "database", set.Database, "fulltext", s.searchMode(),
		"retention_days", set.RetentionDays)
	return s, nil
}

func (s *Store) searchMode() string {
	switch {
	case !s.set.FullText:
		return "off"
	case s.textIndex:
		return "text index"
	default:
		return "regex fallback (the server has no text indexes)"
	}
}

// namedIndex is an index and its name, which the driver's options hide.
type namedIndex struct {
	name  string
	model mongo.IndexModel
}

func index(name string, unique bool, keys ...string) namedIndex {
	d := bson.D{}
	for _, k := range keys {
		d = append(d, bson.E{Key: k, Value: 1})
	}
	o := options.Index().SetName(name)
	if unique {
		o.SetUnique(true)
	}
	return namedIndex{name, mongo.IndexModel{Keys: d, Options: o}}
}

// createIndexes makes one index per query shape. Stanza ids are ordered
// like time, so {owner, sid} is the owner+time index and {owner, peer,
// sid} the owner+peer+time one; ts serves retention, and only retention:
// without it, it would be a third index written by every archived message
// and read by nothing (one made by an earlier version stays).
func (s *Store) createIndexes(ctx context.Context) error {
	archive := []namedIndex{
		index("owner_time", true, "owner", "sid"),
		index("owner_peer_time", false, "owner", "peer", "sid"),
	}
	if s.set.RetentionDays > 0 {
		archive = append(archive, index("stamp", false, "ts"))
	}
	sets := []struct {
		c   *mongo.Collection
		idx []namedIndex
	}{
		{s.archive, archive},
		{s.users, []namedIndex{index("host_user", false, "host", "user")}},
		{s.rosterItems, []namedIndex{index("owner", false, "owner")}},
		{s.rosterPending, []namedIndex{index("owner", false, "owner")}},
		{s.offline, []namedIndex{index("owner_order", false, "owner", "_id")}},
		{s.private, []namedIndex{index("owner", false, "owner")}},
		{s.blocklist, []namedIndex{index("owner", false, "owner")}},
		{s.tokens, []namedIndex{index("owner_agent", false, "owner", "agent")}},
		{s.mucRooms, []namedIndex{index("service", false, "service")}},
		{s.mucAffs, []namedIndex{index("room_gen", false, "room", "gen")}},
		{s.psNodes, []namedIndex{index("service", false, "service")}},
		{s.psItems, []namedIndex{index("uid_order", false, "uid", "published", "seq")}},
		{s.psAffs, []namedIndex{index("uid", false, "uid"), index("jid_service", false, "jid", "service")}},
		{s.psSubs, []namedIndex{index("uid", false, "uid"), index("bare_service", false, "bare", "service")}},
	}
	for _, set := range sets {
		// Only the missing ones: FerretDB 1.24 panics (and drops the
		// connection) when asked to create a compound index that exists.
		have, err := indexNames(ctx, set.c)
		if err != nil {
			return fmt.Errorf("%s: %w", set.c.Name(), err)
		}
		var missing []mongo.IndexModel
		for _, ix := range set.idx {
			if !have[ix.name] {
				missing = append(missing, ix.model)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if _, err := set.c.Indexes().CreateMany(ctx, missing); err != nil {
			return fmt.Errorf("%s: %w", set.c.Name(), err)
		}
	}
	return nil
}

// indexNames lists a collection's indexes; a collection that does not
// exist yet has none.
func indexNames(ctx context.Context, c *mongo.Collection) (map[string]bool, error) {
	specs, err := c.Indexes().ListSpecifications(ctx)
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code == 26 { // NamespaceNotFound
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, sp := range specs {
		names[sp.Name] = true
	}
	return names, nil
}

// createIndexesRetrying retries createIndexes after a transient failure:
// FerretDB 1.x drops the connection when two clients create the same
// collection's indexes at once (koi and koictl starting together); the
// next attempt finds them made.
func (s *Store) createIndexesRetrying(ctx context.Context) error {
	var err error
	for attempt := range 5 {
		if err = s.createIndexes(ctx); err == nil || !errors.Is(s.fail("", err), sdk.ErrUnavailable) {
			return err
		}
		s.log.Debug("creating indexes failed; retrying", "attempt", attempt+1, "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return err
}

// tryTextIndex creates the text index on message bodies and checks that
// $text queries work; FerretDB 1.x refuses both.
func (s *Store) tryTextIndex(ctx context.Context) bool {
	if have, err := indexNames(ctx, s.archive); err == nil && have["body_text"] {
		return true
	}
	_, err := s.archive.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "body", Value: "text"}}, Options: options.Index().SetName("body_text"),
	})
	if err != nil {
		s.log.Info("no text index on this server; full-text search falls back to regular expressions", "error", err)
		return false
	}
	cur, err := s.archive.Find(ctx, bson.D{{Key: "$text", Value: bson.D{{Key: "$search", Value: "koi"}}}}, options.Find().SetLimit(1))
	if err != nil {
		s.log.Info("text queries fail on this server; full-text search falls back to regular expressions", "error", err)
		return false
	}
	cur.Close(ctx)
	return true
}

// retain deletes archived messages older than the retention period, at
// start and then every RetentionInterval.
func (s *Store) retain(ctx context.Context) {
	t := time.NewTicker(s.set.RetentionInterval)
	defer t.Stop()
	for {
		n, err := s.ExpireArchive(ctx, time.Now().Add(-time.Duration(s.set.RetentionDays)*24*time.Hour))
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("archive retention failed; will retry", "error", err)
		case n > 0:
			s.log.Info("archive retention", "deleted", n, "older_than_days", s.set.RetentionDays)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ExpireArchive deletes archived messages stamped before cutoff and
// returns how many. The retention job calls it; it is exported for tests
// and tools.
func (s *Store) ExpireArchive(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.archive.DeleteMany(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$lt", Value: cutoff}}}})
	if err != nil {
		return 0, s.fail("archive.Expire", err)
	}
	return res.DeletedCount, nil
}

// Capabilities declares every feature read-write, with SCRAM.
func (s *Store) Capabilities() sdk.Capabilities { return s.set.capabilities() }

// capabilities is what a Store with these settings serves; Validate reports
// it without connecting.
func (s Settings) capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		Auth:      sdk.AuthCapabilities{Access: sdk.AccessReadWrite, SCRAM: true},
		Roster:    sdk.AccessReadWrite,
		Offline:   sdk.AccessReadWrite,
		VCard:     sdk.AccessReadWrite,
		Private:   sdk.AccessReadWrite,
		Archive:   sdk.ArchiveCapabilities{Access: sdk.AccessReadWrite, FullText: s.FullText, Retract: true},
		Blocklist: sdk.AccessReadWrite,
		Tokens:    sdk.AccessReadWrite,
		MUC:       sdk.AccessReadWrite,
		PubSub:    sdk.AccessReadWrite,
		// Both sides of a subscription in one journaled batch (rosterbatch.go).
		RosterBatch: true,
	}
}

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.fail("ping", s.client.Ping(ctx, readpref.Primary()))
}

// Close stops the retention job and disconnects.
func (s *Store) Close() error {
	s.stop()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.client.Disconnect(ctx)
}

// put stores doc under id, replacing a document that is there. It tries an
// insert first: on FerretDB 1.x an insert is fast while every update scans
// the collection, and most puts (roster items, offline state) are new.
func put(ctx context.Context, c *mongo.Collection, id string, doc any) error {
	for range 3 {
		_, err := c.InsertOne(ctx, doc)
		if !mongo.IsDuplicateKeyError(err) {
			return err
		}
		res, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc)
		if err != nil || res.MatchedCount == 1 {
			return err
		}
		// Deleted between the two: insert again.
	}
	return fmt.Errorf("%w: document %s keeps changing", sdk.ErrUnavailable, id)
}

// fail maps err to the sdk errors and names op.
func (s *Store) fail(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sdk.ErrNotFound), errors.Is(err, sdk.ErrExists),
		errors.Is(err, sdk.ErrInvalid), errors.Is(err, sdk.ErrUnavailable),
		errors.Is(err, sdk.ErrReadOnly):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("%s: %w", op, sdk.ErrNotFound)
	case mongo.IsDuplicateKeyError(err):
		return fmt.Errorf("%s: %w: %w", op, sdk.ErrExists, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, mongo.ErrClientDisconnected), mongo.IsNetworkError(err), mongo.IsTimeout(err),
		errors.As(err, new(topology.ServerSelectionError)):
		return fmt.Errorf("%s: %w: %w", op, sdk.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// checkKey validates a string stored in an indexed field.
func checkKey(field, v string) error {
	if v == "" {
		return fmt.Errorf("%w: empty %s", sdk.ErrInvalid, field)
	}
	return checkText(field, v)
}

// checkText refuses what BSON or FerretDB's PostgreSQL storage cannot keep:
// invalid UTF-8 and NUL bytes.
func checkText(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", sdk.ErrInvalid, field)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL byte", sdk.ErrInvalid, field)
	}
	return nil
}

func checkAll(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
