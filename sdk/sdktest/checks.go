package sdktest

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/koi-im/koi/sdk"
)

// check is one subtest of a run.
type check struct {
	name    string
	applies func(c sdk.Capabilities, o Options) bool
	run     func(e *env)
}

func always(sdk.Capabilities, Options) bool { return true }

func authRead(c sdk.Capabilities, _ Options) bool  { return c.Auth.Access.Readable() }
func authWrite(c sdk.Capabilities, _ Options) bool { return c.Auth.Access.Writable() }
func authSCRAMWrite(c sdk.Capabilities, _ Options) bool {
	return c.Auth.Access.Writable() && c.Auth.SCRAM
}
func authReadOnly(c sdk.Capabilities, _ Options) bool { return c.Auth.Access == sdk.AccessRead }
func rosterRead(c sdk.Capabilities, _ Options) bool   { return c.Roster.Readable() }
func rosterWrite(c sdk.Capabilities, _ Options) bool  { return c.Roster.Writable() }
func rosterLarge(c sdk.Capabilities, o Options) bool {
	return c.Roster.Writable() && o.LargeRoster > 0
}
func offlineRead(c sdk.Capabilities, _ Options) bool  { return c.Offline.Readable() }
func offlineWrite(c sdk.Capabilities, _ Options) bool { return c.Offline.Writable() }
func vcardRead(c sdk.Capabilities, _ Options) bool    { return c.VCard.Readable() }
func vcardWrite(c sdk.Capabilities, _ Options) bool   { return c.VCard.Writable() }
func privateRead(c sdk.Capabilities, _ Options) bool  { return c.Private.Readable() }
func privateWrite(c sdk.Capabilities, _ Options) bool { return c.Private.Writable() }
func remote(_ sdk.Capabilities, o Options) bool       { return o.Remote }

// checks lists every subtest in the order they run.
func checks() []check {
	return append([]check{
		{"ping", always, checkPing},
		{"refusals", remote, checkRefusals},

		{"auth/unknown-user", authRead, checkAuthUnknownUser},
		{"auth/invalid", authRead, checkAuthInvalid},
		{"auth/existing-user", authReadOnly, checkAuthExistingUser},
		{"auth/accounts", authWrite, checkAuthAccounts},
		{"auth/scram", authSCRAMWrite, checkAuthSCRAM},
		{"auth/list-users", authWrite, checkAuthListUsers},
		{"auth/unicode", authWrite, checkAuthUnicode},
		{"auth/concurrent-create", authWrite, checkAuthConcurrentCreate},

		{"roster/empty", rosterRead, checkRosterEmpty},
		{"roster/items", rosterWrite, checkRosterItems},
		{"roster/versions", rosterWrite, checkRosterVersions},
		{"roster/pending", rosterWrite, checkRosterPending},
		{"roster/delete-roster", rosterWrite, checkRosterDelete},
		{"roster/unicode", rosterWrite, checkRosterUnicode},
		{"roster/large", rosterLarge, checkRosterLarge},
		{"roster/concurrent", rosterWrite, checkRosterConcurrent},
		{"roster/batch", rosterBatch, checkRosterBatch},
		{"roster/batch-atomic", rosterBatch, checkRosterBatchAtomic},

		{"offline/empty", offlineRead, checkOfflineEmpty},
		{"offline/queue", offlineWrite, checkOfflineQueue},
		{"offline/delete-all", offlineWrite, checkOfflineDeleteAll},
		{"offline/concurrent-pop", offlineWrite, checkOfflineConcurrentPop},

		{"vcard/not-found", vcardRead, checkVCardNotFound},
		{"vcard/documents", vcardWrite, checkVCardDocuments},

		{"private/not-found", privateRead, checkPrivateNotFound},
		{"private/documents", privateWrite, checkPrivateDocuments},
	}, slices.Concat(archiveChecks(), blocklistChecks(), tokenChecks(), mucChecks(), pubsubChecks())...)
}

// checkCapabilities checks that every declared feature is backed by its
// interfaces, as sdk.Serve also does at Configure.
func checkCapabilities(e *env) {
	t, c := e.t, e.caps
	feature := func(name string, a sdk.Access, read, write bool, readIface, writeIface string) {
		switch {
		case a < sdk.AccessNone || a > sdk.AccessReadWrite:
			t.Errorf("%s: unknown access level %d", name, int(a))
		case a.Readable() && !read:
			t.Errorf("%s is declared %v but the backend does not implement sdk.%s", name, a, readIface)
		case a.Writable() && !write:
			t.Errorf("%s is declared %v but the backend does not implement sdk.%s", name, a, writeIface)
		}
	}
	b := e.b
	_, auth := b.(sdk.Auth)
	_, authAdmin := b.(sdk.AuthAdmin)
	_, roster := b.(sdk.Roster)
	_, rosterW := b.(sdk.RosterWriter)
	_, offline := b.(sdk.Offline)
	_, vcard := b.(sdk.VCard)
	_, vcardW := b.(sdk.VCardWriter)
	_, private := b.(sdk.Private)
	_, privateW := b.(sdk.PrivateWriter)
	_, archive := b.(sdk.Archive)
	_, blocklist := b.(sdk.Blocklist)
	_, blocklistW := b.(sdk.BlocklistWriter)
	feature("auth", c.Auth.Access, auth, authAdmin, "Auth", "AuthAdmin")
	feature("roster", c.Roster, roster, rosterW, "Roster", "RosterWriter")
	feature("offline", c.Offline, offline, offline, "Offline", "Offline")
	feature("vcard", c.VCard, vcard, vcardW, "VCard", "VCardWriter")
	feature("private", c.Private, private, privateW, "Private", "PrivateWriter")
	feature("archive", c.Archive.Access, archive, archive, "Archive", "Archive")
	feature("blocklist", c.Blocklist, blocklist, blocklistW, "Blocklist", "BlocklistWriter")
	_, tokens := b.(sdk.Tokens)
	_, tokensW := b.(sdk.TokensWriter)
	feature("tokens", c.Tokens, tokens, tokensW, "Tokens", "TokensWriter")
	_, muc := b.(sdk.MUC)
	_, mucW := b.(sdk.MUCWriter)
	feature("muc", c.MUC, muc, mucW, "MUC", "MUCWriter")
	_, pubsub := b.(sdk.PubSub)
	_, pubsubW := b.(sdk.PubSubWriter)
	feature("pubsub", c.PubSub, pubsub, pubsubW, "PubSub", "PubSubWriter")
	if c.Auth.SCRAM && !c.Auth.Access.Readable() {
		t.Error("SCRAM credentials are declared without auth")
	}
	if _, ok := b.(sdk.RosterBatchWriter); c.RosterBatch && (!ok || !c.Roster.Writable()) {
		t.Error("roster batches are declared without a read-write roster and sdk.RosterBatchWriter")
	}
	if c.Archive.FullText && !c.Archive.Access.Readable() {
		t.Error("archive full-text search is declared without archive")
	}
}

func checkPing(e *env) {
	p, ok := e.b.(sdk.Pinger)
	if !ok {
		e.t.Skip("the backend does not implement sdk.Pinger")
	}
	if err := p.Ping(e.ctx); err != nil {
		e.t.Errorf("Ping: error %v, want none from a freshly built backend", describeErr(err))
	}
}

func describeCaps(c sdk.Capabilities) string {
	auth := c.Auth.Access.String()
	if c.Auth.SCRAM {
		auth += "+scram"
	}
	archive := c.Archive.Access.String()
	if c.Archive.FullText {
		archive += "+fulltext"
	}
	return fmt.Sprintf("auth %s, roster %v, offline %v, vcard %v, private %v, archive %s, blocklist %v, tokens %v, muc %v, pubsub %v",
		auth, c.Roster, c.Offline, c.VCard, c.Private, archive, c.Blocklist, c.Tokens, c.MUC, c.PubSub)
}

// wantErr fails the test unless err wraps one of want.
func (e *env) wantErr(what string, err error, want ...error) {
	e.t.Helper()
	for _, w := range want {
		if errors.Is(err, w) {
			return
		}
	}
	names := make([]string, len(want))
	for i, w := range want {
		names[i] = errName(w)
	}
	want0 := strings.Join(names, " or ")
	switch {
	case err == nil:
		e.t.Errorf("%s: no error, want one wrapping %s", what, want0)
	default:
		e.t.Errorf("%s: error %v, want one wrapping %s (return it, or wrap it with %%w, so that it keeps its meaning in koi)",
			what, describeErr(err), want0)
	}
}

// ok fails the test now if err is not nil.
func (e *env) ok(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: error %v, want none", what, describeErr(err))
	}
}

// noErr fails the test, and goes on, if err is not nil.
func (e *env) noErr(what string, err error) bool {
	e.t.Helper()
	if err != nil {
		e.t.Errorf("%s: error %v, want none", what, describeErr(err))
		return false
	}
	return true
}

func errName(err error) string {
	switch err {
	case sdk.ErrNotFound:
		return "sdk.ErrNotFound"
	case sdk.ErrExists:
		return "sdk.ErrExists"
	case sdk.ErrReadOnly:
		return "sdk.ErrReadOnly"
	case sdk.ErrUnavailable:
		return "sdk.ErrUnavailable"
	case sdk.ErrInvalid:
		return "sdk.ErrInvalid"
	case errors.ErrUnsupported:
		return "errors.ErrUnsupported"
	}
	return fmt.Sprintf("%q", err)
}

func describeErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", err.Error())
}
