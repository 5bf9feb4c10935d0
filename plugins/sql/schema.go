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

// migration is one step of the schema. Steps are applied in version order,
// each in its own transaction, and recorded in koi_schema_migrations.
type migration struct {
	version int
	name    string
	up      func(d dialect) ([]string, error)
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

// schema returns koi's migrations. Released migrations never change; a
// schema change is a new entry at the end.
func schema() []migration {
	return []migration{
		{version: 1, name: "initial", up: initialSchema},
	}
}

func initialSchema(d dialect) ([]string, error) {
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
	var stmts []string
	for _, t := range tables {
		s, err := createTableSQL(d, t, false)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, s)
	}
	idx, err := createIndexSQL(d, "koi_offline_messages_owner_idx", "koi_offline_messages", "owner", "id")
	if err != nil {
		return nil, err
	}
	return append(stmts, idx), nil
}
