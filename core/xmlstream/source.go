package xmlstream

import (
	"errors"
	"io"
	"sync"
)

// errLimit is what the source hands the tokenizer once the budget is
// spent; the Reader turns it into a policy-violation.
var errLimit = errors.New("xmlstream: size limit reached")

// source is the tokenizer's input: a read buffer over the connection that
// refuses to go past max bytes since n was last reset, so that a peer
// cannot make the Reader accumulate an unbounded token.
//
// Between stanzas, when its buffer is empty, it returns the buffer to a
// pool and waits for the next byte with a one-byte read: thousands of idle
// connections then hold no read buffer at all.
type source struct {
	r        io.Reader
	buf      []byte // nil while idle; unread bytes are buf[rd:wr]
	rd, wr   int
	one      [1]byte
	n, max   int64
	exceeded bool
	srcErr   error // first error returned by the underlying source
	deferred error // returned by a read that also brought bytes; reported after them
}

// bufPool holds the read buffers of connections that are not reading; it
// is a cache, shared because idle connections need none.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, readBufferSize)
	return &b
}}

func (c *source) buffered() int { return c.wr - c.rd }

func (c *source) take() {
	if c.buf == nil {
		c.buf = *bufPool.Get().(*[]byte)
		c.rd, c.wr = 0, 0
	}
}

func (c *source) release() {
	if c.buf != nil {
		b := c.buf
		bufPool.Put(&b)
		c.buf, c.rd, c.wr = nil, 0, 0
	}
}

// prime puts b in front of the unread bytes.
func (c *source) prime(b byte) {
	c.take()
	if c.rd == 0 {
		if c.wr == len(c.buf) {
			// Never with the callers that exist (they prime an idle
			// Reader), but a byte must not be lost.
			c.buf = append(c.buf, 0)
		}
		copy(c.buf[1:c.wr+1], c.buf[:c.wr])
		c.wr++
		c.rd = 1
	}
	c.rd--
	c.buf[c.rd] = b
}

// getc returns the next byte, or the source's error (also kept in srcErr)
// or errLimit.
func (c *source) getc() (byte, error) {
	if c.rd < c.wr && c.n < c.max {
		b := c.buf[c.rd]
		c.rd++
		c.n++
		return b, nil
	}
	return c.getcSlow()
}

// unget gives back the byte the last getc returned.
func (c *source) unget() {
	c.rd--
	c.n--
}

func (c *source) getcSlow() (byte, error) {
	if c.n >= c.max {
		c.exceeded = true
		return 0, errLimit
	}
	if err := c.fill(); err != nil {
		return 0, err
	}
	b := c.buf[c.rd]
	c.rd++
	c.n++
	return b, nil
}

// fill reads the source once into the empty buffer.
func (c *source) fill() error {
	if c.deferred != nil {
		err := c.deferred
		c.deferred = nil
		return c.sourceError(err)
	}
	if c.n == 0 && c.buf != nil {
		// At a stanza boundary with nothing buffered: about to block.
		c.release()
	}
	if c.buf == nil {
		n, err := c.r.Read(c.one[:])
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return c.sourceError(err)
		}
		c.take()
		c.buf[0] = c.one[0]
		c.rd, c.wr = 0, 1
		return nil
	}
	n, err := c.r.Read(c.buf)
	c.rd, c.wr = 0, n
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return c.sourceError(err)
	}
	if err != nil {
		c.deferred = err
	}
	return nil
}

func (c *source) sourceError(err error) error {
	if c.srcErr == nil {
		c.srcErr = err
	}
	return err
}

// ready reads the source once into an empty buffer, as Reader.Ready.
func (c *source) ready() error {
	if c.buffered() > 0 {
		return nil
	}
	if c.deferred != nil {
		err := c.deferred
		c.deferred = nil
		c.release()
		return err
	}
	c.take()
	n, err := c.r.Read(c.buf)
	c.rd, c.wr = 0, n
	if n == 0 {
		c.release() // the caller may wait a long time now
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	if err != nil {
		c.deferred = err
	}
	return nil
}

// window returns the unread bytes that the budget allows, without
// consuming them; advance consumes k of them. A slice from window is only
// valid until the next getc.
func (c *source) window() []byte {
	w := c.buf[c.rd:c.wr]
	if rest := c.max - c.n; int64(len(w)) > rest {
		w = w[:rest]
	}
	return w
}

func (c *source) advance(k int) {
	c.rd += k
	c.n += int64(k)
}
