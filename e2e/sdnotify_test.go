package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServiceManagerNotify runs koi as systemd runs a Type=notify unit:
// with NOTIFY_SOCKET and a watchdog. koi says READY=1 once it accepts
// logins, feeds the watchdog, and says STOPPING=1 on SIGTERM.
func TestServiceManagerNotify(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := l.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	next := func(want string) string {
		t.Helper()
		deadline := time.After(startTimeout)
		for {
			select {
			case m, ok := <-got:
				if !ok {
					t.Fatalf("notify socket closed before %q", want)
				}
				if strings.Contains(m, want) {
					return m
				}
			case <-deadline:
				t.Fatalf("no %q from koi in %v", want, startTimeout)
			}
		}
	}

	dir := t.TempDir()
	opt := defaultOptions()
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	// A 1 s watchdog: koi must feed it every 0.5 s.
	srv := launch(t, dir, path, c2s, c2sTLS, opt, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=1000000"})
	ready := next("READY=1")
	if !strings.Contains(ready, "STATUS=serving") {
		t.Errorf("READY=1 without a STATUS line: %q", ready)
	}
	// Ready means serving: a login works right away.
	srv.addUser(t, "sam@localhost", "pw-notify")
	c := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}, "sam@localhost/s", "pw-notify")
	c.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for range 2 {
		next("WATCHDOG=1")
	}

	srv.stopped = true
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("STOPPING=1")
	select {
	case <-srv.exited:
		if srv.waitErr != nil {
			t.Errorf("koi exited with %v, want status 0", srv.waitErr)
		}
	case <-time.After(stopTimeout):
		t.Fatalf("koi still running %v after SIGTERM", stopTimeout)
	}
}
