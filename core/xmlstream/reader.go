package xmlstream

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// Default limits, used where a Limits field is zero or negative.
const (
	DefaultMaxStanzaBytes = 256 << 10
	DefaultMaxDepth       = 64
)

const (
	// readBufferSize is the read buffer of a connection while it reads.
	// An idle connection gives it back (see countingReader).
	readBufferSize = 4096
	// maxBindings bounds the namespace declarations in scope at once.
	// Lookups scan the scope linearly; without a bound a stanza full of
	// declarations would make every lookup slow.
	maxBindings = 128
	// shrinkAfter: after a stanza bigger than this the XML decoder is
	// replaced so that its token buffer, grown to the stanza size, is not
	// kept alive by an idle connection.
	shrinkAfter = 16 << 10
	// xmlnsURI is the namespace of the xmlns prefix; it may not be bound.
	xmlnsURI = "http://www.w3.org/2000/xmlns/"
	// undeclaredPrefix starts the text of the error for an unbound prefix.
	undeclaredPrefix = "undeclared prefix "
)

// Limits bounds what a peer can make a Reader buffer.
type Limits struct {
	// MaxStanzaBytes is the most bytes one top-level element (or the run of
	// whitespace before it, or the stream header) may take on the wire.
	// Default 256 KiB.
	MaxStanzaBytes int64
	// MaxDepth is the deepest element nesting allowed inside a stanza; the
	// stanza itself is depth 1. Default 64.
	MaxDepth int
}

// Error is a stream-level error: the stream must be closed with a
// <stream:error/> carrying Condition, an RFC 6120 §4.9.3 condition name.
type Error struct {
	Condition string
	Text      string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Text == "" {
		return "stream error: " + e.Condition
	}
	return "stream error: " + e.Condition + ": " + e.Text
}

// ErrStreamEnd is returned by Next once the peer has sent </stream:stream>.
var ErrStreamEnd = errors.New("stream closed by peer")

// Reader reads an XMPP stream: the stream header, then one top-level
// element at a time. It accepts only the XML subset RFC 6120 §11 allows and
// enforces Limits on the bytes it reads, so it never buffers more than
// MaxStanzaBytes of a peer's input. A Reader is not safe for concurrent use.
type Reader struct {
	src      countingReader
	dec      *xml.Decoder
	maxDepth int
	state    readerState
	err      error // sticky error once state is stateFailed

	streamPrefix string    // raw prefix of the header element, to match its end tag
	contentNS    string    // default namespace declared by the header
	baseLen      int       // bindings in scope declared by the header
	scope        []binding // namespace bindings in scope, innermost last
	stack        []frame   // open elements of the stanza being read
}

type readerState uint8

const (
	stateNeedHeader readerState = iota
	stateInStream
	stateEnded
	stateFailed
)

type binding struct{ prefix, uri string }

type frame struct {
	el            *Element
	prefix, local string // raw name, to match the end tag
	scopeLen      int    // len(scope) before the element's declarations
}

// NewReader returns a Reader on r. The next call must be ReadHeader.
func NewReader(r io.Reader, l Limits) *Reader {
	if l.MaxStanzaBytes <= 0 {
		l.MaxStanzaBytes = DefaultMaxStanzaBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	rd := &Reader{maxDepth: l.MaxDepth}
	rd.src.r = r
	rd.src.max = l.MaxStanzaBytes
	rd.dec = rd.newDecoder()
	return rd
}

func (r *Reader) newDecoder() *xml.Decoder {
	// src implements io.ByteReader, so the decoder reads byte by byte
	// through the counter and adds no buffering of its own.
	d := xml.NewDecoder(&r.src)
	d.Strict = true
	return d
}

// Idle reports whether the Reader holds no unread input, so that the next
// call to Next would wait for the source. An idle Reader gives its read
// buffer back to the pool: the caller is about to wait.
func (r *Reader) Idle() bool {
	if r.src.pending || (r.src.br != nil && r.src.br.Buffered() > 0) {
		return false
	}
	r.src.release()
	return true
}

// Prime hands the Reader one byte that the caller read from the source
// itself; Next reads it first. A server waits for an idle peer this way, in
// a shallow stack frame, so that the runtime can shrink the stacks of
// thousands of idle connections.
func (r *Reader) Prime(b byte) {
	r.src.pb, r.src.pending = b, true
}

// Ready reads once from the source into the Reader's buffer, if that holds
// nothing: the caller has waited until the source had input. The elements
// that read brought are then parsed by Next without going back to the
// source between them; without Ready, the first byte after a wait would be
// read on its own and the rest with a second read. It returns the source's
// error when the read brought nothing; the Reader stays usable, as after a
// read deadline between elements.
func (r *Reader) Ready() error {
	c := &r.src
	if c.br != nil && c.br.Buffered() > 0 {
		return nil
	}
	if c.br == nil {
		c.br = bufPool.Get().(*bufio.Reader)
		c.br.Reset(c.r)
	}
	// Peek reads the source once (bufio's fill), as much as it has up to
	// the buffer's size, and hands back an error only with nothing read.
	if _, err := c.br.Peek(1); err != nil {
		c.release() // the caller may wait a long time now
		return err
	}
	return nil
}

// ContentNamespace returns the default namespace declared on the last
// stream header (jabber:client for a well-behaved client), "" if none.
func (r *Reader) ContentNamespace() string { return r.contentNS }

// Restart prepares for a new stream header on the same byte source, as
// after SASL success. Bytes already buffered are kept.
func (r *Reader) Restart() {
	// Between top-level elements the decoder holds no look-ahead byte, so
	// a fresh decoder on the same buffered source loses nothing.
	r.dec = r.newDecoder()
	r.clearStream()
}

// Reset switches to a new byte source, as after STARTTLS, dropping any
// buffered bytes of the old one (a peer must not be able to inject
// plaintext into the encrypted stream). The next call must be ReadHeader.
func (r *Reader) Reset(src io.Reader) {
	r.src.release()
	r.src.r = src
	r.dec = r.newDecoder()
	r.clearStream()
}

func (r *Reader) clearStream() {
	r.src.n, r.src.exceeded, r.src.srcErr = 0, false, nil
	r.src.ref = charRef{}
	r.state = stateNeedHeader
	r.err = nil
	r.streamPrefix, r.contentNS = "", ""
	clear(r.scope)
	r.scope = r.scope[:0]
	r.baseLen = 0
	r.clearStack()
}

// ReadHeader reads the stream header, skipping whitespace and an XML
// declaration before it, and returns the <stream:stream> start tag as an
// element without children.
func (r *Reader) ReadHeader() (*Element, error) {
	switch r.state {
	case stateFailed:
		return nil, r.err
	case stateNeedHeader:
	default:
		return nil, errors.New("xmlstream: ReadHeader called inside a stream")
	}
	// One XML declaration may come before the header, after whitespace
	// (a client restarting its stream may still have a keepalive in flight).
	for sawDecl := false; ; {
		r.src.n = 0
		if err := r.expectMarkup(); err != nil {
			return nil, err
		}
		tok, err := r.dec.RawToken()
		if err != nil {
			return nil, r.tokenError(err, true)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if sawDecl || t.Target != "xml" {
				return nil, r.fail(&Error{Condition: "restricted-xml", Text: "processing instruction"})
			}
			sawDecl = true
		case xml.CharData:
			if !isSpace(t) {
				return nil, r.fail(&Error{Condition: "not-well-formed", Text: "text before stream header"})
			}
		case xml.StartElement:
			return r.header(t)
		case xml.EndElement:
			return nil, r.fail(&Error{Condition: "not-well-formed", Text: "end tag before stream header"})
		default:
			return nil, r.fail(restricted(tok))
		}
	}
}

func (r *Reader) header(t xml.StartElement) (*Element, error) {
	el, err := r.resolve(t)
	if err != nil {
		// An unbound stream prefix is what a client gets wrong when it
		// forgets xmlns:stream; tell it so.
		if e, ok := err.(*Error); ok && strings.HasPrefix(e.Text, undeclaredPrefix) {
			err = &Error{Condition: "invalid-namespace", Text: e.Text}
		}
		return nil, r.fail(err)
	}
	if el.Space != NSStream || el.Local != "stream" {
		return nil, r.fail(&Error{Condition: "invalid-namespace",
			Text: "stream header must be {" + NSStream + "}stream"})
	}
	r.streamPrefix = t.Name.Space
	r.contentNS, _ = r.lookup("")
	r.baseLen = len(r.scope)
	r.state = stateInStream
	return el, nil
}

// Next returns the next top-level element of the stream, skipping
// whitespace keepalives. It returns ErrStreamEnd when the peer closed the
// stream, *Error for protocol violations, and io.EOF or the source's error
// when the connection ends. A source error between elements (for example a
// read deadline) leaves the Reader usable; any other error is final.
func (r *Reader) Next() (*Element, error) {
	switch r.state {
	case stateFailed:
		return nil, r.err
	case stateEnded:
		return nil, ErrStreamEnd
	case stateNeedHeader:
		return nil, errors.New("xmlstream: Next called before ReadHeader")
	}
	for {
		// Each top-level token gets the full budget: a stanza, or the run
		// of whitespace before it.
		r.src.n = 0
		tok, err := r.dec.RawToken()
		if err != nil {
			return nil, r.tokenError(err, true)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if !isSpace(t) {
				return nil, r.fail(&Error{Condition: "bad-format", Text: "text at stream level"})
			}
		case xml.StartElement:
			el, err := r.readElement(t)
			if err != nil {
				return nil, r.fail(err)
			}
			if r.src.n > shrinkAfter {
				r.dec = r.newDecoder()
			}
			return el, nil
		case xml.EndElement:
			if t.Name.Space != r.streamPrefix || t.Name.Local != "stream" {
				return nil, r.fail(&Error{Condition: "not-well-formed", Text: "unexpected end tag </" + rawName(t.Name) + ">"})
			}
			r.state = stateEnded
			return nil, ErrStreamEnd
		default:
			return nil, r.fail(restricted(tok))
		}
	}
}

// readElement reads the rest of the element that start opened.
func (r *Reader) readElement(start xml.StartElement) (*Element, error) {
	defer r.clearStack()
	root, err := r.push(start)
	if err != nil {
		return nil, err
	}
	for len(r.stack) > 0 {
		tok, err := r.dec.RawToken()
		if err != nil {
			return nil, r.tokenError(err, false)
		}
		top := &r.stack[len(r.stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(r.stack) >= r.maxDepth {
				return nil, &Error{Condition: "policy-violation",
					Text: "elements nested deeper than " + strconv.Itoa(r.maxDepth)}
			}
			parent := top.el
			el, err := r.push(t)
			if err != nil {
				return nil, err
			}
			parent.Children = append(parent.Children, Node{Elem: el})
		case xml.EndElement:
			if t.Name.Space != top.prefix || t.Name.Local != top.local {
				return nil, &Error{Condition: "not-well-formed",
					Text: "end tag </" + rawName(t.Name) + "> does not match <" + rawName(xml.Name{Space: top.prefix, Local: top.local}) + ">"}
			}
			clear(r.scope[top.scopeLen:])
			r.scope = r.scope[:top.scopeLen]
			*top = frame{}
			r.stack = r.stack[:len(r.stack)-1]
		case xml.CharData:
			top.el.AppendText(string(t))
		default:
			return nil, restricted(tok)
		}
	}
	return root, nil
}

// push resolves t and opens it as the innermost element.
func (r *Reader) push(t xml.StartElement) (*Element, error) {
	scopeLen := len(r.scope)
	el, err := r.resolve(t)
	if err != nil {
		return nil, err
	}
	r.stack = append(r.stack, frame{el: el, prefix: t.Name.Space, local: t.Name.Local, scopeLen: scopeLen})
	return el, nil
}

func (r *Reader) clearStack() {
	clear(r.stack)
	r.stack = r.stack[:0]
	if len(r.scope) > r.baseLen {
		clear(r.scope[r.baseLen:])
		r.scope = r.scope[:r.baseLen]
	}
}

// resolve adds t's namespace declarations to the scope and returns t as an
// Element with namespaces resolved and declarations dropped. It enforces
// the Namespaces in XML constraints that encoding/xml leaves out.
func (r *Reader) resolve(t xml.StartElement) (*Element, error) {
	scopeLen := len(r.scope)
	plain := 0
	for _, a := range t.Attr {
		var prefix string
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			// Default namespace; "" undeclares it.
		case a.Name.Space == "xmlns":
			prefix = a.Name.Local
			if prefix == "xml" {
				if a.Value != NSXML {
					return nil, nsError("prefix xml bound to " + a.Value)
				}
				continue
			}
			if prefix == "xmlns" || a.Value == "" {
				return nil, nsError("invalid declaration of prefix " + prefix)
			}
		default:
			plain++
			continue
		}
		if a.Value == NSXML || a.Value == xmlnsURI {
			return nil, nsError("reserved namespace " + a.Value + " bound")
		}
		for _, b := range r.scope[scopeLen:] {
			if b.prefix == prefix {
				return nil, nsError("namespace declared twice on one element")
			}
		}
		if len(r.scope) >= maxBindings {
			return nil, &Error{Condition: "policy-violation", Text: "too many namespace declarations"}
		}
		r.scope = append(r.scope, binding{prefix: prefix, uri: a.Value})
	}

	if strings.IndexByte(t.Name.Local, ':') >= 0 || t.Name.Space == "xmlns" {
		return nil, nsError("invalid element name " + rawName(t.Name))
	}
	space, ok := r.lookup(t.Name.Space)
	if !ok {
		return nil, nsError(undeclaredPrefix + t.Name.Space)
	}
	el := &Element{Space: space, Local: t.Name.Local}
	if plain == 0 {
		return el, nil
	}
	room := plain
	if len(r.stack) == 0 {
		room++ // a stanza: for the from a server stamps on it, without growing
	}
	el.Attrs = make([]Attr, 0, room)
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		if strings.IndexByte(a.Name.Local, ':') >= 0 {
			return nil, nsError("invalid attribute name " + rawName(a.Name))
		}
		var aspace string
		if a.Name.Space != "" {
			// Unprefixed attributes are in no namespace, whatever the
			// default namespace is.
			if aspace, ok = r.lookup(a.Name.Space); !ok {
				return nil, nsError(undeclaredPrefix + a.Name.Space)
			}
		}
		el.Attrs = append(el.Attrs, Attr{Space: aspace, Local: a.Name.Local, Value: a.Value})
	}
	if hasDuplicate(el.Attrs) {
		return nil, &Error{Condition: "not-well-formed", Text: "duplicate attribute on <" + rawName(t.Name) + ">"}
	}
	return el, nil
}

// lookup resolves a prefix ("" for the default namespace) in the current
// scope. The default namespace is "" when nothing declares it.
func (r *Reader) lookup(prefix string) (string, bool) {
	if prefix == "xml" {
		return NSXML, true
	}
	for i := len(r.scope) - 1; i >= 0; i-- {
		if r.scope[i].prefix == prefix {
			return r.scope[i].uri, true
		}
	}
	return "", prefix == ""
}

func hasDuplicate(attrs []Attr) bool {
	if len(attrs) <= 16 {
		for i := 1; i < len(attrs); i++ {
			for j := 0; j < i; j++ {
				if attrs[i].Local == attrs[j].Local && attrs[i].Space == attrs[j].Space {
					return true
				}
			}
		}
		return false
	}
	type name struct{ space, local string }
	seen := make(map[name]struct{}, len(attrs))
	for _, a := range attrs {
		n := name{a.Space, a.Local}
		if _, ok := seen[n]; ok {
			return true
		}
		seen[n] = struct{}{}
	}
	return false
}

// tokenError turns a decoder error into the error to report. atBoundary
// is true when the failed token would have been a top-level one.
func (r *Reader) tokenError(err error, atBoundary bool) error {
	if r.src.exceeded {
		return r.fail(&Error{Condition: "policy-violation",
			Text: "stanza larger than " + strconv.FormatInt(r.src.max, 10) + " bytes"})
	}
	if srcErr := r.src.srcErr; srcErr != nil {
		clean := atBoundary && r.src.n == 0
		if errors.Is(srcErr, io.EOF) {
			if clean {
				return r.fail(io.EOF)
			}
			return r.fail(io.ErrUnexpectedEOF)
		}
		wrapped := fmt.Errorf("xmlstream: read: %w", srcErr)
		if clean {
			// Nothing of the next token was consumed, so the stream can go
			// on: this is how a read deadline used for idle checks must
			// behave. The decoder keeps its error, so replace it.
			r.src.srcErr = nil
			r.dec = r.newDecoder()
			return wrapped
		}
		return r.fail(wrapped)
	}
	var syn *xml.SyntaxError
	if errors.As(err, &syn) {
		return r.fail(&Error{Condition: "not-well-formed", Text: syn.Msg})
	}
	if strings.Contains(err.Error(), "CharsetReader") {
		return r.fail(&Error{Condition: "unsupported-encoding", Text: "only UTF-8 is supported"})
	}
	return r.fail(&Error{Condition: "not-well-formed", Text: err.Error()})
}

// expectMarkup skips whitespace before a stream header and fails at once
// when the next byte cannot start markup: an HTTP request or a TLS
// ClientHello on a plain XMPP port would otherwise be read as text up to the
// next '<', which may never come, holding the connection until a timeout.
func (r *Reader) expectMarkup() error {
	for {
		b, err := r.src.ReadByte()
		if err != nil {
			if r.src.srcErr != nil && !r.src.exceeded {
				r.src.n = 0 // only whitespace so far: a clean end
			}
			return r.tokenError(err, true)
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '<':
			r.src.pb, r.src.pending = b, true
			r.src.n--
			return nil
		}
		return r.fail(&Error{Condition: "not-well-formed", Text: "not an XMPP stream: expected a stream header"})
	}
}

func (r *Reader) fail(err error) error {
	r.state = stateFailed
	r.err = err
	return err
}

func restricted(tok xml.Token) *Error {
	what := "markup"
	switch tok.(type) {
	case xml.Comment:
		what = "comment"
	case xml.ProcInst:
		what = "processing instruction"
	case xml.Directive:
		what = "DTD or directive"
	}
	return &Error{Condition: "restricted-xml", Text: what + " not allowed"}
}

func nsError(text string) *Error {
	return &Error{Condition: "not-well-formed", Text: text}
}

func rawName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// errLimit is what countingReader hands the decoder once the budget is
// spent; the Reader turns it into a policy-violation.
var errLimit = errors.New("xmlstream: size limit reached")

// countingReader feeds the decoder one byte at a time from a bufio.Reader
// and refuses to go past max bytes since n was last reset, so a peer cannot
// make the decoder accumulate an unbounded token.
//
// Between stanzas, when its buffer is empty, it returns the buffer to a
// pool and waits for the next byte with a one-byte read: thousands of idle
// connections then hold no read buffer at all.
type countingReader struct {
	r        io.Reader
	pending  bool // pb was handed in by Prime and not read yet
	pb       byte
	br       *bufio.Reader // nil while idle
	one      [1]byte
	n, max   int64
	exceeded bool
	srcErr   error // first error returned by the underlying source
	ref      charRef
}

// charRef follows character references (&#…; and &#x…;) and the UTF-8 of
// U+FFFE and U+FFFF through the raw bytes. encoding/xml lets these through
// (it turns &#xD800; into U+FFFD and passes U+FFFE as it is), so a peer
// could smuggle characters XML forbids into stanzas that other clients then
// fail to parse. Every other raw character the decoder checks itself.
// Inside a CDATA section "&#…;" is plain text and is not checked.
type charRef struct {
	state uint8  // refOutside, refAmp, refHash, refDigits, refEF, refEFBF
	hex   bool   // &#x
	val   uint32 // saturates above the largest code point
	cdata uint8  // bytes of "<![CDATA[" matched; len(cdataOpen) inside a section
	end   uint8  // inside a section: bytes of "]]>" matched
}

const (
	refOutside uint8 = iota
	refAmp           // after '&'
	refHash          // after "&#"
	refDigits        // in the digits of a reference
	refEF            // after byte 0xEF
	refEFBF          // after bytes 0xEF 0xBF
)

const cdataOpen = "<![CDATA["

// busy reports whether step must see the next byte even if it is not one
// that can start something.
func (r *charRef) busy() bool { return r.state != refOutside || r.cdata != 0 }

// errCharRef is returned for a reference to a code point XML forbids.
var errCharRef = errors.New("character reference to a code point that XML does not allow")

// errNonChar is returned for U+FFFE or U+FFFF in the input.
var errNonChar = errors.New("U+FFFE and U+FFFF are not XML characters")

// step takes the next byte and reports a forbidden character. The bytes
// that can start something are '&', '<' and 0xEF; callers skip step for
// other bytes while !busy().
func (r *charRef) step(b byte) error {
	switch r.state {
	case refEF:
		r.state = refOutside
		if b == 0xBF {
			r.state = refEFBF
			return nil
		}
	case refEFBF:
		r.state = refOutside
		if b == 0xBE || b == 0xBF {
			return errNonChar
		}
	case refAmp:
		r.state = refOutside
		if b == '#' {
			r.state, r.hex, r.val = refHash, false, 0
			return nil
		}
	case refHash:
		r.state = refDigits
		if b == 'x' {
			r.hex = true
			return nil
		}
		return r.digit(b)
	case refDigits:
		return r.digit(b)
	}
	if b == 0xEF {
		r.state = refEF
		return nil
	}
	if int(r.cdata) == len(cdataOpen) {
		// Inside a CDATA section: only "]]>" ends it.
		switch {
		case b == ']':
			r.end = min(r.end+1, 2)
		case b == '>' && r.end == 2:
			r.cdata, r.end = 0, 0
		default:
			r.end = 0
		}
		return nil
	}
	switch {
	case b == cdataOpen[r.cdata]:
		r.cdata++
	case b == '<':
		r.cdata = 1
	default:
		r.cdata = 0
	}
	if b == '&' {
		r.state = refAmp
	}
	return nil
}

// digit takes the next byte of a reference's digits.
func (r *charRef) digit(b byte) error {
	var d uint32
	switch {
	case b == ';':
		r.state = refOutside
		if !xmlChar(r.val) {
			return errCharRef
		}
		return nil
	case '0' <= b && b <= '9':
		d = uint32(b - '0')
	case r.hex && 'a' <= b && b <= 'f':
		d = uint32(b-'a') + 10
	case r.hex && 'A' <= b && b <= 'F':
		d = uint32(b-'A') + 10
	default:
		// Not a reference after all: the decoder reports the syntax.
		r.state = refOutside
		return nil
	}
	base := uint32(10)
	if r.hex {
		base = 16
	}
	r.val = min(r.val*base+d, 0x110000)
	return nil
}

// xmlChar reports whether c matches XML 1.0's Char production.
func xmlChar(c uint32) bool {
	return c == 0x9 || c == 0xA || c == 0xD ||
		0x20 <= c && c <= 0xD7FF ||
		0xE000 <= c && c <= 0xFFFD ||
		0x10000 <= c && c <= 0x10FFFF
}

// bufPool holds the read buffers of connections that are not reading; it
// is a cache, shared because idle connections need none.
var bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

func (c *countingReader) release() {
	if c.br != nil {
		c.br.Reset(nil)
		bufPool.Put(c.br)
		c.br = nil
	}
}

func (c *countingReader) ReadByte() (byte, error) {
	if c.n >= c.max {
		c.exceeded = true
		return 0, errLimit
	}
	if c.pending {
		c.pending = false
		c.n++
		if c.pb == '&' || c.pb == '<' || c.pb == 0xEF || c.ref.busy() {
			return c.pb, c.ref.step(c.pb)
		}
		return c.pb, nil
	}
	if c.n == 0 && c.br != nil && c.br.Buffered() == 0 {
		// At a stanza boundary with nothing buffered: about to block.
		c.release()
	}
	if c.br == nil {
		n, err := c.r.Read(c.one[:])
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			if c.srcErr == nil {
				c.srcErr = err
			}
			return 0, err
		}
		c.br = bufPool.Get().(*bufio.Reader)
		c.br.Reset(c.r)
		c.n++
		if c.one[0] == '&' || c.one[0] == '<' || c.one[0] == 0xEF || c.ref.busy() {
			return c.one[0], c.ref.step(c.one[0])
		}
		return c.one[0], nil
	}
	b, err := c.br.ReadByte()
	if err != nil {
		if c.srcErr == nil {
			c.srcErr = err
		}
		return 0, err
	}
	c.n++
	if b == '&' || b == '<' || b == 0xEF || c.ref.busy() {
		return b, c.ref.step(b)
	}
	return b, nil
}

// Read is only there to satisfy io.Reader; encoding/xml uses ReadByte.
func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.max {
		c.exceeded = true
		return 0, errLimit
	}
	if rest := c.max - c.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	if c.br == nil {
		c.br = bufPool.Get().(*bufio.Reader)
		c.br.Reset(c.r)
	}
	n, err := c.br.Read(p)
	c.n += int64(n)
	if err != nil && c.srcErr == nil {
		c.srcErr = err
	}
	return n, err
}
