package sqlbackend

// Key lengths. Every string that is part of a key or index is at most
// maxKeyChars characters, and the store rejects longer values with
// sdk.ErrInvalid before they reach the database. 255 characters keep the
// widest key, private_storage's (owner, name, ns), within MySQL's 3072-byte
// index limit in utf8mb4 (3 × 255 × 4 = 3060 bytes). RFC 7622 allows JIDs
// of up to 3071 bytes, but DNS names end at 253 and real bare JIDs far below
// 255 characters; keying on a hash instead would make every lookup and every
// listing go through a second column for the benefit of no real user.
const maxKeyChars = 255

// migration is one version of the schema. Migrations are applied in
// version order and recorded in koi_schema_migrations; see migrate for how
// a failure is undone.
type migration struct {
	version int
	name    string
	up      func(d dialect) ([]step, error)
}

// step is one statement of a migration and the statement reversing it.
// undo must also succeed, or fail with a "does not exist" error, when do
// ran only in part or not at all: it is replayed after a crash. Where DDL
// is transactional undo is never run, but it is still required, so that
// every migration works on MySQL.
type step struct {
	do, undo string
}

// migrationsTable records applied migrations.
const migrationsTable = "koi_schema_migrations"

func migrationsTableDef() tableDef {
	return tableDef{
		name: migrationsTable,
		cols: []columnDef{
			{name: "version", typ: colInt},
			{name: "name", typ: colKey, size: maxKeyChars},
			{name: "applied_at", typ: colBigInt},
		},
		primaryKey: []string{"version"},
	}
}

// progressTable records, on databases without transactional DDL, the
// migration in progress and how many of its steps were started, so that
// one interrupted by a crash is undone at the next start.
const progressTable = "koi_schema_progress"

func progressTableDef() tableDef {
	return tableDef{
		name:       progressTable,
		cols:       []columnDef{{name: "version", typ: colInt}, {name: "started", typ: colInt}},
		primaryKey: []string{"version"},
	}
}

// schema returns koi's migrations. Released migrations never change; a
// schema change is a new entry at the end.
func schema() []migration {
	return []migration{
		{version: 1, name: "initial", up: initialSchema},
		{version: 2, name: "archive", up: archiveSchema},     // archive.go
		{version: 3, name: "blocklist", up: blocklistSchema}, // blocklist.go
		{version: 4, name: "tokens", up: tokensSchema},       // tokens.go
		{version: 5, name: "pubsub", up: pubsubSchema},       // pubsub.go
	}
}

func initialSchema(d dialect) ([]step, error) {
	key := func(name string) columnDef { return columnDef{name: name, typ: colKey, size: maxKeyChars} }
	text := func(name string) columnDef { return columnDef{name: name, typ: colText} }
	tables := []tableDef{
		{
			name:       "koi_users",
			cols:       []columnDef{key("host"), key("username"), {name: "created_at", typ: colBigInt}},
			primaryKey: []string{"host", "username"},
		},
		{
			name: "koi_scram_credentials",
			cols: []columnDef{
				key("host"), key("username"),
				{name: "hash", typ: colKey, size: 16},
				{name: "salt", typ: colBlob},
				{name: "iterations", typ: colInt},
				{name: "stored_key", typ: colBlob},
				{name: "server_key", typ: colBlob},
			},
			primaryKey: []string{"host", "username", "hash"},
			foreignKey: []foreignKey{{cols: []string{"host", "username"}, refTable: "koi_users", refCols: []string{"host", "username"}}},
		},
		{
			name: "koi_roster_items",
			cols: []columnDef{
				key("owner"), key("contact"), text("name"),
				{name: "subscription", typ: colKey, size: 8},
				{name: "ask", typ: colInt},
				{name: "approved", typ: colInt},
			},
			primaryKey: []string{"owner", "contact"},
		},
		{
			// pos keeps each item's groups in the order they were given.
			name:       "koi_roster_groups",
			cols:       []columnDef{key("owner"), key("contact"), {name: "pos", typ: colInt}, text("grp")},
			primaryKey: []string{"owner", "contact", "pos"},
			foreignKey: []foreignKey{{cols: []string{"owner", "contact"}, refTable: "koi_roster_items", refCols: []string{"owner", "contact"}}},
		},
		{
			name:       "koi_roster_versions",
			cols:       []columnDef{key("owner"), {name: "version", typ: colBigInt}},
			primaryKey: []string{"owner"},
		},
		{
			name:       "koi_roster_pending",
			cols:       []columnDef{key("owner"), key("contact"), text("stanza")},
			primaryKey: []string{"owner", "contact"},
		},
		{
			// stamp is Unix microseconds: portable, and as precise as
			// PostgreSQL's timestamps.
			name: "koi_offline_messages",
			cols: []columnDef{
				{name: "id", typ: colAutoID}, key("owner"), text("stanza"),
				{name: "stamp", typ: colBigInt},
			},
		},
		{
			name:       "koi_vcards",
			cols:       []columnDef{key("owner"), text("xml")},
			primaryKey: []string{"owner"},
		},
		{
			name:       "koi_private_storage",
			cols:       []columnDef{key("owner"), key("name"), key("ns"), text("xml")},
			primaryKey: []string{"owner", "name", "ns"},
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
	// Pop and Count select an owner's messages in id order; every other
	// query is served by a primary key or its prefix.
	const idx, table = "koi_offline_messages_owner_idx", "koi_offline_messages"
	create, err := createIndexSQL(d, idx, table, "owner", "id")
	if err != nil {
		return nil, err
	}
	return append(steps, step{do: create, undo: d.dropIndex(idx, table)}), nil
}
