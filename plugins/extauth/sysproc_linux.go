package extauth

import (
	"os"
	"syscall"
)

// sysProcAttr puts the program in its own process group, so that a hung
// program started through a wrapper (sh -c, a venv launcher) is killed
// with its children, and asks the kernel to kill it if the plugin dies
// without closing its stdin.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killProcess kills the program's process group.
func killProcess(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		p.Kill()
	}
}
