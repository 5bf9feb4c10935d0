//go:build !linux

package idlepoll

// Elsewhere there is no second epoll: New fails and the caller keeps a
// goroutine per waiting socket, as Go's own poller does.
type sysPoller struct{}

func newSysPoller() (sysPoller, error)    { return sysPoller{}, ErrUnsupported }
func (sysPoller) arm(int, uint64) error   { return ErrUnsupported }
func (sysPoller) wait() ([]uint64, error) { return nil, ErrUnsupported }
func (sysPoller) wakeUp() error           { return nil }
func (sysPoller) close() error            { return nil }
