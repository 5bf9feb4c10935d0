//go:build unix

package sigstop

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestStop(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc: threads cannot be watched here")
	}
	if stopped(cmd.Process.Pid) {
		t.Fatal("a sleeping process taken for stopped")
	}
	if err := Stop(cmd.Process.Pid, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !stopped(cmd.Process.Pid) {
		t.Fatal("not stopped after Stop")
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
}
