package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestNotify(t *testing.T) {
	for _, tc := range []struct{ name, sock, listenOn string }{
		{"path", filepath.Join(t.TempDir(), "notify"), ""},
		{"abstract", "@koi-sdnotify-test-" + t.Name(), "\x00koi-sdnotify-test-" + t.Name()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on := tc.listenOn
			if on == "" {
				on = tc.sock
			}
			c := listen(t, on)
			n := FromEnv(env(map[string]string{"NOTIFY_SOCKET": tc.sock}), 1)
			if err := n.Notify("READY=1", "STATUS=serving"); err != nil {
				t.Fatal(err)
			}
			if got := read(t, c); got != "READY=1\nSTATUS=serving\n" {
				t.Errorf("datagram %q", got)
			}
		})
	}
}

func TestWithoutServiceManager(t *testing.T) {
	n := FromEnv(env(nil), 1)
	if n != nil {
		t.Fatalf("a notifier without NOTIFY_SOCKET: %+v", n)
	}
	if err := n.Notify("READY=1"); err != nil || n.WatchdogInterval() != 0 {
		t.Errorf("a nil notifier must do nothing: %v %v", err, n.WatchdogInterval())
	}
}

func TestNotifyNoListener(t *testing.T) {
	n := FromEnv(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "gone")}), 1)
	if err := n.Notify("READY=1"); err == nil {
		t.Error("no error for a socket nobody listens on")
	}
}

func TestWatchdog(t *testing.T) {
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"20000000", "", 10 * time.Second},
		{"20000000", "42", 10 * time.Second},
		{"20000000", "7", 0}, // another process's watchdog
		{"nonsense", "", 0},
		{"0", "", 0},
	} {
		n := FromEnv(env(map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": tc.usec, "WATCHDOG_PID": tc.pid}), 42)
		if got := n.WatchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: interval %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
	}
}
