package pluginhost

import "syscall"

// sysProcAttr makes the kernel SIGKILL the plugin when the host dies, even
// by SIGKILL; the plugin's own parent watch (sdk.Serve) is the second line,
// since Pdeathsig fires when the forking thread exits, which Go only does
// for goroutines that exit while locked to their thread.
//
// Each plugin gets its own process group so that a Ctrl-C at the terminal
// reaches only the host, which then stops its plugins in order instead of
// having them die under in-flight calls.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
