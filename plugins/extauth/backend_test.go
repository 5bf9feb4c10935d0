package extauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

func wantPassword(t *testing.T, b *Backend, user, password string, want bool) {
	t.Helper()
	ok, err := b.CheckPassword(ctxT(t), testHost, user, password)
	if err != nil || ok != want {
		t.Errorf("CheckPassword(%q, %q) = %v, %v; want %v", user, password, ok, err, want)
	}
}

func wantExists(t *testing.T, b *Backend, user string, want bool) {
	t.Helper()
	ok, err := b.UserExists(ctxT(t), testHost, user)
	if err != nil || ok != want {
		t.Errorf("UserExists(%q) = %v, %v; want %v", user, ok, err, want)
	}
}

func TestAuth(t *testing.T) {
	const odd = "p\u00e4ss:w\u00f6rd:\u2713 \u7528"
	b, _ := open(t, map[string]string{
		"alice@" + testHost:    "secret",
		"zo\u00eb@" + testHost: odd,
	}, nil)
	if c := b.Capabilities().Auth; c.Access != sdk.AccessRead || c.SCRAM {
		t.Errorf("Capabilities().Auth = %+v, want read-only without SCRAM", c)
	}
	wantPassword(t, b, "alice", "secret", true)
	wantPassword(t, b, "alice", "secreT", false)
	wantPassword(t, b, "alice", "", false)
	wantPassword(t, b, "bob", "secret", false)
	wantPassword(t, b, "zo\u00eb", odd, true)
	wantPassword(t, b, "zo\u00eb", "p\u00e4ss", false)
	wantPassword(t, b, "zoe", odd, false)
	wantExists(t, b, "alice", true)
	wantExists(t, b, "zo\u00eb", true)
	wantExists(t, b, "bob", false)
	if ok, err := b.UserExists(ctxT(t), "other.example", "alice"); err != nil || ok {
		t.Errorf("UserExists on another host = %v, %v", ok, err)
	}

	for _, c := range []struct{ host, user string }{
		{testHost, "alice:secret"}, {testHost, "alice\n"}, {testHost + ":x", "alice"}, {"", "alice"}, {testHost, ""},
	} {
		if _, err := b.UserExists(ctxT(t), c.host, c.user); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("UserExists(%q, %q) = %v, want sdk.ErrInvalid", c.host, c.user, err)
		}
		if _, err := b.CheckPassword(ctxT(t), c.host, c.user, "secret"); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("CheckPassword(%q, %q) = %v, want sdk.ErrInvalid", c.host, c.user, err)
		}
		if _, err := b.CheckPassword(ctxT(t), c.host, c.user, ""); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("CheckPassword(%q, %q) with an empty password = %v, want sdk.ErrInvalid", c.host, c.user, err)
		}
	}

	// A read-only backend refuses changes without asking the program.
	for name, err := range map[string]error{
		"CreateUser":  b.CreateUser(ctxT(t), testHost, "bob", "secret"),
		"SetPassword": b.SetPassword(ctxT(t), testHost, "alice", "new"),
		"DeleteUser":  b.DeleteUser(ctxT(t), testHost, "alice"),
	} {
		if !errors.Is(err, sdk.ErrReadOnly) {
			t.Errorf("%s on a read-only backend = %v, want sdk.ErrReadOnly", name, err)
		}
	}
	wantPassword(t, b, "alice", "secret", true)
	wantExists(t, b, "bob", false)
}

func TestWritable(t *testing.T) {
	b, _ := open(t, map[string]string{"alice@" + testHost: "secret"}, func(s *Settings) { s.Writable = true })
	ctx := ctxT(t)
	if c := b.Capabilities().Auth; c.Access != sdk.AccessReadWrite || c.SCRAM {
		t.Errorf("Capabilities().Auth = %+v, want read-write without SCRAM", c)
	}

	const pw = "a:b:\u00e9\u2713"
	if err := b.CreateUser(ctx, testHost, "bob", pw); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	wantExists(t, b, "bob", true)
	wantPassword(t, b, "bob", pw, true)
	if err := b.CreateUser(ctx, testHost, "bob", "other"); !errors.Is(err, sdk.ErrExists) {
		t.Errorf("CreateUser of an existing user = %v, want sdk.ErrExists", err)
	}
	wantPassword(t, b, "bob", pw, true)

	if err := b.SetPassword(ctx, testHost, "bob", "new:one"); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	wantPassword(t, b, "bob", pw, false)
	wantPassword(t, b, "bob", "new:one", true)
	if err := b.SetPassword(ctx, testHost, "carol", "x"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("SetPassword of an unknown user = %v, want sdk.ErrNotFound", err)
	}
	if err := b.SetPassword(ctx, testHost, "bob", ""); !errors.Is(err, sdk.ErrInvalid) {
		t.Errorf("SetPassword to an empty password = %v, want sdk.ErrInvalid", err)
	}

	if err := b.DeleteUser(ctx, testHost, "bob"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	wantExists(t, b, "bob", false)
	if err := b.DeleteUser(ctx, testHost, "bob"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("DeleteUser of a deleted user = %v, want sdk.ErrNotFound", err)
	}
	if _, err := b.ListUsers(ctx, testHost); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ListUsers = %v, want errors.ErrUnsupported", err)
	}
	if err := b.CreateUser(ctx, testHost, "bad:name", "x"); !errors.Is(err, sdk.ErrInvalid) {
		t.Errorf("CreateUser of a name with ':' = %v, want sdk.ErrInvalid", err)
	}
}

// A 0 that the account's state does not explain is the program refusing
// the change.
func TestWritableRefused(t *testing.T) {
	// The program answers 0 to everything.
	b, _ := open(t, nil, func(s *Settings) {
		s.Program, s.Args = "perl", []string{"-e", `$| = 1; while (read(STDIN, $n, 2) == 2) { read(STDIN, $r, unpack("n", $n)); print pack("nn", 2, 0) }`}
		s.Writable = true
	})
	if err := b.CreateUser(ctxT(t), testHost, "bob", "x"); !errors.Is(err, sdk.ErrReadOnly) {
		t.Errorf("CreateUser refused by the program = %v, want sdk.ErrReadOnly", err)
	}
}

// firstProcess returns the program of the pool's first free instance.
func firstProcess(t *testing.T, b *Backend) *process {
	t.Helper()
	in := <-b.pool.idle
	defer func() { b.pool.idle <- in }()
	if in.proc == nil {
		t.Fatal("no program running")
	}
	return in.proc
}

func TestProgramDies(t *testing.T) {
	b, logs := open(t, map[string]string{"alice@" + testHost: "secret"}, nil)
	old := firstProcess(t, b)
	start := time.Now()
	_, err := b.CheckPassword(ctxT(t), testHost, "die", "x")
	if !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("CheckPassword while the program dies = %v, want sdk.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the call took %v to notice the death", d)
	}
	select {
	case <-old.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the program that died was not reaped")
	}
	// The next call restarts it (after the first backoff step).
	wantPassword(t, b, "alice", "secret", true)
	if p := firstProcess(t, b); p == old {
		t.Error("the dead program was not replaced")
	}
	logs.waitLog(t, "extauth program restarted")
	logs.waitLog(t, `extauth program exited: instance=0 pid=`)
	logs.waitLog(t, `status="exit status 3"`) // how the example program dies
	if err := b.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping once the program works again: %v", err)
	}
}

func TestProgramHangs(t *testing.T) {
	b, logs := open(t, map[string]string{"alice@" + testHost: "secret"}, func(s *Settings) { s.Timeout = 2 * time.Second })
	old := firstProcess(t, b)
	start := time.Now()
	_, err := b.UserExists(ctxT(t), testHost, "hang")
	if !errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("UserExists while the program hangs = %v, want sdk.ErrUnavailable, not answered in time", err)
	}
	if d := time.Since(start); d < 2*time.Second || d > 5*time.Second {
		t.Errorf("the call gave up after %v, want the 2s timeout", d)
	}
	select {
	case <-old.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the hung program was not killed")
	}
	logs.waitLog(t, "killing it")
	wantPassword(t, b, "alice", "secret", true)
}

// A caller that gives up (koi's call_timeout, a closed stream) frees the
// instance at once; the program, which may still answer, is replaced.
func TestCallerGivesUp(t *testing.T) {
	b, _ := open(t, map[string]string{"alice@" + testHost: "secret"}, func(s *Settings) { s.Timeout = time.Minute })
	old := firstProcess(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := b.UserExists(ctx, testHost, "hang"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("UserExists abandoned by its caller = %v, want sdk.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the abandoned call returned after %v", d)
	}
	select {
	case <-old.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the program of the abandoned call was not killed")
	}
	wantPassword(t, b, "alice", "secret", true)
}

// Each copy serves one request at a time; concurrent requests spread over
// the copies.
func TestPool(t *testing.T) {
	const instances, calls = 4, 16
	users := map[string]string{}
	for i := range calls {
		users[fmt.Sprintf("u%d@%s", i, testHost)] = fmt.Sprintf("pw:%d", i)
	}
	b, logs := open(t, users, func(s *Settings) { s.Instances = instances })
	var wg sync.WaitGroup
	start := time.Now()
	for i := range calls {
		wg.Go(func() {
			// "slow" takes 0.3 s and says which process served it.
			if ok, err := b.UserExists(ctxT(t), testHost, "slow"); err != nil || ok {
				t.Errorf("UserExists(slow) = %v, %v", ok, err)
			}
			wantPassword(t, b, fmt.Sprintf("u%d", i), fmt.Sprintf("pw:%d", i), true)
			wantPassword(t, b, fmt.Sprintf("u%d", i), fmt.Sprintf("pw:%d", i+1), false)
		})
	}
	wg.Wait()
	// 16 slow requests on 4 programs: 4 rounds of 0.3 s, not 16.
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("%d concurrent slow calls on %d programs took %v", calls, instances, d)
	}
	logs.waitLog(t, "slow request served by pid")
	pids := map[string]bool{}
	for line := range strings.Lines(logs.String()) {
		if _, after, ok := strings.Cut(line, "slow request served by pid "); ok {
			pids[strings.TrimSuffix(strings.Fields(after)[0], ":")] = true
		}
	}
	if len(pids) != instances {
		t.Errorf("slow requests were served by %d programs, want %d: %v", len(pids), instances, pids)
	}
}

// A program that cannot be started stops the backend at Open; one that
// keeps dying is restarted with a growing delay, and calls fail fast
// meanwhile.
func TestRestartBackoff(t *testing.T) {
	in := &instance{failing: new(atomic.Int32)}
	var got []time.Duration
	for range 10 {
		in.died()
		got = append(got, time.Until(in.retryAt).Round(100*time.Millisecond))
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff after %d deaths: %v, want %v", i+1, got[i], want[i]*time.Millisecond)
		}
	}

	b, _ := open(t, nil, func(s *Settings) { s.Program, s.Args = "/bin/sh", []string{"-c", "exit 1"} })
	if err := b.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping before any failure: %v", err)
	}
	for i := range 5 {
		start := time.Now()
		_, err := b.UserExists(ctxT(t), testHost, "alice")
		if !errors.Is(err, sdk.ErrUnavailable) {
			t.Fatalf("call %d to a program that exits at once = %v, want sdk.ErrUnavailable", i, err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("call %d took %v", i, d)
		}
	}
	if err := b.Ping(ctxT(t)); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("Ping with the only program failing = %v, want sdk.ErrUnavailable", err)
	}
}

// Close ends every program by closing its stdin, as ejabberd does; later
// calls fail.
func TestCloseStopsPrograms(t *testing.T) {
	b, logs := open(t, nil, func(s *Settings) { s.Instances = 3 })
	// Wait for the programs to be up: three slow calls keep all three busy.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, err := b.UserExists(ctxT(t), testHost, "slow"); err != nil {
				t.Errorf("UserExists(slow): %v", err)
			}
		})
	}
	wg.Wait()
	var (
		taken []*instance
		procs []*process
	)
	for range 3 {
		in := <-b.pool.idle
		taken, procs = append(taken, in), append(procs, in.proc)
	}
	for _, in := range taken {
		b.pool.idle <- in
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			t.Fatal("a program outlived Close")
		}
	}
	if strings.Contains(logs.String(), "killing it") {
		t.Error("Close had to kill a program that exits at EOF")
	}
	if _, err := b.UserExists(ctxT(t), testHost, "alice"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("UserExists after Close = %v, want sdk.ErrUnavailable", err)
	}
}

// A call whose caller has already given up leaves the program alone.
func TestCallAlreadyAbandoned(t *testing.T) {
	b, _ := open(t, map[string]string{"alice@" + testHost: "secret"}, nil)
	old := firstProcess(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 5 {
		if _, err := b.UserExists(ctx, testHost, "alice"); !errors.Is(err, sdk.ErrUnavailable) {
			t.Fatalf("UserExists with a cancelled context = %v, want sdk.ErrUnavailable", err)
		}
	}
	wantExists(t, b, "alice", true)
	if firstProcess(t, b) != old || !old.alive() {
		t.Error("a cancelled call replaced the program")
	}
}
