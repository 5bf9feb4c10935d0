package testsvc

import "syscall"

// sysProcAttr makes the kernel stop a service script (which then stops
// its daemon) when the test process dies, even by SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
