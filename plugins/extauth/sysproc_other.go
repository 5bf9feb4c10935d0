//go:build !linux

package extauth

import (
	"os"
	"syscall"
)

// sysProcAttr: outside Linux the program is killed alone, and outlives a
// crashed plugin until it reads EOF on its stdin.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func killProcess(p *os.Process) { p.Kill() }
