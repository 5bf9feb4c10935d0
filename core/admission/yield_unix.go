//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package admission

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
)

// Yielder waits for a turn of the runtime's network poller (see yield.go).
// Safe for concurrent use; callers take turns.
type Yielder struct {
	mu sync.Mutex
	rc syscall.RawConn // the polled end
	rd net.Conn        // keeps rc open
	w  int             // the other end, written to wake rc
}

// NewYielder makes a Yielder on a socket pair (two descriptors, held until
// Close).
func NewYielder() (*Yielder, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, fmt.Errorf("admission: yielder socket pair: %w", err)
	}
	for _, fd := range fds {
		syscall.CloseOnExec(fd)
	}
	if err := syscall.SetNonblock(fds[1], true); err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, fmt.Errorf("admission: yielder: %w", err)
	}
	f := os.NewFile(uintptr(fds[0]), "admission-yield")
	rd, err := net.FileConn(f) // a duplicate, registered with the poller
	f.Close()
	if err != nil {
		syscall.Close(fds[1])
		return nil, fmt.Errorf("admission: yielder: %w", err)
	}
	rc, err := rd.(syscall.Conn).SyscallConn()
	if err != nil {
		rd.Close()
		syscall.Close(fds[1])
		return nil, fmt.Errorf("admission: yielder: %w", err)
	}
	return &Yielder{rc: rc, rd: rd, w: fds[1]}, nil
}

// Yield returns after the network poller has run once and the goroutines
// it made runnable have had their turn. A nil Yielder just calls
// runtime.Gosched.
func (y *Yielder) Yield() {
	if y == nil {
		runtime.Gosched()
		return
	}
	y.mu.Lock()
	polled := false
	var buf [64]byte
	y.rc.Read(func(fd uintptr) bool {
		if !polled {
			// Write only now: Read has reset the descriptor's readiness
			// before calling us, so the byte's edge cannot be lost. Then
			// park, even if the byte is already there: only the poller
			// may wake us.
			polled = true
			_, err := syscall.Write(y.w, []byte{0})
			return err != nil
		}
		for {
			if n, err := syscall.Read(int(fd), buf[:]); n <= 0 || err != nil {
				return true
			}
		}
	})
	y.mu.Unlock()
	// To the back of the run queue, behind what the poller readied. Twice:
	// one scheduling round in 61 takes the global queue, where Gosched
	// puts us, before the local one; two such rounds are never adjacent.
	runtime.Gosched()
	runtime.Gosched()
}

// Close releases the socket pair.
func (y *Yielder) Close() error {
	if y == nil {
		return nil
	}
	syscall.Close(y.w)
	return y.rd.Close()
}
