//go:build !linux

package pluginhost

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; plugins rely
// on their own parent watch (sdk.Serve).
func sysProcAttr() *syscall.SysProcAttr { return nil }
