// Package tcpproxy relays TCP connections to a server, for tests that take
// the server away in one of two ways: Cut closes every connection and
// refuses new ones, as a stopped server would (Restore undoes it on the
// same address); Freeze moves no byte either way but keeps every
// connection open, as a network partition does, where neither end sees a
// close (Thaw undoes it).
package tcpproxy

import (
	"fmt"
	"net"
	"sync"
)

// Proxy relays connections on Addr to its target.
type Proxy struct {
	target string
	addr   string

	mu     sync.Mutex
	thawed *sync.Cond
	frozen bool
	ln     net.Listener
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

// New starts a proxy to target on a free port of 127.0.0.1.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcpproxy: %w", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	p.thawed = sync.NewCond(&p.mu)
	p.serve(ln)
	return p, nil
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.addr }

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			p.wg.Go(func() { p.pipe(up, c) })
			p.wg.Go(func() { p.pipe(c, up) })
		}
	})
}

// pipe copies from src to dst, holding what it read while frozen, and
// closes both when either ends.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer func() {
		dst.Close()
		src.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
			p.thawed.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut closes every connection and the listener: new connections are
// refused until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore listens on the proxy's address again after Cut.
func (p *Proxy) Restore() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("tcpproxy: listening on %s again: %w", p.addr, err)
	}
	p.serve(ln)
	return nil
}

// Freeze stops every byte, either way, on every connection, and keeps
// them open.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// Thaw lets bytes through again, those held first.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	p.frozen = false
	p.thawed.Broadcast()
	p.mu.Unlock()
}

// Close thaws, cuts and waits for the proxy's goroutines to end.
func (p *Proxy) Close() {
	p.Thaw()
	p.Cut()
	p.wg.Wait()
}
