//go:build unix

package load

import "syscall"

// lowerPriority sets pid's nice value to 10; an error (no permission to
// change it) leaves it as it is.
func lowerPriority(pid int) { _ = syscall.Setpriority(syscall.PRIO_PROCESS, pid, 10) }
