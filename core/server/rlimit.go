package server

import (
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// raiseFileLimit lifts the soft open-file limit to the hard one: every
// client connection is a file descriptor.
func raiseFileLimit(log hclog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the open-file limit", "error", err)
		return
	}
	if lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("cannot raise the open-file limit", "soft", old, "hard", lim.Max, "error", err)
			return
		}
		log.Info("raised the open-file limit", "from", old, "to", lim.Cur)
		return
	}
	log.Info("open-file limit", "limit", lim.Cur)
}
