package testsvc

import (
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// StartDaemon starts cmd, a server a test needs, and returns once it
// accepts connections on addr. The daemon dies with the test process (even
// one killed) and is stopped, SIGTERM then SIGKILL after 5 s, when the test
// ends. name says which daemon in failures, which carry its output.
func StartDaemon(t testing.TB, name string, cmd *exec.Cmd, addr string) {
	t.Helper()
	var log lockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("testsvc: starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("testsvc: %s exited at start:\n%s", name, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testsvc: %s does not listen on %s:\n%s", name, addr, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
