//go:build unix

// Package sigstop stalls a process for tests that need a backend that
// neither answers nor goes away: SIGSTOP, then wait until it has taken
// effect.
package sigstop

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Stop stops the process pid and returns once every one of its threads is
// stopped. kill(2) returns before that: the threads of a process go on
// until one of them takes the signal, and a running thread may answer a
// request meanwhile, which a test would take for an answer of the stopped
// process.
func Stop(pid int, timeout time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("sigstop: %d: %w", pid, err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task", pid)); err != nil {
		// No /proc to watch the threads in (not Linux): give the signal
		// a moment to take hold everywhere.
		time.Sleep(100 * time.Millisecond)
		return nil
	}
	deadline := time.Now().Add(timeout)
	for !stopped(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("sigstop: process %d not stopped %v after SIGSTOP", pid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// stopped reports whether every thread of pid is in state T.
func stopped(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if len(tasks) == 0 {
		return false
	}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		// The state follows the command name, in parentheses.
		i := bytes.LastIndexByte(b, ')')
		if err != nil || i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}
