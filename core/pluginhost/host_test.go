package pluginhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koi-im/koi/internal/sigstop"
	"github.com/koi-im/koi/sdk"
)

func TestFeaturesAcrossTheWire(t *testing.T) {
	h, _ := startHost(t, spec("store", map[string]any{"iterations": 1000}))
	b := mustBackend(t, h, "store")
	ctx := context.Background()

	want := sdk.Capabilities{
		Auth:      sdk.AuthCapabilities{Access: sdk.AccessReadWrite, SCRAM: true},
		Roster:    sdk.AccessReadWrite,
		Offline:   sdk.AccessReadWrite,
		VCard:     sdk.AccessReadWrite,
		Private:   sdk.AccessReadWrite,
		Blocklist: sdk.AccessReadWrite,
		Tokens:    sdk.AccessReadWrite,
		MUC:       sdk.AccessReadWrite,
		PubSub:    sdk.AccessReadWrite,

		RosterBatch: true,
	}
	if got := b.Capabilities(); got != want {
		t.Errorf("Capabilities = %+v, want %+v", got, want)
	}
	if b.Name() != "store" || !b.Healthy() {
		t.Errorf("Name %q Healthy %v", b.Name(), b.Healthy())
	}
	if err := b.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}

	// Auth and AuthAdmin.
	must(t, b.CreateUser(ctx, "example.org", "alice", "secret"))
	isErr(t, "CreateUser twice", b.CreateUser(ctx, "example.org", "alice", "x"), sdk.ErrExists)
	isErr(t, "CreateUser empty", b.CreateUser(ctx, "example.org", "", "x"), sdk.ErrInvalid)
	must(t, b.CreateUser(ctx, "example.org", "bob", "pw"))
	ok, err := b.UserExists(ctx, "example.org", "alice")
	if err != nil || !ok {
		t.Errorf("UserExists(alice) = %v, %v", ok, err)
	}
	ok, err = b.UserExists(ctx, "example.org", "carol")
	if err != nil || ok {
		t.Errorf("UserExists(carol) = %v, %v", ok, err)
	}
	ok, err = b.CheckPassword(ctx, "example.org", "alice", "secret")
	if err != nil || !ok {
		t.Errorf("CheckPassword right = %v, %v", ok, err)
	}
	ok, err = b.CheckPassword(ctx, "example.org", "alice", "wrong")
	if err != nil || ok {
		t.Errorf("CheckPassword wrong = %v, %v", ok, err)
	}
	creds, err := b.SCRAMCredentials(ctx, "example.org", "alice", sdk.HashSHA256)
	if err != nil {
		t.Fatalf("SCRAMCredentials: %v", err)
	}
	if creds.Iterations != 1000 || len(creds.Salt) == 0 || len(creds.StoredKey) != 32 || len(creds.ServerKey) != 32 {
		t.Errorf("SCRAMCredentials = %+v", creds)
	}
	if !sdk.CheckSCRAMPassword("secret", sdk.HashSHA256, creds) {
		t.Error("SCRAM credentials do not verify the password after the trip")
	}
	_, err = b.SCRAMCredentials(ctx, "example.org", "nobody", sdk.HashSHA1)
	isErr(t, "SCRAMCredentials unknown user", err, sdk.ErrNotFound)
	if err != nil && !strings.Contains(err.Error(), "nobody@example.org") {
		t.Errorf("error lost the backend's message: %v", err)
	}
	users, err := b.ListUsers(ctx, "example.org")
	if err != nil || !reflect.DeepEqual(users, []string{"alice", "bob"}) {
		t.Errorf("ListUsers = %v, %v", users, err)
	}
	must(t, b.SetPassword(ctx, "example.org", "alice", "new"))
	isErr(t, "SetPassword unknown", b.SetPassword(ctx, "example.org", "carol", "x"), sdk.ErrNotFound)
	if ok, _ := b.CheckPassword(ctx, "example.org", "alice", "new"); !ok {
		t.Error("new password not accepted")
	}
	must(t, b.DeleteUser(ctx, "example.org", "bob"))
	isErr(t, "DeleteUser twice", b.DeleteUser(ctx, "example.org", "bob"), sdk.ErrNotFound)

	// Roster.
	const owner = "alice@example.org"
	r, err := b.GetRoster(ctx, owner)
	if err != nil || r.Version != "0" || len(r.Items) != 0 {
		t.Errorf("empty GetRoster = %+v, %v", r, err)
	}
	item := sdk.RosterItem{JID: "bob@example.org", Name: "Bob", Subscription: sdk.SubBoth, Ask: true, Approved: true, Groups: []string{"Friends", "Work"}}
	v, err := b.SetItem(ctx, owner, item)
	if err != nil || v != "1" {
		t.Errorf("SetItem = %q, %v", v, err)
	}
	_, err = b.SetItem(ctx, owner, sdk.RosterItem{})
	isErr(t, "SetItem without JID", err, sdk.ErrInvalid)
	pending := sdk.PendingSubscription{JID: "carol@example.org", Stanza: "<presence type='subscribe'/>"}
	must(t, b.SetPending(ctx, owner, pending))
	r, err = b.GetRoster(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	wantRoster := sdk.RosterState{Version: "1", Items: []sdk.RosterItem{item}, Pending: []sdk.PendingSubscription{pending}}
	if !reflect.DeepEqual(r, wantRoster) {
		t.Errorf("GetRoster = %+v, want %+v", r, wantRoster)
	}
	must(t, b.DeletePending(ctx, owner, pending.JID))
	v, err = b.DeleteItem(ctx, owner, item.JID)
	if err != nil || v != "2" {
		t.Errorf("DeleteItem = %q, %v", v, err)
	}
	_, err = b.DeleteItem(ctx, owner, item.JID)
	isErr(t, "DeleteItem twice", err, sdk.ErrNotFound)
	// Both sides of a subscription in one call.
	to, from := sdk.RosterItem{JID: "bob@example.org", Subscription: sdk.SubTo}, sdk.RosterItem{JID: owner, Subscription: sdk.SubFrom}
	vs, err := b.ApplyRosterChanges(ctx, []sdk.RosterChange{
		{Owner: owner, Contact: "bob@example.org", Item: &to},
		{Owner: "bob@example.org", Contact: owner, Item: &from, DeletePending: true},
	})
	if err != nil || vs[owner] != "3" || vs["bob@example.org"] != "1" {
		t.Errorf("ApplyRosterChanges = %v, %v; want versions 3 and 1", vs, err)
	}
	if r, _ := b.GetRoster(ctx, "bob@example.org"); !reflect.DeepEqual(r.Items, []sdk.RosterItem{from}) {
		t.Errorf("bob's roster after the batch = %+v", r)
	}
	must(t, b.DeleteRoster(ctx, owner))
	if r, _ := b.GetRoster(ctx, owner); r.Version != "0" {
		t.Errorf("roster after DeleteRoster = %+v", r)
	}

	// Offline.
	stamp := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	msgs := []sdk.OfflineMessage{{Stanza: "<message>1</message>", Stamp: stamp}, {Stanza: "<message>2</message>"}}
	for _, m := range msgs {
		must(t, b.Store(ctx, owner, m))
	}
	if n, err := b.Count(ctx, owner); err != nil || n != 2 {
		t.Errorf("Count = %d, %v", n, err)
	}
	got, err := b.Pop(ctx, owner)
	if err != nil || !reflect.DeepEqual(got, msgs) {
		t.Errorf("Pop = %+v, %v; want %+v", got, err, msgs)
	}
	if got, err := b.Pop(ctx, owner); err != nil || len(got) != 0 {
		t.Errorf("second Pop = %+v, %v", got, err)
	}
	must(t, b.Store(ctx, owner, msgs[0]))
	must(t, b.DeleteAll(ctx, owner))
	if n, _ := b.Count(ctx, owner); n != 0 {
		t.Errorf("Count after DeleteAll = %d", n)
	}

	// VCard.
	_, err = b.GetVCard(ctx, owner)
	isErr(t, "GetVCard absent", err, sdk.ErrNotFound)
	const card = "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>"
	must(t, b.SetVCard(ctx, owner, card))
	if doc, err := b.GetVCard(ctx, owner); err != nil || doc != card {
		t.Errorf("GetVCard = %q, %v", doc, err)
	}
	must(t, b.DeleteVCard(ctx, owner))
	_, err = b.GetVCard(ctx, owner)
	isErr(t, "GetVCard deleted", err, sdk.ErrNotFound)

	// Blocklist.
	must(t, b.Block(ctx, owner, []string{"spam.example", "bob@example.com/phone"}))
	isErr(t, "Block of an empty JID", b.Block(ctx, owner, []string{""}), sdk.ErrInvalid)
	must(t, b.Unblock(ctx, owner, []string{"spam.example"}))
	if got, err := b.GetBlocklist(ctx, owner); err != nil || len(got) != 1 || got[0] != "bob@example.com/phone" {
		t.Errorf("GetBlocklist = %q, %v", got, err)
	}
	must(t, b.UnblockAll(ctx, owner))
	if got, err := b.GetBlocklist(ctx, owner); err != nil || len(got) != 0 {
		t.Errorf("GetBlocklist after UnblockAll = %q, %v", got, err)
	}

	// Tokens.
	hash := make([]byte, 32)
	hash[0] = 7
	tok := sdk.Token{Owner: owner, Agent: "phone", Hash: hash, Salt: []byte{0, 1}, Mechanism: "HT-SHA-256-NONE", Expires: time.Unix(2000000000, 0).UTC()}
	must(t, b.PutToken(ctx, tok))
	isErr(t, "PutToken with a short hash", b.PutToken(ctx, sdk.Token{Owner: owner, Agent: "phone", Hash: hash[:3]}), sdk.ErrInvalid)
	if got, err := b.GetTokens(ctx, owner, "phone"); err != nil || len(got) != 1 || !bytes.Equal(got[0].Salt, tok.Salt) || !got[0].Expires.Equal(tok.Expires) {
		t.Errorf("GetTokens = %+v, %v", got, err)
	}
	must(t, b.DeleteTokens(ctx, owner))
	if got, err := b.GetTokens(ctx, owner, "phone"); err != nil || len(got) != 0 {
		t.Errorf("GetTokens after DeleteTokens = %+v, %v", got, err)
	}

	// MUC.
	room := sdk.MUCRoom{Room: "lobby@conference.example.org", Subject: "hi", SubjectBy: "zoë",
		Config:  map[string][]string{"muc#roomconfig_roomname": {"Lobby"}, "muc#roomconfig_roomadmins": {}},
		Created: time.Unix(1700000000, 123e6).UTC()}
	must(t, b.PutMUCRoom(ctx, room))
	isErr(t, "PutMUCRoom of a full JID", b.PutMUCRoom(ctx, sdk.MUCRoom{Room: room.Room + "/nick"}), sdk.ErrInvalid)
	if got, err := b.GetMUCRoom(ctx, room.Room); err != nil || !got.Created.Equal(room.Created) || !reflect.DeepEqual(got.Config["muc#roomconfig_roomname"], []string{"Lobby"}) {
		t.Errorf("GetMUCRoom = %+v, %v", got, err)
	} else if v, ok := got.Config["muc#roomconfig_roomadmins"]; !ok || len(v) != 0 {
		t.Errorf("GetMUCRoom lost the field without values: %q", got.Config)
	}
	if got, err := b.ListMUCRooms(ctx, "conference.example.org"); err != nil || len(got) != 1 || got[0].Room != room.Room {
		t.Errorf("ListMUCRooms = %+v, %v", got, err)
	}
	aff := sdk.MUCAffiliation{Room: room.Room, JID: owner, Affiliation: "owner", Nick: "al"}
	must(t, b.SetMUCAffiliation(ctx, aff))
	isErr(t, "SetMUCAffiliation on a missing room", b.SetMUCAffiliation(ctx, sdk.MUCAffiliation{Room: "none@conference.example.org", JID: owner, Affiliation: "member"}), sdk.ErrNotFound)
	if got, err := b.GetMUCAffiliations(ctx, room.Room); err != nil || len(got) != 1 || got[0] != aff {
		t.Errorf("GetMUCAffiliations = %+v, %v", got, err)
	}
	must(t, b.DeleteMUCRoom(ctx, room.Room))
	_, err = b.GetMUCRoom(ctx, room.Room)
	isErr(t, "GetMUCRoom deleted", err, sdk.ErrNotFound)
	if got, err := b.GetMUCAffiliations(ctx, room.Room); err != nil || len(got) != 0 {
		t.Errorf("GetMUCAffiliations after DeleteMUCRoom = %+v, %v", got, err)
	}

	// PubSub: a PEP node, an item, a page, the owner's affiliation.
	created := time.Date(2024, 5, 6, 7, 8, 9, 123000000, time.UTC)
	node := sdk.PubSubNode{Service: owner, Node: "urn:xmpp:avatar:metadata", Config: map[string][]string{"pubsub#max_items": {"1"}}, Created: created}
	must(t, b.CreatePubSubNode(ctx, node, owner))
	isErr(t, "CreatePubSubNode twice", b.CreatePubSubNode(ctx, node, owner), sdk.ErrExists)
	for i, id := range []string{"a", "b"} {
		must(t, b.PublishPubSubItem(ctx, owner, node.Node, sdk.PubSubItem{ID: id, Payload: "<metadata xmlns='urn:xmpp:avatar:metadata'/>", Published: created.Add(time.Duration(i) * time.Second)}, 1))
	}
	if p, err := b.GetPubSubItems(ctx, sdk.PubSubItemQuery{Service: owner, Node: node.Node, Max: 10}); err != nil || len(p.Items) != 1 || p.Items[0].ID != "b" || p.Count != 1 {
		t.Errorf("GetPubSubItems = %+v, %v; want item b alone", p, err)
	}
	if n, err := b.GetPubSubNode(ctx, owner, node.Node); err != nil || !reflect.DeepEqual(n, node) {
		t.Errorf("GetPubSubNode = %+v, %v; want %+v", n, err, node)
	}
	if a, err := b.GetPubSubAffiliations(ctx, owner, "", owner); err != nil || len(a) != 1 || a[0].Affiliation != sdk.PubSubOwner {
		t.Errorf("GetPubSubAffiliations = %+v, %v", a, err)
	}
	isErr(t, "RetractPubSubItem of a trimmed item", b.RetractPubSubItem(ctx, owner, node.Node, "a"), sdk.ErrNotFound)
	must(t, b.DeletePubSubNode(ctx, owner, node.Node))
	if l, err := b.ListPubSubNodes(ctx, owner); err != nil || len(l) != 0 {
		t.Errorf("ListPubSubNodes after DeletePubSubNode = %+v, %v", l, err)
	}

	// Private.
	const doc = "<storage xmlns='storage:bookmarks'/>"
	must(t, b.SetPrivate(ctx, owner, "storage", "storage:bookmarks", doc))
	isErr(t, "SetPrivate no name", b.SetPrivate(ctx, owner, "", "ns", doc), sdk.ErrInvalid)
	if got, err := b.GetPrivate(ctx, owner, "storage", "storage:bookmarks"); err != nil || got != doc {
		t.Errorf("GetPrivate = %q, %v", got, err)
	}
	_, err = b.GetPrivate(ctx, owner, "storage", "other")
	isErr(t, "GetPrivate other ns", err, sdk.ErrNotFound)
	must(t, b.DeletePrivate(ctx, owner))
	_, err = b.GetPrivate(ctx, owner, "storage", "storage:bookmarks")
	isErr(t, "GetPrivate deleted", err, sdk.ErrNotFound)
}

func TestReadOnlyBackend(t *testing.T) {
	h, _ := startHost(t, spec("dir", map[string]any{"mode": "readonly"}))
	b := mustBackend(t, h, "dir")
	ctx := context.Background()
	if got := b.Capabilities(); got.Auth.Access != sdk.AccessRead || got.Roster != sdk.AccessRead {
		t.Errorf("Capabilities = %+v", got)
	}
	// Reads work.
	if ok, err := b.UserExists(ctx, "example.org", "alice"); err != nil || ok {
		t.Errorf("UserExists = %v, %v", ok, err)
	}
	if _, err := b.GetRoster(ctx, "alice@example.org"); err != nil {
		t.Errorf("GetRoster: %v", err)
	}
	if _, err := b.Count(ctx, "alice@example.org"); err != nil {
		t.Errorf("Count: %v", err)
	}
	// Writes are refused with ErrReadOnly, even where the backend's Go type
	// has the method (Offline is one interface).
	writes := map[string]error{
		"CreateUser":    b.CreateUser(ctx, "example.org", "alice", "pw"),
		"SetPassword":   b.SetPassword(ctx, "example.org", "alice", "pw"),
		"DeleteUser":    b.DeleteUser(ctx, "example.org", "alice"),
		"SetPending":    b.SetPending(ctx, "a@b", sdk.PendingSubscription{JID: "c@d"}),
		"DeletePending": b.DeletePending(ctx, "a@b", "c@d"),
		"DeleteRoster":  b.DeleteRoster(ctx, "a@b"),
		"Store":         b.Store(ctx, "a@b", sdk.OfflineMessage{Stanza: "<message/>"}),
		"DeleteAll":     b.DeleteAll(ctx, "a@b"),
		"SetVCard":      b.SetVCard(ctx, "a@b", "<vCard/>"),
		"DeleteVCard":   b.DeleteVCard(ctx, "a@b"),
		"SetPrivate":    b.SetPrivate(ctx, "a@b", "n", "ns", "<n/>"),
		"DeletePrivate": b.DeletePrivate(ctx, "a@b"),
	}
	_, writes["ListUsers"] = b.ListUsers(ctx, "example.org")
	_, writes["SetItem"] = b.SetItem(ctx, "a@b", sdk.RosterItem{JID: "c@d"})
	_, writes["DeleteItem"] = b.DeleteItem(ctx, "a@b", "c@d")
	_, writes["ApplyRosterChanges"] = b.ApplyRosterChanges(ctx, []sdk.RosterChange{{Owner: "a@b", Contact: "c@d", DeleteItem: true}})
	for name, err := range writes {
		isErr(t, name, err, sdk.ErrReadOnly)
	}
}

func TestStartErrors(t *testing.T) {
	sum := hex.EncodeToString(sha256.New().Sum(nil)) // the sha256 of nothing
	tests := []struct {
		name  string
		specs []Spec
		is    error
		want  []string
	}{
		{
			name:  "unknown config key",
			specs: []Spec{spec("store", map[string]any{"bogus_key": 1})},
			is:    sdk.ErrInvalid,
			want:  []string{`plugin "store"`, "configure", `bogus_key: unknown key`},
		},
		{
			name:  "factory error",
			specs: []Spec{spec("store", map[string]any{"fail": "database is on fire"})},
			is:    sdk.ErrUnavailable,
			want:  []string{`plugin "store"`, "configure", "database is on fire"},
		},
		{
			name:  "capabilities without interfaces",
			specs: []Spec{spec("liar", map[string]any{"mode": "liar"})},
			is:    sdk.ErrInvalid,
			want:  []string{`plugin "liar"`, "declares auth read-write but does not implement sdk.AuthAdmin", "sdk.RosterWriter"},
		},
		{
			name:  "missing command",
			specs: []Spec{{Name: "ghost", Command: filepath.Join(t.TempDir(), "no-such-plugin")}},
			want:  []string{`plugin "ghost"`, "no-such-plugin"},
		},
		{
			name:  "not a plugin",
			specs: []Spec{{Name: "true", Command: "true"}},
			want:  []string{`plugin "true"`, "start"},
		},
		{
			name:  "checksum mismatch",
			specs: []Spec{{Name: "store", Command: pluginPath, SHA256: sum}},
			want:  []string{`plugin "store"`, "checksum mismatch", "config wants " + sum},
		},
		{
			name:  "malformed checksum",
			specs: []Spec{{Name: "store", Command: pluginPath, SHA256: "abc"}},
			want:  []string{`plugin "store"`, "not 64 hex digits"},
		},
		{
			name:  "duplicate name",
			specs: []Spec{spec("store", nil), spec("store", nil)},
			want:  []string{`plugin "store": configured twice`},
		},
		{
			name:  "one bad plugin among good ones",
			specs: []Spec{spec("good", nil), spec("bad", map[string]any{"mode": "nonsense"})},
			is:    sdk.ErrInvalid,
			want:  []string{`plugin "bad"`, `mode "nonsense"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, _ := newLogger(t)
			h := New(log, tt.specs)
			start := time.Now()
			err := h.Start(context.Background())
			if err == nil {
				h.Close(context.Background())
				t.Fatal("Start succeeded")
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("Start took %v", time.Since(start))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			// Plugins that did start were stopped again.
			for _, b := range h.backends {
				if b.PID() != 0 {
					t.Errorf("plugin %q left running", b.Name())
				}
			}
			if _, err := mustBackend(t, h, tt.specs[0].Name).GetRoster(context.Background(), "a@b"); !errors.Is(err, sdk.ErrUnavailable) {
				t.Errorf("call on a host that failed to start: %v, want ErrUnavailable", err)
			}
			if err := h.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

// copyPlugin copies the test plugin into dir so that a test can swap it.
func copyPlugin(t *testing.T, dir, name string) (path, sum string) {
	t.Helper()
	data, err := os.ReadFile(pluginPath)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return path, hex.EncodeToString(s[:])
}

func TestChecksumCheckedAtEveryStart(t *testing.T) {
	dir := t.TempDir()
	path, sum := copyPlugin(t, dir, "koi-testbackend")
	h, logs := startHost(t, Spec{Name: "store", Command: path, SHA256: strings.ToUpper(sum)})
	b := mustBackend(t, h, "store")
	if !b.Healthy() {
		t.Fatal("plugin with matching checksum not healthy")
	}

	// Swap the binary for a different one (a rename, as an upgrade would)
	// and kill the plugin: the restart must refuse the new binary.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".orig"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(b.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "restart refused", func() bool {
		return strings.Contains(logs.String(), "checksum mismatch")
	})
	if _, err := b.GetRoster(context.Background(), "a@b"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("call while the binary is refused: %v", err)
	}

	// Put the right binary back: the next restart takes it.
	if err := os.Rename(path+".orig", path); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "restart with the right binary", b.Healthy)
}

func TestCloseWhileRestarting(t *testing.T) {
	path, sum := copyPlugin(t, t.TempDir(), "koi-testbackend")
	log, logs := newLogger(t)
	h := New(log, []Spec{{Name: "store", Command: path, SHA256: sum}})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := mustBackend(t, h, "store")
	// Make every restart fail, then kill the plugin.
	if err := os.WriteFile(path+".new", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(b.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "failed restart", func() bool {
		return strings.Contains(logs.String(), "plugin restart failed")
	})
	start := time.Now()
	if err := h.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close waited %v for a restart loop", d)
	}
	if _, err := b.GetRoster(context.Background(), "a@b"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("call after Close: %v", err)
	}
}

func TestKilledPluginFailsFastThenRestarts(t *testing.T) {
	h, logs := startHost(t, spec("store", nil))
	b := mustBackend(t, h, "store")
	ctx := context.Background()
	must(t, b.SetVCard(ctx, "a@b", "<vCard/>"))
	old := b.PID()

	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Until the restart, calls fail at once; they never hang.
	sawDown := false
	for range 20 {
		start := time.Now()
		_, err := b.GetVCard(ctx, "a@b")
		if d := time.Since(start); d > time.Second {
			t.Fatalf("call took %v while the plugin was down", d)
		}
		if err == nil {
			break // already restarted... but then the vCard must be gone
		}
		if !errors.Is(err, sdk.ErrUnavailable) && !errors.Is(err, sdk.ErrNotFound) {
			t.Fatalf("call after kill: %v, want ErrUnavailable", err)
		}
		if errors.Is(err, sdk.ErrUnavailable) {
			sawDown = true
		}
		if errors.Is(err, sdk.ErrNotFound) {
			break // a fresh process answered
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !sawDown {
		t.Error("no call saw the plugin down")
	}

	eventually(t, 5*time.Second, "restart", func() bool { return b.Healthy() && b.PID() != old })
	if !processGone(old) {
		t.Errorf("old process %d still there", old)
	}
	// The new process works (and, being in-memory, starts empty).
	_, err := b.GetVCard(ctx, "a@b")
	isErr(t, "GetVCard after restart", err, sdk.ErrNotFound)
	must(t, b.SetVCard(ctx, "a@b", "<vCard/>"))
	for _, msg := range []string{"plugin down", "restarting plugin", "plugin restarted"} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("log lacks %q", msg)
		}
	}
}

// TestOperatorRestart: Restart replaces the process (an operator's
// request, logged at INFO, not as a failure) and the plugin serves again.
func TestOperatorRestart(t *testing.T) {
	h, logs := startHost(t, spec("store", nil))
	b := mustBackend(t, h, "store")
	ctx := context.Background()
	must(t, b.SetVCard(ctx, "a@b", "<vCard/>"))
	old := b.PID()
	b.Restart()
	eventually(t, 5*time.Second, "restart", func() bool { return b.Healthy() && b.PID() != 0 && b.PID() != old })
	eventually(t, 5*time.Second, "old process gone", func() bool { return processGone(old) })
	_, err := b.GetVCard(ctx, "a@b")
	isErr(t, "GetVCard after restart", err, sdk.ErrNotFound)
	if strings.Contains(logs.String(), "plugin down") || !strings.Contains(logs.String(), reasonRestart) {
		t.Errorf("log of an operator's restart:\n%s", logs.String())
	}
}

func TestCallTimeout(t *testing.T) {
	s := spec("store", nil)
	s.CallTimeout = 200 * time.Millisecond
	h, _ := startHost(t, s)
	b := mustBackend(t, h, "store")
	pid := b.PID()

	start := time.Now()
	_, err := b.GetVCard(context.Background(), "sleep-3s@example.org")
	if d := time.Since(start); d > time.Second {
		t.Errorf("call took %v with a 200ms timeout", d)
	}
	isErr(t, "slow call", err, sdk.ErrUnavailable)
	isErr(t, "slow call", err, context.DeadlineExceeded)

	// A slow call is not a dead plugin.
	_, err = b.GetVCard(context.Background(), "a@b")
	isErr(t, "call after timeout", err, sdk.ErrNotFound)
	if b.PID() != pid {
		t.Error("plugin restarted after a timeout")
	}
}

// TestAbandonedCallNotRun: a call whose caller gave up while the plugin
// was stalled (stopped, swapped out, starved) is not run when the plugin
// comes back: the caller has already answered that it failed, and a
// write that landed late would change what it said was left alone.
func TestAbandonedCallNotRun(t *testing.T) {
	s := spec("store", nil)
	s.CallTimeout = 200 * time.Millisecond
	h, _ := startHost(t, s)
	b := mustBackend(t, h, "store")
	pid := b.PID()
	if err := sigstop.Stop(pid, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	stopped := true
	cont := func() {
		if stopped {
			stopped = false
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(cont)
	err := b.SetVCard(context.Background(), "late@example.org", "<vCard xmlns='vcard-temp'><FN>late</FN></vCard>")
	isErr(t, "a write to a stopped plugin", err, sdk.ErrUnavailable)
	time.Sleep(100 * time.Millisecond)
	cont()
	if _, err := b.GetVCard(context.Background(), "late@example.org"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("the write abandoned while the plugin was stopped: %v, want it never made (not found)", err)
	}
	if b.PID() != pid {
		t.Error("plugin restarted")
	}
}

func TestPanicInBackendIsAnError(t *testing.T) {
	h, _ := startHost(t, spec("store", nil))
	b := mustBackend(t, h, "store")
	pid := b.PID()
	_, err := b.GetVCard(context.Background(), "panic@example.org")
	if err == nil || errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("panicking call: %v", err)
	}
	if _, err := b.GetVCard(context.Background(), "a@b"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("call after panic: %v", err)
	}
	if b.PID() != pid {
		t.Error("plugin restarted after a recovered panic")
	}
}

func TestHealthFollowsBackendPing(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "fail")
	log, logs := newLogger(t)
	h := New(log, []Spec{spec("store", map[string]any{"ping_fail_file": flag})})
	h.healthEvery = 50 * time.Millisecond
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	b := mustBackend(t, h, "store")
	pid := b.PID()

	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "unhealthy", func() bool { return !b.Healthy() })
	isErr(t, "Ping", b.Ping(context.Background()), sdk.ErrUnavailable)
	// An unhealthy backend is still running and still asked.
	if _, err := b.GetRoster(context.Background(), "a@b"); err != nil {
		t.Errorf("GetRoster while unhealthy: %v", err)
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "healthy again", b.Healthy)
	if b.PID() != pid {
		t.Error("an unhealthy backend was restarted")
	}
	for _, msg := range []string{"plugin unhealthy", "plugin healthy again"} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("log lacks %q", msg)
		}
	}
}

func TestPluginLogsFoldedIntoHostLog(t *testing.T) {
	_, logs := startHost(t, spec("store", map[string]any{"greeting": "hello-from-the-plugin"}))
	eventually(t, 2*time.Second, "plugin log line", func() bool {
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "testbackend configured") && strings.Contains(line, "hello-from-the-plugin") {
				if !strings.Contains(line, "koi.store") || !strings.Contains(line, "[INFO]") {
					t.Errorf("plugin line not under the plugin's name at its level: %q", line)
				}
				return true
			}
		}
		return false
	})
}

func TestCloseLetsCallsFinish(t *testing.T) {
	before := runtime.NumGoroutine()
	marker := filepath.Join(t.TempDir(), "closed")
	log, _ := newLogger(t)
	h := New(log, []Spec{spec("store", map[string]any{"close_marker": marker})})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := mustBackend(t, h, "store")
	pid := b.PID()

	done := make(chan error, 1)
	go func() {
		_, err := b.GetVCard(context.Background(), "sleep-500ms@example.org")
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the call reach the plugin

	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- h.Close(context.Background()) }()
	// New calls are refused at once while Close waits.
	eventually(t, time.Second, "closing", func() bool {
		_, err := b.GetRoster(context.Background(), "a@b")
		return errors.Is(err, sdk.ErrUnavailable) && strings.Contains(err.Error(), "shutting down")
	})

	if err := <-done; !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("in-flight call: %v, want it to finish (ErrNotFound)", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Close returned after %v, before the in-flight call", d)
	}
	if !processGone(pid) {
		t.Error("plugin process still there after Close")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("backend not closed: %v", err)
	}
	eventually(t, 2*time.Second, "goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
}

func TestCloseDeadline(t *testing.T) {
	log, _ := newLogger(t)
	h := New(log, []Spec{spec("store", nil)})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := mustBackend(t, h, "store")
	pid := b.PID()
	done := make(chan error, 1)
	go func() {
		_, err := b.GetVCard(context.Background(), "sleep-4s@example.org")
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Close took %v past its deadline", d)
	}
	if err := <-done; !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("cut call: %v, want ErrUnavailable", err)
	}
	eventually(t, time.Second, "process gone", func() bool { return processGone(pid) })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func isErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

// The plugin runs in Spec.Dir (koi passes the config file's directory),
// and a relative command is still found from the host's directory.
func TestPluginRunsInSpecDir(t *testing.T) {
	dir := t.TempDir()
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(cwd, pluginPath)
	if err != nil {
		// Both are absolute paths on one file system: this cannot fail
		// short of a broken test setup.
		t.Fatalf("no relative path from %s to the plugin %s: %v", cwd, pluginPath, err)
	}
	s := spec("store", nil)
	s.Command, s.Dir = rel, dir
	_, logs := startHost(t, s)
	eventually(t, 2*time.Second, "plugin log line", func() bool {
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "testbackend configured") {
				if !strings.Contains(line, "dir="+dir) {
					t.Errorf("plugin did not run in %s: %q", dir, line)
				}
				return true
			}
		}
		return false
	})
}
