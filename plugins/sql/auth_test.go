package sqlbackend

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/koi-im/koi/sdk"
)

const host = "example.org"

func TestAccounts(t *testing.T) { forEachDB(t, testAccounts) }

func testAccounts(t *testing.T, s *Store) {
	ctx := t.Context()

	if ok, err := s.UserExists(ctx, host, "ann"); ok || err != nil {
		t.Errorf("UserExists before create = %v, %v", ok, err)
	}
	if err := s.CreateUser(ctx, host, "ann", "first"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.UserExists(ctx, host, "ann"); !ok || err != nil {
		t.Errorf("UserExists = %v, %v; want true", ok, err)
	}
	if ok, err := s.UserExists(ctx, "other.example", "ann"); ok || err != nil {
		t.Errorf("UserExists on another host = %v, %v; want false", ok, err)
	}
	wantErr(t, "CreateUser twice", s.CreateUser(ctx, host, "ann", "again"), sdk.ErrExists)

	check := func(pw string, want bool) {
		t.Helper()
		if ok, err := s.CheckPassword(ctx, host, "ann", pw); ok != want || err != nil {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	check("first", true)
	check("First", false)
	check("", false)
	// The duplicate CreateUser did not touch the credentials.
	check("again", false)

	if err := s.SetPassword(ctx, host, "ann", "second"); err != nil {
		t.Fatal(err)
	}
	check("first", false)
	check("second", true)
	wantErr(t, "SetPassword of unknown user", s.SetPassword(ctx, host, "bob", "x"), sdk.ErrNotFound)

	if ok, err := s.CheckPassword(ctx, host, "nobody", "second"); ok || err != nil {
		t.Errorf("CheckPassword of unknown user = %v, %v; want false, nil", ok, err)
	}

	if err := s.DeleteUser(ctx, host, "ann"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.UserExists(ctx, host, "ann"); ok || err != nil {
		t.Errorf("UserExists after delete = %v, %v", ok, err)
	}
	for _, h := range scramHashes() {
		_, err := s.SCRAMCredentials(ctx, host, "ann", h)
		wantErr(t, "SCRAMCredentials after delete", err, sdk.ErrNotFound)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM koi_scram_credentials").Scan(&n); err != nil || n != 0 {
		t.Errorf("credential rows after delete: %d, %v", n, err)
	}
	wantErr(t, "DeleteUser twice", s.DeleteUser(ctx, host, "ann"), sdk.ErrNotFound)

	// The name is free again.
	if err := s.CreateUser(ctx, host, "ann", "third"); err != nil {
		t.Errorf("CreateUser after delete: %v", err)
	}
}

func TestSCRAMCredentials(t *testing.T) { forEachDB(t, testSCRAMCredentials) }

func testSCRAMCredentials(t *testing.T, s *Store) {
	ctx := t.Context()
	const pw = "pässwörd ⌘"
	if err := s.CreateUser(ctx, host, "ann", pw); err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int{sdk.HashSHA1: 20, sdk.HashSHA256: 32}
	var salts [][]byte
	for _, h := range scramHashes() {
		c, err := s.SCRAMCredentials(ctx, host, "ann", h)
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		if !sdk.CheckSCRAMPassword(pw, h, c) {
			t.Errorf("%s credentials do not verify the password", h)
		}
		if sdk.CheckSCRAMPassword(pw+"x", h, c) {
			t.Errorf("%s credentials verify a wrong password", h)
		}
		if c.Iterations != sdk.DefaultSCRAMIterations {
			t.Errorf("%s iterations %d, want %d", h, c.Iterations, sdk.DefaultSCRAMIterations)
		}
		if len(c.StoredKey) != sizes[h] || len(c.ServerKey) != sizes[h] || len(c.Salt) < 16 {
			t.Errorf("%s sizes: stored %d server %d salt %d", h, len(c.StoredKey), len(c.ServerKey), len(c.Salt))
		}
		salts = append(salts, c.Salt)
	}
	if bytes.Equal(salts[0], salts[1]) {
		t.Error("SHA-1 and SHA-256 credentials share a salt")
	}
	_, err := s.SCRAMCredentials(ctx, host, "ann", "MD5")
	wantErr(t, "SCRAMCredentials MD5", err, sdk.ErrInvalid)
	_, err = s.SCRAMCredentials(ctx, host, "bob", sdk.HashSHA256)
	wantErr(t, "SCRAMCredentials of unknown user", err, sdk.ErrNotFound)
}

// The password must not be anywhere in the database files, WAL included.
func TestPasswordNotStored(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()
	pws := []string{"Tr0ub4dor&3-unique-marker", "correct horse battery staple 42"}
	if err := s.CreateUser(ctx, host, "ann", pws[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, host, "ann", pws[1]); err != nil {
		t.Fatal(err)
	}
	// Prove the search can see a value that is stored.
	marker := "visible-marker-5f3a"
	if err := s.SetVCard(ctx, "ann@example.org", marker); err != nil {
		t.Fatal(err)
	}
	search := func(when string) {
		files, err := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("database files: %v, %v", files, err)
		}
		var all []byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		if !bytes.Contains(all, []byte(marker)) {
			t.Fatalf("%s: stored marker not found in %v: the search is blind", when, files)
		}
		for _, pw := range pws {
			if bytes.Contains(all, []byte(pw)) {
				t.Errorf("%s: password %q found in the database files", when, pw)
			}
		}
	}
	search("open, with WAL")
	s.Close()
	search("closed")
}

func TestListUsers(t *testing.T) { forEachDB(t, testListUsers) }

func testListUsers(t *testing.T, s *Store) {
	ctx := t.Context()
	if got, err := s.ListUsers(ctx, host); err != nil || len(got) != 0 {
		t.Errorf("ListUsers of empty host = %v, %v", got, err)
	}
	users := []string{"zoë", "bob", "ann", "émile", "李", "Bob"}
	for _, u := range users {
		if err := s.CreateUser(ctx, host, u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateUser(ctx, "other.example", "carl", "pw"); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListUsers(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(users)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ListUsers = %q, want %q", got, want)
	}
}

func TestAuthInvalid(t *testing.T) { forEachDB(t, testAuthInvalid) }

func testAuthInvalid(t *testing.T, s *Store) {
	ctx := t.Context()
	long := strings.Repeat("é", maxKeyChars+1)
	bad := []struct{ name, host, user string }{
		{"empty host", "", "ann"},
		{"empty user", host, ""},
		{"long user", host, long},
		{"invalid utf-8", host, "a\xffb"},
		{"nul", host, "a\x00b"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			wantErr(t, "CreateUser", s.CreateUser(ctx, b.host, b.user, "pw"), sdk.ErrInvalid)
			wantErr(t, "SetPassword", s.SetPassword(ctx, b.host, b.user, "pw"), sdk.ErrInvalid)
			wantErr(t, "DeleteUser", s.DeleteUser(ctx, b.host, b.user), sdk.ErrInvalid)
			_, err := s.UserExists(ctx, b.host, b.user)
			wantErr(t, "UserExists", err, sdk.ErrInvalid)
			_, err = s.CheckPassword(ctx, b.host, b.user, "pw")
			wantErr(t, "CheckPassword", err, sdk.ErrInvalid)
			_, err = s.SCRAMCredentials(ctx, b.host, b.user, sdk.HashSHA256)
			wantErr(t, "SCRAMCredentials", err, sdk.ErrInvalid)
		})
	}
	_, err := s.ListUsers(ctx, "")
	wantErr(t, "ListUsers empty host", err, sdk.ErrInvalid)
	wantErr(t, "CreateUser empty password", s.CreateUser(ctx, host, "ann", ""), sdk.ErrInvalid)
	wantErr(t, "CreateUser unpreparable password", s.CreateUser(ctx, host, "ann", "a\u0007b"), sdk.ErrInvalid)
	if ok, _ := s.UserExists(ctx, host, "ann"); ok {
		t.Error("a rejected CreateUser left an account behind")
	}
	// The limit itself is accepted.
	if err := s.CreateUser(ctx, host, strings.Repeat("é", maxKeyChars), "pw"); err != nil {
		t.Errorf("CreateUser with a %d-character name: %v", maxKeyChars, err)
	}
}
