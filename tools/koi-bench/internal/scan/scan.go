// Package scan splits an XMPP stream into its top-level elements without
// parsing them. A load generator receives far more than it needs to look
// at: it must find where each stanza ends and read an attribute or two,
// and a full XML parser would cost more per stanza than the server under
// test spends routing it. The scanner only tracks tags, quotes and depth.
//
// It accepts what RFC 6120 servers send (an XML declaration, the stream
// header, stanzas, whitespace keepalives, the closing tag) and is lenient
// where that costs nothing: comments and CDATA sections are skipped. It
// does not check well-formedness beyond what finding element boundaries
// needs.
package scan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Kind tells what Next found.
type Kind uint8

// Kinds of stream tokens.
const (
	// Header is the stream header, <stream:stream ...>; Raw is its start tag.
	Header Kind = iota + 1
	// Element is a complete top-level element (a stanza or a stream-level
	// element such as <stream:features/>); Raw holds all of it.
	Element
	// End is </stream:stream>.
	End
)

// DefaultMaxElement bounds one element when NewScanner is given 0.
const DefaultMaxElement = 1 << 20

// ErrTooLarge is returned for an element bigger than the scanner's limit.
var ErrTooLarge = errors.New("scan: element exceeds the size limit")

// Token is one thing read from the stream. Raw aliases the scanner's
// buffer and is valid until the next call to Next.
type Token struct {
	Kind Kind
	Raw  []byte
}

// Scanner reads top-level elements from an XMPP stream.
type Scanner struct {
	r   io.Reader
	buf []byte
	// buf[start:end] holds unconsumed input. Scanning of the current
	// element resumes at pos with depth open elements below the stream,
	// so a stanza split over many reads is scanned once.
	start, end, pos int
	elemStart       int // offset of the current element's '<', or -1
	depth           int // open elements inside the current top-level element
	inStream        bool
	size            int // buffer size to allocate after Release
	max             int
	err             error
}

// NewScanner returns a Scanner reading from r with an initial buffer of
// bufSize bytes (grown as needed up to maxElement; 0 means
// DefaultMaxElement).
func NewScanner(r io.Reader, bufSize, maxElement int) *Scanner {
	if bufSize < 256 {
		bufSize = 256
	}
	if maxElement <= 0 {
		maxElement = DefaultMaxElement
	}
	return &Scanner{r: r, buf: make([]byte, bufSize), size: bufSize, elemStart: -1, max: maxElement}
}

// Release drops the read buffer if nothing is buffered, so that an idle
// connection holds no memory in its scanner; the next read allocates a
// fresh one. It reports whether the buffer was dropped.
func (s *Scanner) Release() bool {
	if s.start != s.end || s.elemStart >= 0 {
		return false
	}
	s.buf, s.start, s.end, s.pos = nil, 0, 0, 0
	return true
}

// Reset makes the scanner read a new stream from r (after STARTTLS or a
// SASL success), dropping any buffered input.
func (s *Scanner) Reset(r io.Reader) {
	s.r = r
	s.start, s.end, s.pos, s.depth, s.elemStart = 0, 0, 0, 0, -1
	s.inStream = false
	s.err = nil
}

// SetReader changes where further input comes from, keeping what is
// buffered (to wrap the connection, for instance).
func (s *Scanner) SetReader(r io.Reader) { s.r = r }

// Buffered reports how many bytes are buffered but not yet returned.
func (s *Scanner) Buffered() int { return s.end - s.start }

// Next returns the next token. It reads from the underlying reader only
// when no complete token is buffered, so a caller can drain everything one
// read brought before blocking again (see Buffered).
func (s *Scanner) Next() (Token, error) {
	for {
		if s.err != nil {
			return Token{}, s.err
		}
		t, ok, err := s.scan()
		if err != nil {
			s.err = err
			return Token{}, err
		}
		if ok {
			return t, nil
		}
		if err := s.fill(); err != nil {
			s.err = err
			return Token{}, err
		}
	}
}

// TryNext returns the next token if one is complete in the buffer, without
// reading. ok is false when more input is needed.
func (s *Scanner) TryNext() (t Token, ok bool, err error) {
	if s.err != nil {
		return Token{}, false, s.err
	}
	t, ok, err = s.scan()
	if err != nil {
		s.err = err
	}
	return t, ok, err
}

// fill reads more input, first making room by moving the unconsumed bytes
// to the front or growing the buffer.
func (s *Scanner) fill() error {
	if s.buf == nil {
		s.buf = make([]byte, s.size)
	}
	// Move the unconsumed bytes to the front when little room is left,
	// so that reads stay large.
	if s.start > 0 && (s.start == s.end || len(s.buf)-s.end < len(s.buf)/4) {
		n := copy(s.buf, s.buf[s.start:s.end])
		shift := s.start
		s.start, s.end, s.pos = 0, n, s.pos-shift
		if s.elemStart >= 0 {
			s.elemStart -= shift
		}
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= s.max {
			return ErrTooLarge
		}
		nb := make([]byte, min(2*len(s.buf), s.max))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	n, err := s.r.Read(s.buf[s.end:])
	s.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// scan looks for the next complete token in buf[pos:end].
func (s *Scanner) scan() (Token, bool, error) {
	b := s.buf[:s.end]
	for s.pos < s.end {
		if s.elemStart < 0 {
			// Between top-level elements: skip text (keepalive whitespace).
			i := bytes.IndexByte(b[s.pos:], '<')
			if i < 0 {
				s.pos = s.end
				s.start = s.end
				return Token{}, false, nil
			}
			s.pos += i
			s.start = s.pos
		} else {
			i := bytes.IndexByte(b[s.pos:], '<')
			if i < 0 {
				s.pos = s.end
				return Token{}, false, nil
			}
			s.pos += i
		}
		if s.end-s.start > s.max {
			return Token{}, false, ErrTooLarge
		}
		tagStart := s.pos
		if s.pos+1 >= s.end {
			return Token{}, false, nil
		}
		switch b[s.pos+1] {
		case '?': // XML declaration or processing instruction
			j := bytes.Index(b[s.pos:], []byte("?>"))
			if j < 0 {
				return Token{}, false, nil
			}
			s.pos += j + 2
			if s.elemStart < 0 {
				s.start = s.pos
			}
			continue
		case '!':
			n, ok, err := skipSpecial(b[s.pos:])
			if err != nil || !ok {
				return Token{}, false, err
			}
			s.pos += n
			if s.elemStart < 0 {
				s.start = s.pos
			}
			continue
		case '/':
			j := bytes.IndexByte(b[s.pos:], '>')
			if j < 0 {
				return Token{}, false, nil
			}
			s.pos += j + 1
			if s.elemStart < 0 {
				// A closing tag at stream level ends the stream.
				if !s.inStream {
					return Token{}, false, fmt.Errorf("scan: unexpected %q before the stream header", b[tagStart:s.pos])
				}
				s.start = s.pos
				s.inStream = false
				return Token{Kind: End, Raw: b[tagStart:s.pos]}, true, nil
			}
			s.depth--
			if s.depth == 0 {
				return s.emit(), true, nil
			}
			continue
		}
		n, selfClosing, ok := tagEnd(b[s.pos:])
		if !ok {
			return Token{}, false, nil
		}
		s.pos += n
		if !s.inStream {
			s.inStream = true
			s.start = s.pos
			return Token{Kind: Header, Raw: b[tagStart:s.pos]}, true, nil
		}
		if s.elemStart < 0 {
			s.elemStart = tagStart
			s.depth = 0
		}
		if selfClosing {
			if s.depth == 0 {
				return s.emit(), true, nil
			}
			continue
		}
		s.depth++
	}
	return Token{}, false, nil
}

func (s *Scanner) emit() Token {
	t := Token{Kind: Element, Raw: s.buf[s.elemStart:s.pos]}
	s.elemStart = -1
	s.start = s.pos
	return t
}

// tagEnd finds the '>' closing the start tag at the beginning of b,
// skipping quoted attribute values (which may contain '>'). n is the
// tag's length.
func tagEnd(b []byte) (n int, selfClosing, ok bool) {
	i := 1
	for i < len(b) {
		j := bytes.IndexAny(b[i:], ">'\"")
		if j < 0 {
			return 0, false, false
		}
		i += j
		if c := b[i]; c == '>' {
			return i + 1, b[i-1] == '/', true
		} else {
			k := bytes.IndexByte(b[i+1:], c)
			if k < 0 {
				return 0, false, false
			}
			i += k + 2
		}
	}
	return 0, false, false
}

// skipSpecial skips a comment or CDATA section at the start of b.
func skipSpecial(b []byte) (int, bool, error) {
	var end []byte
	switch {
	case bytes.HasPrefix(b, []byte("<!--")):
		end = []byte("-->")
	case bytes.HasPrefix(b, []byte("<![CDATA[")):
		end = []byte("]]>")
	case len(b) < 9:
		return 0, false, nil
	default:
		return 0, false, fmt.Errorf("scan: unsupported markup %q", b[:min(len(b), 16)])
	}
	j := bytes.Index(b[2:], end)
	if j < 0 {
		return 0, false, nil
	}
	return 2 + j + len(end), true, nil
}
