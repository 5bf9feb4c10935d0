//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package admission

import "runtime"

// Yielder waits for a turn of the scheduler; on this platform it cannot
// wait for the network poller (see yield.go).
type Yielder struct{}

// NewYielder returns a Yielder.
func NewYielder() (*Yielder, error) { return &Yielder{}, nil }

// Yield lets other goroutines run.
func (y *Yielder) Yield() { runtime.Gosched() }

// Close does nothing.
func (y *Yielder) Close() error { return nil }
