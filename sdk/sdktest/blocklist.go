package sdktest

import (
	"fmt"
	"slices"
	"sync"

	"github.com/koi-im/koi/sdk"
)

// The blocklist contract (sdk.Blocklist, sdk.BlocklistWriter): a sorted set
// of JIDs per owner, of every JID form, where adding a present JID and
// removing an absent one are not errors.

func blocklistRead(c sdk.Capabilities, _ Options) bool  { return c.Blocklist.Readable() }
func blocklistWrite(c sdk.Capabilities, _ Options) bool { return c.Blocklist.Writable() }

func blocklistChecks() []check {
	return []check{
		{"blocklist/empty", blocklistRead, checkBlocklistEmpty},
		{"blocklist/block-unblock", blocklistWrite, checkBlocklistBlockUnblock},
		{"blocklist/unblock-all", blocklistWrite, checkBlocklistUnblockAll},
		{"blocklist/unicode", blocklistWrite, checkBlocklistUnicode},
		{"blocklist/concurrent", blocklistWrite, checkBlocklistConcurrent},
	}
}

func (e *env) blocklist() sdk.Blocklist {
	e.t.Helper()
	b, ok := e.b.(sdk.Blocklist)
	if !ok {
		e.t.Fatal("blocklist is declared but the backend does not implement sdk.Blocklist")
	}
	return b
}

func (e *env) blocklistWriter() sdk.BlocklistWriter {
	e.t.Helper()
	b, ok := e.b.(sdk.BlocklistWriter)
	if !ok {
		e.t.Fatal("blocklist is declared read-write but the backend does not implement sdk.BlocklistWriter")
	}
	return b
}

// wantBlocklist checks the owner's list; want is sorted here, so the
// backend's order is compared too.
func (e *env) wantBlocklist(owner string, want ...string) {
	e.t.Helper()
	got, err := e.blocklist().GetBlocklist(e.ctx, owner)
	if !e.noErr(fmt.Sprintf("GetBlocklist(%s)", owner), err) {
		return
	}
	want = slices.Clone(want)
	slices.Sort(want)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		e.t.Errorf("GetBlocklist(%s) = %q, want %q (sorted)", owner, got, want)
	}
}

func checkBlocklistEmpty(e *env) {
	e.wantBlocklist(e.owner("nobody"))
}

func checkBlocklistBlockUnblock(e *env) {
	w := e.blocklistWriter()
	owner, other := e.owner("alice"), e.owner("bob")
	c := e.contact("carol")
	// Every JID form XEP-0191 allows: bare, full, domain, domain/resource.
	jids := []string{c, c + "/phone", "spam.example", "spam.example/bot"}
	e.ok("Block", w.Block(e.ctx, owner, jids))
	e.wantBlocklist(owner, jids...)
	e.wantBlocklist(other)

	e.ok("Block of present JIDs and a repeat", w.Block(e.ctx, owner, []string{c, "z.example", "z.example"}))
	e.wantBlocklist(owner, append(slices.Clone(jids), "z.example")...)

	e.ok("Unblock", w.Unblock(e.ctx, owner, []string{c + "/phone", "spam.example"}))
	e.wantBlocklist(owner, c, "spam.example/bot", "z.example")
	e.ok("Unblock of absent JIDs", w.Unblock(e.ctx, owner, []string{"absent.example", c + "/phone"}))
	e.wantBlocklist(owner, c, "spam.example/bot", "z.example")
	e.ok("Unblock of nothing", w.Unblock(e.ctx, owner, nil))
	e.ok("Block of nothing", w.Block(e.ctx, owner, nil))
	e.wantBlocklist(owner, c, "spam.example/bot", "z.example")
}

func checkBlocklistUnblockAll(e *env) {
	w := e.blocklistWriter()
	owner, other := e.owner("alice"), e.owner("bob")
	e.ok("Block", w.Block(e.ctx, owner, []string{"a.example", "b.example"}))
	e.ok("Block of another owner", w.Block(e.ctx, other, []string{"a.example"}))
	e.ok("UnblockAll", w.UnblockAll(e.ctx, owner))
	e.wantBlocklist(owner)
	e.wantBlocklist(other, "a.example")
	e.ok("UnblockAll of an empty list", w.UnblockAll(e.ctx, owner))
	e.ok("Block after UnblockAll", w.Block(e.ctx, owner, []string{"c.example"}))
	e.wantBlocklist(owner, "c.example")
}

func checkBlocklistUnicode(e *env) {
	w := e.blocklistWriter()
	owner := e.owner("ünïcødé")
	jids := []string{"jürgen@bücher.example/Gerät", "用户@例子.example", "😀@emoji.example"}
	e.ok("Block", w.Block(e.ctx, owner, jids))
	e.wantBlocklist(owner, jids...)
}

func checkBlocklistConcurrent(e *env) {
	w := e.blocklistWriter()
	owner := e.owner("alice")
	const n = 16
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("c%02d@contacts.example", i)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each JID twice, from two goroutines, so that adds of the
			// same JID race too.
			e.noErr("concurrent Block", w.Block(e.ctx, owner, []string{want[i], want[(i+1)%n]}))
		}()
	}
	wg.Wait()
	e.wantBlocklist(owner, want...)
}
