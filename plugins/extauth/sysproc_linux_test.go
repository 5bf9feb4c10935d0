package extauth

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// A hung program started through a wrapper is killed with its children:
// here sh runs the example program as a child (not exec'd, since a command
// follows), and the timeout must end the child too.
func TestHungWrapperKillsChildren(t *testing.T) {
	b, logs := open(t, map[string]string{"alice@" + testHost: "secret"}, func(s *Settings) {
		s.Args = append([]string{"-c", `"$0" "$@"; exit 1`, s.Program}, s.Args...)
		s.Program = "/bin/sh"
		// Room for a Python start on a loaded machine before the 0.3 s
		// "slow" answer; "hang" still times out.
		s.Timeout = 4 * time.Second
	})
	if _, err := b.UserExists(ctxT(t), testHost, "slow"); err != nil {
		t.Fatal(err)
	}
	logs.waitLog(t, "slow request served by pid ")
	_, after, _ := strings.Cut(logs.String(), "slow request served by pid ")
	pid := strings.TrimSuffix(strings.Fields(after)[0], ":")
	if _, err := b.UserExists(ctxT(t), testHost, "hang"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("UserExists while the program hangs = %v, want sdk.ErrUnavailable", err)
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// Gone, or a zombie waiting for whoever inherited it.
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		t.Logf("stat %s: %s %v", pid, stat, err)
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the wrapped program (pid %s) survived the kill: %s", pid, stat)
		}
	}
	wantPassword(t, b, "alice", "secret", true)
}
