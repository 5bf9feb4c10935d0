package sqlbackend

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/koi-im/koi/sdk"
)

// tokensSchema is migration 4: FAST tokens (XEP-0484), one row per token,
// named by the hex of its hash; expires is Unix microseconds.
func tokensSchema(d dialect) ([]step, error) {
	key := func(name string) columnDef { return columnDef{name: name, typ: colKey, size: maxKeyChars} }
	t := tableDef{
		name: "koi_fast_tokens",
		cols: []columnDef{
			key("owner"), key("agent"), {name: "hash", typ: colKey, size: 64},
			{name: "salt", typ: colBlob}, {name: "mechanism", typ: colKey, size: 32},
			{name: "expires", typ: colBigInt},
		},
		primaryKey: []string{"owner", "agent", "hash"},
	}
	create, err := createTableSQL(d, t, false)
	if err != nil {
		return nil, err
	}
	return []step{{do: create, undo: "DROP TABLE IF EXISTS " + t.name}}, nil
}

// GetTokens returns the owner's tokens for agent, newest expiry first.
func (s *Store) GetTokens(ctx context.Context, owner, agent string) ([]sdk.Token, error) {
	const op = "tokens.GetTokens"
	if err := checkAll(checkKey("owner", owner), checkKey("agent", agent)); err != nil {
		return nil, s.fail(op, err)
	}
	rows, err := s.query(ctx, nil, "SELECT hash, salt, mechanism, expires FROM koi_fast_tokens WHERE owner = ? AND agent = ?", owner, agent)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []sdk.Token
	for rows.Next() {
		var h string
		var expires int64
		t := sdk.Token{Owner: owner, Agent: agent}
		if err := rows.Scan(&h, &t.Salt, &t.Mechanism, &expires); err != nil {
			return nil, s.fail(op, err)
		}
		if t.Hash, err = hex.DecodeString(h); err != nil {
			return nil, s.fail(op, fmt.Errorf("stored token hash %q: %w", h, err))
		}
		t.Expires = time.UnixMicro(expires).UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	slices.SortStableFunc(out, func(a, b sdk.Token) int { return b.Expires.Compare(a.Expires) })
	return out, nil
}

// PutToken stores t, replacing a token with the same hash.
func (s *Store) PutToken(ctx context.Context, t sdk.Token) error {
	const op = "tokens.PutToken"
	if err := checkAll(checkKey("owner", t.Owner), checkKey("agent", t.Agent), checkTokenHash(t.Hash)); err != nil {
		return s.fail(op, err)
	}
	q := s.d.upsert("koi_fast_tokens", []string{"owner", "agent", "hash"}, []string{"salt", "mechanism", "expires"})
	salt := t.Salt
	if salt == nil {
		salt = []byte{} // NOT NULL
	}
	_, err := s.exec(ctx, nil, q, t.Owner, t.Agent, hex.EncodeToString(t.Hash), salt, t.Mechanism, t.Expires.UnixMicro())
	return s.fail(op, err)
}

// DeleteToken removes one token; an absent one is fine.
func (s *Store) DeleteToken(ctx context.Context, owner, agent string, hash []byte) error {
	const op = "tokens.DeleteToken"
	if err := checkAll(checkKey("owner", owner), checkKey("agent", agent)); err != nil {
		return s.fail(op, err)
	}
	_, err := s.exec(ctx, nil, "DELETE FROM koi_fast_tokens WHERE owner = ? AND agent = ? AND hash = ?", owner, agent, hex.EncodeToString(hash))
	return s.fail(op, err)
}

// DeleteTokens removes every token of owner.
func (s *Store) DeleteTokens(ctx context.Context, owner string) error {
	const op = "tokens.DeleteTokens"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	_, err := s.exec(ctx, nil, "DELETE FROM koi_fast_tokens WHERE owner = ?", owner)
	return s.fail(op, err)
}

func checkTokenHash(h []byte) error {
	if len(h) != 32 {
		return fmt.Errorf("%w: a token hash is 32 bytes, not %d", sdk.ErrInvalid, len(h))
	}
	return nil
}
