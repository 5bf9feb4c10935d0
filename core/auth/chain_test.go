package auth

import (
	"context"
	"errors"
	"fmt"
	"testing"

	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/sdk"
)

type named struct {
	*sqlbackend.Store
	name string
}

func (n named) Name() string { return n.name }

func open(t *testing.T, name string) named {
	t.Helper()
	st, err := sqlbackend.Open(context.Background(), sqlbackend.Settings{Driver: "sqlite", DSN: t.TempDir() + "/" + name + ".db", SCRAMIterations: 4096}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return named{st, name}
}

func TestChainFirstThatKnowsDecides(t *testing.T) {
	ctx := context.Background()
	staff, bots := open(t, "staff"), open(t, "bots")
	must(t, staff.CreateUser(ctx, "example.com", "alice", "staff-pw"))
	must(t, bots.CreateUser(ctx, "example.com", "alice", "bot-pw")) // shadowed by staff
	must(t, bots.CreateUser(ctx, "example.com", "builder", "bot-pw"))
	c := NewChain("example.com", []Backend{staff, bots})

	for _, tc := range []struct {
		user, pw string
		want     bool
	}{
		{"alice", "staff-pw", true},
		{"alice", "bot-pw", false}, // the first backend that knows alice decides
		{"Builder", "bot-pw", true},
		{"nobody", "x", false},
	} {
		ok, err := c.CheckPassword(ctx, tc.user, tc.pw)
		if err != nil || ok != tc.want {
			t.Errorf("CheckPassword(%s, %s) = %v, %v; want %v", tc.user, tc.pw, ok, err, tc.want)
		}
	}
	cr, err := c.SCRAMCredentials(ctx, "builder", sdk.HashSHA256)
	if err != nil || !sdk.CheckSCRAMPassword("bot-pw", sdk.HashSHA256, cr) {
		t.Fatalf("SCRAM credentials of a second-backend user: %v", err)
	}
	if _, err := c.SCRAMCredentials(ctx, "nobody", sdk.HashSHA1); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if !c.SCRAM() || !c.Writable() {
		t.Fatal("two SCRAM read-write backends make a SCRAM, writable chain")
	}

	// New accounts go to the first writable backend; names known anywhere are taken.
	must(t, c.Create(ctx, "carol", "pw"))
	if ok, _ := staff.UserExists(ctx, "example.com", "carol"); !ok {
		t.Fatal("new account not created in the first backend")
	}
	if err := c.Create(ctx, "builder", "pw"); !errors.Is(err, sdk.ErrExists) {
		t.Fatalf("creating a name the second backend knows: %v", err)
	}
	// Password changes and deletion go where the account lives.
	must(t, c.SetPassword(ctx, "builder", "new-pw"))
	if ok, _ := bots.CheckPassword(ctx, "example.com", "builder", "new-pw"); !ok {
		t.Fatal("password not changed in the backend that owns the account")
	}
	must(t, c.Delete(ctx, "builder"))
	if err := c.Delete(ctx, "builder"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	users, err := c.List(ctx)
	if err != nil || len(users) != 2 || users[0] != "alice" || users[1] != "carol" {
		t.Fatalf("List = %v, %v", users, err)
	}
}

func TestEmptyChain(t *testing.T) {
	c := NewChain("example.com", nil)
	if c.SCRAM() || c.Writable() {
		t.Fatal("an empty chain offers nothing")
	}
	if err := c.Create(context.Background(), "x", "y"); !errors.Is(err, sdk.ErrReadOnly) {
		t.Fatalf("Create on an empty chain: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// readOnly makes a store look like a directory: read-only auth that can
// list its users or not.
type readOnly struct {
	named
	list bool
}

func (r readOnly) Capabilities() sdk.Capabilities {
	c := r.named.Capabilities()
	c.Auth = sdk.AuthCapabilities{Access: sdk.AccessRead, List: r.list}
	return c
}

func TestChainListEach(t *testing.T) {
	ctx := context.Background()
	dir, staff, legacy := open(t, "directory"), open(t, "staff"), open(t, "legacy")
	must(t, dir.CreateUser(ctx, "example.com", "alice", "pw"))
	must(t, dir.CreateUser(ctx, "example.com", "dave", "pw"))
	must(t, staff.CreateUser(ctx, "example.com", "alice", "pw")) // shadowed by the directory
	must(t, staff.CreateUser(ctx, "example.com", "carol", "pw"))
	must(t, legacy.CreateUser(ctx, "example.com", "erin", "pw"))
	c := NewChain("example.com", []Backend{readOnly{dir, true}, staff, readOnly{legacy, false}})

	ls, err := c.ListEach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(ls)
	want := "[{directory false true [alice dave]} {staff true true [carol]} {legacy false false []}]"
	if got != want {
		t.Errorf("ListEach =\n %s\nwant\n %s", got, want)
	}
	if users, err := c.List(ctx); err != nil || fmt.Sprint(users) != "[alice carol dave]" {
		t.Errorf("List = %v, %v", users, err)
	}
}
