// Package sdnotify tells systemd how the server is doing (sd_notify(3)):
// READY=1 once every listener accepts, STOPPING=1 at shutdown, STATUS=
// lines, and watchdog keep-alives, so that a unit with Type=notify starts
// its dependants only when koi really serves, and WatchdogSec= restarts a
// hung koi. Without NOTIFY_SOCKET (not run by systemd) it does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Notifier sends notifications to the service manager. A nil Notifier
// does nothing.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
}

// FromEnv returns the Notifier that NOTIFY_SOCKET (and WATCHDOG_USEC,
// WATCHDOG_PID) describe, read through getenv (os.Getenv), or nil when
// koi does not run under a service manager that listens.
func FromEnv(getenv func(string) string, pid int) *Notifier {
	sock := getenv("NOTIFY_SOCKET")
	if sock == "" {
		return nil
	}
	name := sock
	if strings.HasPrefix(sock, "@") {
		// An abstract socket (Linux): a leading NUL byte, not a path.
		name = "\x00" + sock[1:]
	}
	n := &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
	if us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		// WATCHDOG_PID names the process the watchdog is for: a child
		// that inherited the environment must not feed it.
		if p := getenv("WATCHDOG_PID"); p == "" || p == strconv.Itoa(pid) {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	return n
}

// Notify sends the state lines ("READY=1", "STATUS=…") in one datagram.
func (n *Notifier) Notify(state ...string) error {
	if n == nil || len(state) == 0 {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(state, "\n") + "\n")); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// WatchdogInterval is how often to send WATCHDOG=1: half the service
// manager's timeout, as sd_watchdog_enabled(3) advises; 0 when the
// watchdog is off.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog / 2
}
