package sdktest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/koi-im/koi/sdk"
)

var scramHashes = []struct {
	name string
	size int // digest size: the length of StoredKey and ServerKey
}{
	{sdk.HashSHA1, 20},
	{sdk.HashSHA256, 32},
}

// otherHost is a second virtual host, to check that accounts are per host.
func (e *env) otherHost() string { return "other." + e.o.Host }

func (e *env) auth() sdk.Auth {
	e.t.Helper()
	a, ok := e.b.(sdk.Auth)
	if !ok {
		e.t.Fatal("auth is declared but the backend does not implement sdk.Auth")
	}
	return a
}

func (e *env) authAdmin() sdk.AuthAdmin {
	e.t.Helper()
	a, ok := e.b.(sdk.AuthAdmin)
	if !ok {
		e.t.Fatal("auth is declared read-write but the backend does not implement sdk.AuthAdmin")
	}
	return a
}

// wantPassword checks CheckPassword's answer for password.
func (e *env) wantPassword(host, user, password string, want bool) {
	e.t.Helper()
	ok, err := e.auth().CheckPassword(e.ctx, host, user, password)
	if err != nil || ok != want {
		e.t.Errorf("CheckPassword(%q, %q, %q) = %v, %v; want %v, nil%s",
			host, user, password, ok, describeErr(err), want, notAnError(err, want))
	}
}

// wantExists checks UserExists's answer.
func (e *env) wantExists(host, user string, want bool) {
	e.t.Helper()
	ok, err := e.auth().UserExists(e.ctx, host, user)
	if err != nil || ok != want {
		e.t.Errorf("UserExists(%q, %q) = %v, %v; want %v, nil%s",
			host, user, ok, describeErr(err), want, notAnError(err, want))
	}
}

// notAnError explains why a false answer must come without an error: koi
// reads an error as a failed check, not as "no".
func notAnError(err error, want bool) string {
	if err == nil || want {
		return ""
	}
	return " (an unknown user or a wrong password is an answer, false, not an error; not even sdk.ErrNotFound)"
}

// wantSCRAM checks that the stored SCRAM credentials of user match
// password and no other, for every hash.
func (e *env) wantSCRAM(host, user, password string) {
	e.t.Helper()
	for _, h := range scramHashes {
		c, err := e.auth().SCRAMCredentials(e.ctx, host, user, h.name)
		if !e.noErr(fmt.Sprintf("SCRAMCredentials(%q, %s)", user, h.name), err) {
			continue
		}
		switch {
		case len(c.Salt) == 0:
			e.t.Errorf("SCRAMCredentials(%q, %s): empty salt, want the salt the keys were derived with", user, h.name)
		case c.Iterations < 1:
			e.t.Errorf("SCRAMCredentials(%q, %s): iteration count %d, want at least 1", user, h.name, c.Iterations)
		case len(c.StoredKey) != h.size || len(c.ServerKey) != h.size:
			e.t.Errorf("SCRAMCredentials(%q, %s): StoredKey %d bytes, ServerKey %d bytes, want %d each",
				user, h.name, len(c.StoredKey), len(c.ServerKey), h.size)
		case !sdk.CheckSCRAMPassword(password, h.name, c):
			e.t.Errorf("SCRAMCredentials(%q, %s) do not verify the user's password", user, h.name)
		case sdk.CheckSCRAMPassword(password+"x", h.name, c):
			e.t.Errorf("SCRAMCredentials(%q, %s) verify a wrong password", user, h.name)
		default:
			if c.Iterations < sdk.DefaultSCRAMIterations {
				e.t.Logf("SCRAMCredentials(%q, %s): %d iterations, fewer than the %d RFC 7677 asks for",
					user, h.name, c.Iterations, sdk.DefaultSCRAMIterations)
			}
		}
	}
}

func checkAuthUnknownUser(e *env) {
	host, user := e.o.Host, e.user("nobody")
	e.wantExists(host, user, false)
	e.wantPassword(host, user, "secret", false)
	if e.caps.Auth.SCRAM {
		for _, h := range scramHashes {
			_, err := e.auth().SCRAMCredentials(e.ctx, host, user, h.name)
			e.wantErr(fmt.Sprintf("SCRAMCredentials of an unknown user (%s)", h.name), err, sdk.ErrNotFound)
		}
	}
}

func checkAuthInvalid(e *env) {
	host, user := e.o.Host, e.user("alice")
	for _, c := range []struct{ what, host, user string }{
		{"empty user", host, ""},
		{"empty host", "", user},
	} {
		_, err := e.auth().UserExists(e.ctx, c.host, c.user)
		e.wantErr("UserExists with "+c.what, err, sdk.ErrInvalid)
		_, err = e.auth().CheckPassword(e.ctx, c.host, c.user, "secret")
		e.wantErr("CheckPassword with "+c.what, err, sdk.ErrInvalid)
		if e.caps.Auth.SCRAM {
			_, err = e.auth().SCRAMCredentials(e.ctx, c.host, c.user, sdk.HashSHA256)
			e.wantErr("SCRAMCredentials with "+c.what, err, sdk.ErrInvalid)
		}
		if !e.caps.Auth.Access.Writable() {
			continue
		}
		a := e.authAdmin()
		e.wantErr("CreateUser with "+c.what, a.CreateUser(e.ctx, c.host, c.user, "secret"), sdk.ErrInvalid)
		e.wantErr("SetPassword with "+c.what, a.SetPassword(e.ctx, c.host, c.user, "secret"), sdk.ErrInvalid)
		e.wantErr("DeleteUser with "+c.what, a.DeleteUser(e.ctx, c.host, c.user), sdk.ErrInvalid)
	}
}

func checkAuthExistingUser(e *env) {
	if e.o.ExistingUser == "" {
		e.t.Skip("Options.ExistingUser is not set: no account to check read-only auth with")
	}
	host, user, pw := e.o.Host, e.o.ExistingUser, e.o.ExistingPassword
	e.wantExists(host, user, true)
	e.wantPassword(host, user, pw, true)
	e.wantPassword(host, user, pw+"x", false)
	if e.caps.Auth.SCRAM {
		e.wantSCRAM(host, user, pw)
	}
	if e.caps.Auth.List {
		l, ok := e.b.(sdk.UserLister)
		if !ok {
			e.t.Fatal("auth listing is declared but the backend does not implement sdk.UserLister")
		}
		got, err := l.ListUsers(e.ctx, host)
		if !e.noErr("ListUsers("+host+")", err) {
			return
		}
		if !slices.IsSorted(got) {
			e.t.Errorf("ListUsers(%q) is not sorted: %q", host, got)
		}
		if !slices.Contains(got, user) {
			e.t.Errorf("ListUsers(%q) = %q does not list the existing user %q", host, got, user)
		}
	}
}

func checkAuthAccounts(e *env) {
	a := e.authAdmin()
	host, user := e.o.Host, e.user("alice")

	e.ok("CreateUser", a.CreateUser(e.ctx, host, user, "first secret"))
	e.wantErr("CreateUser of an existing user", a.CreateUser(e.ctx, host, user, "other secret"), sdk.ErrExists)
	e.wantExists(host, user, true)
	e.wantExists(host, e.user("bob"), false)
	e.wantExists(e.otherHost(), user, false)
	e.wantPassword(host, user, "first secret", true)
	e.wantPassword(host, user, "other secret", false) // the refused CreateUser changed nothing
	e.wantPassword(host, user, "first secreT", false)
	e.wantPassword(e.otherHost(), user, "first secret", false)

	e.ok("SetPassword", a.SetPassword(e.ctx, host, user, "second secret"))
	e.wantPassword(host, user, "first secret", false)
	e.wantPassword(host, user, "second secret", true)
	e.wantErr("SetPassword of an unknown user", a.SetPassword(e.ctx, host, e.user("bob"), "secret"), sdk.ErrNotFound)
	e.wantErr("SetPassword of a user of another host", a.SetPassword(e.ctx, e.otherHost(), user, "secret"), sdk.ErrNotFound)
	e.wantExists(e.otherHost(), user, false)

	e.wantErr("DeleteUser of a user of another host", a.DeleteUser(e.ctx, e.otherHost(), user), sdk.ErrNotFound)
	e.ok("DeleteUser", a.DeleteUser(e.ctx, host, user))
	e.wantExists(host, user, false)
	e.wantPassword(host, user, "second secret", false)
	if e.caps.Auth.SCRAM {
		_, err := e.auth().SCRAMCredentials(e.ctx, host, user, sdk.HashSHA256)
		e.wantErr("SCRAMCredentials of a deleted user", err, sdk.ErrNotFound)
	}
	e.wantErr("DeleteUser of a deleted user", a.DeleteUser(e.ctx, host, user), sdk.ErrNotFound)
	e.wantErr("SetPassword of a deleted user", a.SetPassword(e.ctx, host, user, "secret"), sdk.ErrNotFound)

	// The name is free again.
	e.ok("CreateUser after DeleteUser", a.CreateUser(e.ctx, host, user, "third secret"))
	e.wantPassword(host, user, "third secret", true)
	e.wantPassword(host, user, "second secret", false)
}

func checkAuthSCRAM(e *env) {
	a := e.authAdmin()
	host, user := e.o.Host, e.user("carol")
	e.ok("CreateUser", a.CreateUser(e.ctx, host, user, "scram secret"))
	e.wantSCRAM(host, user, "scram secret")
	e.ok("SetPassword", a.SetPassword(e.ctx, host, user, "new scram secret"))
	e.wantSCRAM(host, user, "new scram secret")
	_, err := e.auth().SCRAMCredentials(e.ctx, e.otherHost(), user, sdk.HashSHA256)
	e.wantErr("SCRAMCredentials of a user of another host", err, sdk.ErrNotFound)
}

// ownUsers returns the users of list made by this subtest.
func (e *env) ownUsers(list []string) []string {
	var own []string
	for _, u := range list {
		if strings.HasSuffix(u, "-"+e.id) {
			own = append(own, u)
		}
	}
	return own
}

// wantUsers checks ListUsers(host): sorted, and listing exactly want of
// this subtest's users.
func (e *env) wantUsers(host string, want ...string) {
	e.t.Helper()
	got, err := e.authAdmin().ListUsers(e.ctx, host)
	if !e.noErr("ListUsers("+host+")", err) {
		return
	}
	if !slices.IsSorted(got) {
		e.t.Errorf("ListUsers(%q) is not sorted: %q", host, got)
	}
	want = slices.Sorted(slices.Values(want))
	if own := e.ownUsers(got); !slices.Equal(own, want) {
		e.t.Errorf("ListUsers(%q) lists %q of this check's users, want %q", host, own, want)
	}
}

func checkAuthListUsers(e *env) {
	a := e.authAdmin()
	host, other := e.o.Host, e.otherHost()
	e.wantUsers(host)
	names := []string{e.user("mallory"), e.user("bob"), e.user("alice"), e.user("zed"), e.user("2nd")}
	for _, u := range names {
		e.ok("CreateUser "+u, a.CreateUser(e.ctx, host, u, "secret"))
	}
	e.ok("CreateUser on another host", a.CreateUser(e.ctx, other, e.user("olga"), "secret"))
	e.wantUsers(host, names...)
	e.wantUsers(other, e.user("olga"))
	e.ok("DeleteUser", a.DeleteUser(e.ctx, host, e.user("bob")))
	e.wantUsers(host, slices.DeleteFunc(names, func(u string) bool { return u == e.user("bob") })...)
}

// unicodeUsers are local parts as the core sends them: already normalised
// (UsernameCaseMapped: NFC, lower case), so a backend must store them as
// they are. Each pair differs only where a careless collation would
// fold them together.
func unicodeUsers() [][2]string {
	return [][2]string{
		{"zo\u00eb", "zoe"},              // zoë: an accent-insensitive collation equates them
		{"stra\u00dfe", "strasse"},       // straße
		{"\u7528\u6237", "\u7528"},       // 用户, 用
		{"\u00e5sa", "\u00e4sa"},         // åsa, äsa
		{"\u0451\u0436", "\u0435\u0436"}, // ёж, еж
	}
}

func checkAuthUnicode(e *env) {
	a := e.authAdmin()
	host := e.o.Host
	var created []string
	for i, pair := range unicodeUsers() {
		u, twin := e.user(pair[0]), e.user(pair[1])
		pw := fmt.Sprintf("p\u00e4ssw\u00f6rd-\u2713-%d", i)
		e.ok("CreateUser "+u, a.CreateUser(e.ctx, host, u, pw))
		created = append(created, u)
		e.wantExists(host, u, true)
		e.wantExists(host, twin, false)
		e.wantPassword(host, u, pw, true)
		e.wantPassword(host, u, "passwort", false)
		if e.caps.Auth.SCRAM {
			e.wantSCRAM(host, u, pw)
		}
		// The twin is a different account.
		if err := a.CreateUser(e.ctx, host, twin, "twin secret"); !e.noErr(fmt.Sprintf("CreateUser %q beside %q", twin, u), err) {
			continue
		}
		created = append(created, twin)
		e.wantPassword(host, u, pw, true)
		e.wantPassword(host, twin, "twin secret", true)
		e.wantPassword(host, twin, pw, false)
	}
	e.wantUsers(host, created...)
}

func checkAuthConcurrentCreate(e *env) {
	a := e.authAdmin()
	host, user := e.o.Host, e.user("race")
	n := e.o.Concurrency
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer e.recoverPanic()
			<-start
			errs[i] = a.CreateUser(e.ctx, host, user, fmt.Sprintf("secret %d", i))
		})
	}
	close(start)
	wg.Wait()
	var winners []int
	for i, err := range errs {
		switch {
		case err == nil:
			winners = append(winners, i)
		case !errors.Is(err, sdk.ErrExists):
			e.t.Errorf("concurrent CreateUser %d: %v, want nil or an error wrapping sdk.ErrExists", i, err)
		}
	}
	switch len(winners) {
	case 0:
		e.t.Fatalf("CreateUser of one name from %d goroutines: none succeeded", n)
	case 1:
		for i := range n {
			e.wantPassword(host, user, fmt.Sprintf("secret %d", i), i == winners[0])
		}
	default:
		e.t.Errorf("CreateUser of one name from %d goroutines: calls %v all succeeded, want exactly one", n, winners)
	}
}
