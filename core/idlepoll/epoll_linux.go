package idlepoll

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// stopToken is the eventfd's data: no Token is 0 (they count from 1).
const stopToken = 0

type sysPoller struct {
	epfd   int
	evfd   int // written by wakeUp to end wait with errStopped
	events []unix.EpollEvent
	tokens []uint64
}

var errStopped = errors.New("idlepoll: closed")

func newSysPoller() (sysPoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return sysPoller{}, fmt.Errorf("idlepoll: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return sysPoller{}, fmt.Errorf("idlepoll: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setData(&ev, stopToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return sysPoller{}, fmt.Errorf("idlepoll: epoll_ctl eventfd: %w", err)
	}
	return sysPoller{epfd: epfd, evfd: evfd, events: make([]unix.EpollEvent, 256)}, nil
}

// setData puts the 64-bit token in the event's data (Fd and Pad are its
// two halves, on every architecture x/sys/unix defines).
func setData(ev *unix.EpollEvent, tok uint64) {
	ev.Fd = int32(uint32(tok))
	ev.Pad = int32(uint32(tok >> 32))
}

func data(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// arm (re)arms fd for one readiness. A socket seen before is modified, a
// new one added: the kernel drops a socket from the set when it closes.
func (s *sysPoller) arm(fd int, tok uint64) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setData(&ev, tok)
	err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
	if errors.Is(err, unix.ENOENT) {
		err = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	}
	if err != nil {
		return fmt.Errorf("idlepoll: epoll_ctl: %w", err)
	}
	return nil
}

// wait blocks (its thread, in the kernel) until sockets are ready and
// returns their tokens; the slice is reused by the next call.
func (s *sysPoller) wait() ([]uint64, error) {
	for {
		n, err := unix.EpollWait(s.epfd, s.events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("idlepoll: epoll_wait: %w", err)
		}
		s.tokens = s.tokens[:0]
		for i := range s.events[:n] {
			tok := data(&s.events[i])
			if tok == stopToken {
				return nil, errStopped
			}
			s.tokens = append(s.tokens, tok)
		}
		return s.tokens, nil
	}
}

func (s *sysPoller) wakeUp() error {
	var one = [8]byte{1}
	if _, err := unix.Write(s.evfd, one[:]); err != nil {
		return fmt.Errorf("idlepoll: eventfd write: %w", err)
	}
	return nil
}

func (s *sysPoller) close() error {
	return errors.Join(unix.Close(s.evfd), unix.Close(s.epfd))
}
