package sdktest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/internal/testbackend"
	"github.com/koi-im/koi/sdk/sdktest"
)

// brokenEnv names the bug TestBroken plants; TestKitCatchesBugs runs it in
// a child process, since a failing run must fail its own test.
const brokenEnv = "KOI_SDKTEST_BROKEN"

// bugs are backends that break one promise of the contract each: the
// in-memory test backend with one method made wrong.
var bugs = map[string]func(m *testbackend.Memory) sdk.Backend{
	"none": func(m *testbackend.Memory) sdk.Backend { return m },
	// Declares roster read-write but implements only sdk.Roster.
	"liar":                 func(m *testbackend.Memory) sdk.Backend { return rosterReadOnlyImpl{m} },
	"plain-not-found":      func(m *testbackend.Memory) sdk.Backend { return plainNotFound{m} },
	"unknown-user-error":   func(m *testbackend.Memory) sdk.Backend { return unknownUserError{m} },
	"static-version":       func(m *testbackend.Memory) sdk.Backend { return staticVersion{m} },
	"pop-keeps":            func(m *testbackend.Memory) sdk.Backend { return popKeeps{m} },
	"unsorted-users":       func(m *testbackend.Memory) sdk.Backend { return unsortedUsers{m} },
	"millisecond-stamps":   func(m *testbackend.Memory) sdk.Backend { return msStamps{m} },
	"sorted-groups":        func(m *testbackend.Memory) sdk.Backend { return sortedGroups{m} },
	"racy-create":          func(m *testbackend.Memory) sdk.Backend { return racyCreate{m} },
	"accent-insensitive":   func(m *testbackend.Memory) sdk.Backend { return accentFold{m} },
	"private-ignores-ns":   func(m *testbackend.Memory) sdk.Backend { return privateByName{m} },
	"unblock-keeps":        func(m *testbackend.Memory) sdk.Backend { return unblockKeeps{m} },
	"token-delete-keeps":   func(m *testbackend.Memory) sdk.Backend { return tokenDeleteKeeps{m} },
	"lost-large-roster":    func(m *testbackend.Memory) sdk.Backend { return lossyRoster{m} },
	"scram-wrong-password": func(m *testbackend.Memory) sdk.Backend { return wrongSCRAM{m} },
	"panics":               func(m *testbackend.Memory) sdk.Backend { return panicky{m} },
	"pubsub-no-trim":       func(m *testbackend.Memory) sdk.Backend { return pubsubNoTrim{m} },
	"pubsub-delete-keeps":  func(m *testbackend.Memory) sdk.Backend { return pubsubDeleteKeeps{m, map[string]bool{}} },
	"pubsub-sub-by-full":   func(m *testbackend.Memory) sdk.Backend { return pubsubSubsByFullJID{m} },
	// Read-only auth, with the account the kit is told about.
	"readonly":             func(m *testbackend.Memory) sdk.Backend { return withExisting(readOnlyAuth{m}) },
	"readonly-accepts-any": func(m *testbackend.Memory) sdk.Backend { return withExisting(acceptsAny{readOnlyAuth{m}}) },
}

// The account of the read-only auth backends.
const existingUser, existingPassword = "existing", "pw"

func TestKitCatchesBugs(t *testing.T) {
	for _, c := range []struct {
		bug  string
		want string // in the failing run's output; "" for a passing run
	}{
		{"none", ""},
		{"liar", "roster is declared read-write but the backend does not implement sdk.RosterWriter"},
		{"plain-not-found", `error "no vcard for`},
		{"unknown-user-error", "CheckPassword(\""},
		{"static-version", "which an earlier state of the roster already had"},
		{"pop-keeps", "Pop("},
		{"unsorted-users", "is not sorted"},
		{"millisecond-stamps", "(to the microsecond)"},
		{"sorted-groups", `Groups:["Zeta" "Alpha" "Mid"]`},
		{"racy-create", "all succeeded, want exactly one"},
		{"readonly", ""},
		{"readonly-accepts-any", `"existing", "pwx") = true, <nil>; want false, nil`},
		{"accent-insensitive", "zoe-"},
		{"private-ignores-ns", `GetPrivate(`},
		{"unblock-keeps", "GetBlocklist("},
		{"token-delete-keeps", "GetTokens("},
		{"lost-large-roster", "missing item"},
		{"scram-wrong-password", "do not verify the user's password"},
		{"pubsub-no-trim", "five publishes with max 3"},
		{"pubsub-delete-keeps", "items of a re-created node"},
		{"pubsub-sub-by-full", `GetPubSubSubscriptions(`},
	} {
		t.Run(c.bug, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBroken$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+c.bug)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var exit *exec.ExitError
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("the kit failed a correct backend: %v\n%s", err, out.String())
			case c.want == "":
				return
			case err == nil:
				t.Fatalf("the kit passed a backend with bug %q:\n%s", c.bug, out.String())
			case !errors.As(err, &exit):
				t.Fatalf("running the kit: %v", err)
			case !strings.Contains(out.String(), "--- FAIL"):
				t.Fatalf("the run failed without a failing test:\n%s", out.String())
			case !strings.Contains(out.String(), c.want):
				t.Errorf("the kit's failure does not mention %q:\n%s", c.want, out.String())
			}
		})
	}
}

// A panicking backend fails the checks that called it, with the stack,
// both in a check's own goroutine and in the goroutines of a concurrency
// check, and the run goes on with the other checks.
func TestKitRecoversPanics(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBroken$", "-test.v")
	cmd.Env = append(os.Environ(), brokenEnv+"=panics")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the kit passed a panicking backend:\n%s", out)
	}
	for _, want := range []string{
		"--- FAIL: TestBroken/inprocess/auth/accounts",
		"--- FAIL: TestBroken/inprocess/auth/concurrent-create",
		"panic: CreateUser: deliberate panic (recovered by the kit",
		"sdktest_test.panicky.CreateUser", // the stack
		"--- PASS: TestBroken/inprocess/vcard/not-found",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the run's output lacks %q:\n%s", want, out)
		}
	}
}

// TestBroken runs the kit in process against the backend with the bug
// brokenEnv names.
func TestBroken(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("run by TestKitCatchesBugs")
	}
	wrap, ok := bugs[name]
	if !ok {
		t.Fatalf("unknown bug %q", name)
	}
	factory := func(ctx context.Context, cfg sdk.Config, log sdk.Logger) (sdk.Backend, error) {
		b, err := testbackend.New(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		return wrap(b.(*testbackend.Memory)), nil
	}
	sdktest.Run(t, factory, sdktest.Options{
		LargeRoster:      500,
		Concurrency:      16,
		ExistingUser:     existingUser,
		ExistingPassword: existingPassword,
	})
}

// rosterReadOnlyImpl hides the roster writer but keeps declaring it.
type rosterReadOnlyImpl struct{ m *testbackend.Memory }

func (b rosterReadOnlyImpl) Capabilities() sdk.Capabilities { return b.m.Capabilities() }
func (b rosterReadOnlyImpl) Close() error                   { return b.m.Close() }
func (b rosterReadOnlyImpl) GetRoster(ctx context.Context, owner string) (sdk.RosterState, error) {
	return b.m.GetRoster(ctx, owner)
}

// plainNotFound loses the sentinel.
type plainNotFound struct{ *testbackend.Memory }

func (b plainNotFound) GetVCard(ctx context.Context, owner string) (string, error) {
	v, err := b.Memory.GetVCard(ctx, owner)
	if errors.Is(err, sdk.ErrNotFound) {
		return "", fmt.Errorf("no vcard for %s", owner)
	}
	return v, err
}

// panicky panics in CreateUser.
type panicky struct{ *testbackend.Memory }

func (panicky) CreateUser(context.Context, string, string, string) error {
	panic("CreateUser: deliberate panic")
}

// unknownUserError treats an unknown user as an error, not a wrong password.
type unknownUserError struct{ *testbackend.Memory }

func (b unknownUserError) CheckPassword(ctx context.Context, host, user, password string) (bool, error) {
	if ok, err := b.UserExists(ctx, host, user); err == nil && !ok {
		return false, fmt.Errorf("user %s: %w", user, sdk.ErrNotFound)
	}
	return b.Memory.CheckPassword(ctx, host, user, password)
}

// staticVersion never changes the version.
type staticVersion struct{ *testbackend.Memory }

func (b staticVersion) SetItem(ctx context.Context, owner string, item sdk.RosterItem) (string, error) {
	if _, err := b.Memory.SetItem(ctx, owner, item); err != nil {
		return "", err
	}
	return "1", nil
}

// popKeeps returns the messages but keeps them.
type popKeeps struct{ *testbackend.Memory }

func (b popKeeps) Pop(ctx context.Context, owner string) ([]sdk.OfflineMessage, error) {
	msgs, err := b.Memory.Pop(ctx, owner)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if err := b.Memory.Store(ctx, owner, m); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// unsortedUsers lists users in reverse.
type unsortedUsers struct{ *testbackend.Memory }

func (b unsortedUsers) ListUsers(ctx context.Context, host string) ([]string, error) {
	users, err := b.Memory.ListUsers(ctx, host)
	slices.Reverse(users)
	return users, err
}

// msStamps keeps stamps to the millisecond only.
type msStamps struct{ *testbackend.Memory }

func (b msStamps) Store(ctx context.Context, owner string, msg sdk.OfflineMessage) error {
	msg.Stamp = msg.Stamp.Truncate(time.Millisecond)
	return b.Memory.Store(ctx, owner, msg)
}

// sortedGroups loses the order of groups.
type sortedGroups struct{ *testbackend.Memory }

func (b sortedGroups) SetItem(ctx context.Context, owner string, item sdk.RosterItem) (string, error) {
	item.Groups = slices.Sorted(slices.Values(item.Groups))
	return b.Memory.SetItem(ctx, owner, item)
}

// racyCreate checks for an existing user outside any lock, then writes over
// whatever is there.
type racyCreate struct{ *testbackend.Memory }

func (b racyCreate) CreateUser(ctx context.Context, host, user, password string) error {
	if ok, err := b.UserExists(ctx, host, user); err != nil || ok {
		return cmpErr(err, fmt.Errorf("user %s: %w", user, sdk.ErrExists))
	}
	time.Sleep(5 * time.Millisecond)
	if err := b.Memory.CreateUser(ctx, host, user, password); errors.Is(err, sdk.ErrExists) {
		return b.SetPassword(ctx, host, user, password)
	} else if err != nil {
		return err
	}
	return nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// accentFold compares user names like an accent-insensitive collation.
type accentFold struct{ *testbackend.Memory }

var fold = strings.NewReplacer("\u00eb", "e", "\u00e4", "a", "\u00e5", "a")

func (b accentFold) CreateUser(ctx context.Context, host, user, password string) error {
	return b.Memory.CreateUser(ctx, host, fold.Replace(user), password)
}

func (b accentFold) UserExists(ctx context.Context, host, user string) (bool, error) {
	return b.Memory.UserExists(ctx, host, fold.Replace(user))
}

func (b accentFold) CheckPassword(ctx context.Context, host, user, password string) (bool, error) {
	return b.Memory.CheckPassword(ctx, host, fold.Replace(user), password)
}

func (b accentFold) SCRAMCredentials(ctx context.Context, host, user, hash string) (sdk.SCRAMCredentials, error) {
	return b.Memory.SCRAMCredentials(ctx, host, fold.Replace(user), hash)
}

// privateByName keys private XML by element name only.
type privateByName struct{ *testbackend.Memory }

func (b privateByName) SetPrivate(ctx context.Context, owner, name, _, xml string) error {
	return b.Memory.SetPrivate(ctx, owner, name, "any", xml)
}

func (b privateByName) GetPrivate(ctx context.Context, owner, name, _ string) (string, error) {
	return b.Memory.GetPrivate(ctx, owner, name, "any")
}

// unblockKeeps ignores Unblock.
type unblockKeeps struct{ *testbackend.Memory }

func (unblockKeeps) Unblock(context.Context, string, []string) error { return nil }

// tokenDeleteKeeps ignores DeleteToken: a revoked token would still work.
type tokenDeleteKeeps struct{ *testbackend.Memory }

func (tokenDeleteKeeps) DeleteToken(context.Context, string, string, []byte) error { return nil }

// pubsubNoTrim ignores the node's max items.
type pubsubNoTrim struct{ *testbackend.Memory }

func (b pubsubNoTrim) PublishPubSubItem(ctx context.Context, service, node string, it sdk.PubSubItem, _ int) error {
	return b.Memory.PublishPubSubItem(ctx, service, node, it, 0)
}

// pubsubDeleteKeeps deletes a node but leaves its items behind: a node
// created again under the name finds them.
type pubsubDeleteKeeps struct {
	*testbackend.Memory
	deleted map[string]bool
}

func (b pubsubDeleteKeeps) DeletePubSubNode(ctx context.Context, service, node string) error {
	p, err := b.Memory.GetPubSubItems(ctx, sdk.PubSubItemQuery{Service: service, Node: node, Max: sdk.MaxPubSubPage})
	if err != nil {
		return err
	}
	n, err := b.Memory.GetPubSubNode(ctx, service, node)
	if err != nil {
		return err
	}
	if err := b.Memory.DeletePubSubNode(ctx, service, node); err != nil {
		return err
	}
	// Put the items back under a node recreated at once, then hide it
	// until the kit creates it again.
	if err := b.Memory.CreatePubSubNode(ctx, n, "ghost@sdktest.example"); err != nil {
		return err
	}
	for _, it := range p.Items {
		if err := b.Memory.PublishPubSubItem(ctx, service, node, it, 0); err != nil {
			return err
		}
	}
	b.deleted[service+"\x00"+node] = true
	return nil
}

func (b pubsubDeleteKeeps) CreatePubSubNode(ctx context.Context, n sdk.PubSubNode, owner string) error {
	if b.deleted[n.Service+"\x00"+n.Node] {
		delete(b.deleted, n.Service+"\x00"+n.Node)
		return b.Memory.SetPubSubAffiliation(ctx, sdk.PubSubAffiliation{Service: n.Service, Node: n.Node, JID: owner, Affiliation: sdk.PubSubOwner})
	}
	return b.Memory.CreatePubSubNode(ctx, n, owner)
}

func (b pubsubDeleteKeeps) GetPubSubNode(ctx context.Context, service, node string) (sdk.PubSubNode, error) {
	if b.deleted[service+"\x00"+node] {
		return sdk.PubSubNode{}, sdk.ErrNotFound
	}
	return b.Memory.GetPubSubNode(ctx, service, node)
}

func (b pubsubDeleteKeeps) GetPubSubItems(ctx context.Context, q sdk.PubSubItemQuery) (sdk.PubSubItemPage, error) {
	if b.deleted[q.Service+"\x00"+q.Node] {
		return sdk.PubSubItemPage{}, sdk.ErrNotFound
	}
	return b.Memory.GetPubSubItems(ctx, q)
}

// pubsubSubsByFullJID matches a JID's subscriptions on the full JID, not
// on the bare one.
type pubsubSubsByFullJID struct{ *testbackend.Memory }

func (b pubsubSubsByFullJID) GetPubSubSubscriptions(ctx context.Context, service, node, jid string) ([]sdk.PubSubSubscription, error) {
	subs, err := b.Memory.GetPubSubSubscriptions(ctx, service, node, jid)
	if jid != "" {
		subs = slices.DeleteFunc(subs, func(s sdk.PubSubSubscription) bool { return s.JID != jid })
	}
	return subs, err
}

// lossyRoster drops items beyond 300 (a result-size limit, say).
type lossyRoster struct{ *testbackend.Memory }

func (b lossyRoster) GetRoster(ctx context.Context, owner string) (sdk.RosterState, error) {
	st, err := b.Memory.GetRoster(ctx, owner)
	if len(st.Items) > 300 {
		st.Items = st.Items[:300]
	}
	return st, err
}

// wrongSCRAM hands out SHA-1 credentials with the wrong salt.
type wrongSCRAM struct{ *testbackend.Memory }

func (b wrongSCRAM) SCRAMCredentials(ctx context.Context, host, user, hash string) (sdk.SCRAMCredentials, error) {
	c, err := b.Memory.SCRAMCredentials(ctx, host, user, hash)
	if hash == sdk.HashSHA1 {
		c.Salt = append([]byte("x"), c.Salt...)
	}
	return c, err
}

// readOnlyAuth serves only auth, read-only: a directory.
type readOnlyAuth struct{ m *testbackend.Memory }

func (b readOnlyAuth) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessRead, SCRAM: true}}
}
func (b readOnlyAuth) Close() error { return b.m.Close() }
func (b readOnlyAuth) UserExists(ctx context.Context, host, user string) (bool, error) {
	return b.m.UserExists(ctx, host, user)
}
func (b readOnlyAuth) CheckPassword(ctx context.Context, host, user, password string) (bool, error) {
	return b.m.CheckPassword(ctx, host, user, password)
}
func (b readOnlyAuth) SCRAMCredentials(ctx context.Context, host, user, hash string) (sdk.SCRAMCredentials, error) {
	return b.m.SCRAMCredentials(ctx, host, user, hash)
}

// withExisting creates the account the kit is told about in the store
// behind b.
func withExisting(b interface {
	sdk.Backend
	memory() *testbackend.Memory
}) sdk.Backend {
	if err := b.memory().CreateUser(context.Background(), sdktest.DefaultHost, existingUser, existingPassword); err != nil {
		panic(err)
	}
	return b
}

func (b readOnlyAuth) memory() *testbackend.Memory { return b.m }

// acceptsAny accepts every password of a known user.
type acceptsAny struct{ readOnlyAuth }

func (b acceptsAny) CheckPassword(ctx context.Context, host, user, _ string) (bool, error) {
	return b.UserExists(ctx, host, user)
}
