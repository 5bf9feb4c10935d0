package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/koi-im/koi/core/auth"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/sdk"
)

func runKoictl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// A config koictl can load; its plugin is never started by the tests.
func testConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "koi.hcl")
	err := os.WriteFile(path, []byte(`
listen "c2s" { address = "127.0.0.1:5222" }
plugin "store" { command = "/nonexistent/koi-backend-sql" }
host "localhost" { auth = "store" }
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}, {"user", "--help"}, {"-config", "x.hcl", "-h"}} {
		code, out, errOut := runKoictl(t, args...)
		if code != 0 || errOut != "" {
			t.Errorf("koictl %q: exit %d, stderr %q; want 0 and nothing", args, code, errOut)
		}
		for _, cmd := range []string{"user add", "user passwd", "user del", "user list", "db migrate", "-config"} {
			if !strings.Contains(out, cmd) {
				t.Errorf("koictl %q does not mention %q:\n%s", args, cmd, out)
			}
		}
	}
}

func TestWrongCommandLines(t *testing.T) {
	cfg := testConfig(t)
	for _, tc := range []struct {
		args []string
		say  string
	}{
		{nil, ""},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"frobnicate", "x"}, `unknown command "frobnicate"`},
		{[]string{"user"}, "user what?"},
		{[]string{"-bogus", "user", "list"}, "flag provided but not defined"},
		{[]string{"-config", cfg, "user", "frobnicate"}, "unknown command user frobnicate"},
		{[]string{"-config", cfg, "user", "del"}, "wrong arguments"},
		{[]string{"-config", cfg, "db", "frobnicate"}, "unknown command db frobnicate"},
	} {
		code, out, errOut := runKoictl(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "user list [HOST]") || !strings.Contains(errOut, tc.say) {
			t.Errorf("koictl %q: exit %d, stdout %q, stderr:\n%s\nwant exit 2, the usage and %q on stderr", tc.args, code, out, errOut, tc.say)
		}
	}
}

// fakeAuth is an auth backend with a fixed list of accounts.
type fakeAuth struct {
	name  string
	caps  sdk.AuthCapabilities
	users []string
}

func (f fakeAuth) Name() string                                              { return f.name }
func (f fakeAuth) Capabilities() sdk.Capabilities                            { return sdk.Capabilities{Auth: f.caps} }
func (f fakeAuth) CreateUser(context.Context, string, string, string) error  { return sdk.ErrReadOnly }
func (f fakeAuth) SetPassword(context.Context, string, string, string) error { return sdk.ErrReadOnly }
func (f fakeAuth) DeleteUser(context.Context, string, string) error          { return sdk.ErrReadOnly }
func (f fakeAuth) CheckPassword(context.Context, string, string, string) (bool, error) {
	return false, nil
}
func (f fakeAuth) SCRAMCredentials(context.Context, string, string, string) (sdk.SCRAMCredentials, error) {
	return sdk.SCRAMCredentials{}, sdk.ErrNotFound
}
func (f fakeAuth) UserExists(_ context.Context, _, user string) (bool, error) {
	return strings.Contains(" "+strings.Join(f.users, " ")+" ", " "+user+" "), nil
}
func (f fakeAuth) ListUsers(context.Context, string) ([]string, error) {
	if !f.caps.CanList() {
		return nil, sdk.ErrReadOnly
	}
	return f.users, nil
}

func TestListUsers(t *testing.T) {
	ro := sdk.AuthCapabilities{Access: sdk.AccessRead}
	roList := sdk.AuthCapabilities{Access: sdk.AccessRead, List: true}
	rw := sdk.AuthCapabilities{Access: sdk.AccessReadWrite}
	dir := fakeAuth{"directory", ro, []string{"alice", "bob"}}
	listingDir := fakeAuth{"directory", roList, []string{"alice", "bob"}}
	store := fakeAuth{"store", rw, []string{"alice", "carol"}}
	empty := fakeAuth{"store", rw, nil}
	for _, tc := range []struct {
		name        string
		chain       []auth.Backend
		wantErr     string
		out         string
		stderrHas   []string
		stderrEmpty bool
	}{
		{name: "no auth backend", wantErr: "host example.org has no auth backend"},
		{name: "directory that cannot list", chain: []auth.Backend{dir},
			wantErr: `the accounts of host example.org live in plugin "directory" (read-only), which cannot list them`},
		{name: "directory that lists", chain: []auth.Backend{listingDir},
			out: "alice@example.org\nbob@example.org\n", stderrHas: []string{`plugin "directory" live in a directory`}},
		{name: "store", chain: []auth.Backend{store},
			out: "alice@example.org\ncarol@example.org\n", stderrEmpty: true},
		{name: "empty store", chain: []auth.Backend{empty},
			stderrHas: []string{`plugin "store" has no accounts of host example.org`}},
		{name: "chain with a directory that cannot list", chain: []auth.Backend{dir, store},
			out:       "alice@example.org\tstore\ncarol@example.org\tstore\n",
			stderrHas: []string{`not listed: the accounts in plugin "directory"`}},
		{name: "chain with a listing directory", chain: []auth.Backend{listingDir, store},
			out: "alice@example.org\tdirectory\nbob@example.org\tdirectory\ncarol@example.org\tstore\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &modules.Host{Name: "example.org", Auth: auth.NewChain("example.org", tc.chain)}
			var out, errOut bytes.Buffer
			err := listUsers(context.Background(), h, &out, &errOut)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || out.Len() != 0 {
					t.Fatalf("listUsers = %v, stdout %q; want the error %q and no output", err, out.String(), tc.wantErr)
				}
				return
			}
			if err != nil || out.String() != tc.out {
				t.Errorf("listUsers = %v, stdout:\n%s\nwant:\n%s", err, out.String(), tc.out)
			}
			for _, s := range tc.stderrHas {
				if !strings.Contains(errOut.String(), s) {
					t.Errorf("stderr %q does not say %q", errOut.String(), s)
				}
			}
			if tc.stderrEmpty && errOut.Len() != 0 {
				t.Errorf("stderr: %q", errOut.String())
			}
		})
	}
}
