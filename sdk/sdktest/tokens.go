package sdktest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/koi-im/koi/sdk"
)

// The token contract (sdk.Tokens, sdk.TokensWriter): FAST tokens per owner
// and agent, named by their hash, returned newest expiry first, with
// expiry kept to the second and hash and salt byte for byte.

func tokensRead(c sdk.Capabilities, _ Options) bool  { return c.Tokens.Readable() }
func tokensWrite(c sdk.Capabilities, _ Options) bool { return c.Tokens.Writable() }

func tokenChecks() []check {
	return []check{
		{"tokens/empty", tokensRead, checkTokensEmpty},
		{"tokens/put-get-delete", tokensWrite, checkTokensPutGetDelete},
		{"tokens/delete-all", tokensWrite, checkTokensDeleteAll},
		{"tokens/invalid", tokensWrite, checkTokensInvalid},
	}
}

func (e *env) tokens() sdk.Tokens {
	e.t.Helper()
	b, ok := e.b.(sdk.Tokens)
	if !ok {
		e.t.Fatal("tokens are declared but the backend does not implement sdk.Tokens")
	}
	return b
}

func (e *env) tokensWriter() sdk.TokensWriter {
	e.t.Helper()
	b, ok := e.b.(sdk.TokensWriter)
	if !ok {
		e.t.Fatal("tokens are declared read-write but the backend does not implement sdk.TokensWriter")
	}
	return b
}

// testToken makes a token whose hash and salt come from seed; the salt
// holds a NUL and high bytes, which text columns would mangle.
func testToken(owner, agent, seed string, expires time.Time) sdk.Token {
	h := sha256.Sum256([]byte(seed))
	return sdk.Token{
		Owner: owner, Agent: agent, Hash: h[:],
		Salt:      append([]byte{0, 0xff, 0x80}, seed...),
		Mechanism: "HT-SHA-256-NONE", Expires: expires.Truncate(time.Second).UTC(),
	}
}

// wantTokens checks GetTokens(owner, agent) against want, in order.
func (e *env) wantTokens(owner, agent string, want ...sdk.Token) {
	e.t.Helper()
	got, err := e.tokens().GetTokens(e.ctx, owner, agent)
	if !e.noErr(fmt.Sprintf("GetTokens(%s, %s)", owner, agent), err) {
		return
	}
	if len(got) != len(want) {
		e.t.Errorf("GetTokens(%s, %s) returned %d tokens, want %d", owner, agent, len(got), len(want))
		return
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Owner != w.Owner || g.Agent != w.Agent || !bytes.Equal(g.Hash, w.Hash) || !bytes.Equal(g.Salt, w.Salt) ||
			g.Mechanism != w.Mechanism || !g.Expires.Equal(w.Expires) {
			e.t.Errorf("GetTokens(%s, %s)[%d] = %+v, want %+v (newest expiry first)", owner, agent, i, g, w)
		}
	}
}

func checkTokensEmpty(e *env) {
	e.wantTokens(e.owner("nobody"), "agent")
}

func checkTokensPutGetDelete(e *env) {
	w := e.tokensWriter()
	owner, other := e.owner("alice"), e.owner("bob")
	now := time.Now()
	old := testToken(owner, "phone", "old", now.Add(time.Hour))
	cur := testToken(owner, "phone", "cur", now.Add(48*time.Hour))
	laptop := testToken(owner, "laptop-ü", "laptop", now.Add(24*time.Hour))
	for _, t := range []sdk.Token{old, cur, laptop} {
		e.ok("PutToken", w.PutToken(e.ctx, t))
	}
	e.wantTokens(owner, "phone", cur, old)
	e.wantTokens(owner, "laptop-ü", laptop)
	e.wantTokens(other, "phone")

	// The same hash again replaces the token (a new expiry, say).
	cur2 := cur
	cur2.Expires = cur.Expires.Add(time.Hour)
	e.ok("PutToken of the same hash", w.PutToken(e.ctx, cur2))
	e.wantTokens(owner, "phone", cur2, old)

	// An expired token is still returned: the core deletes it.
	gone := testToken(owner, "phone", "gone", now.Add(-time.Hour))
	e.ok("PutToken of an expired token", w.PutToken(e.ctx, gone))
	e.wantTokens(owner, "phone", cur2, old, gone)

	e.ok("DeleteToken", w.DeleteToken(e.ctx, owner, "phone", old.Hash))
	e.wantTokens(owner, "phone", cur2, gone)
	e.ok("DeleteToken of another agent's hash", w.DeleteToken(e.ctx, owner, "laptop-ü", cur.Hash))
	e.wantTokens(owner, "phone", cur2, gone)
	e.ok("DeleteToken of an absent token", w.DeleteToken(e.ctx, owner, "phone", old.Hash))
	e.wantTokens(owner, "laptop-ü", laptop)
}

func checkTokensDeleteAll(e *env) {
	w := e.tokensWriter()
	owner, other := e.owner("alice"), e.owner("bob")
	later := time.Now().Add(time.Hour)
	a := testToken(owner, "phone", "a", later)
	b := testToken(owner, "laptop", "b", later)
	o := testToken(other, "phone", "o", later)
	for _, t := range []sdk.Token{a, b, o} {
		e.ok("PutToken", w.PutToken(e.ctx, t))
	}
	e.ok("DeleteTokens", w.DeleteTokens(e.ctx, owner))
	e.wantTokens(owner, "phone")
	e.wantTokens(owner, "laptop")
	e.wantTokens(other, "phone", o)
	e.ok("DeleteTokens of nobody's tokens", w.DeleteTokens(e.ctx, owner))
}

func checkTokensInvalid(e *env) {
	w := e.tokensWriter()
	owner := e.owner("alice")
	later := time.Now().Add(time.Hour)
	good := testToken(owner, "phone", "x", later)
	for name, t := range map[string]sdk.Token{
		"no owner":   {Agent: "phone", Hash: good.Hash, Expires: later},
		"no agent":   {Owner: owner, Hash: good.Hash, Expires: later},
		"short hash": {Owner: owner, Agent: "phone", Hash: good.Hash[:16], Expires: later},
	} {
		if err := w.PutToken(e.ctx, t); !errors.Is(err, sdk.ErrInvalid) {
			e.t.Errorf("PutToken with %s = %v, want sdk.ErrInvalid", name, err)
		}
	}
	e.wantTokens(owner, "phone")
}
