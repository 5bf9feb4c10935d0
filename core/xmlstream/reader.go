package xmlstream

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
	// shrinkAfter: after a stanza bigger than this the token buffers are
	// dropped, so that buffers grown to the stanza's size are not kept
	// alive by an idle connection.
	shrinkAfter = 16 << 10
	// idleTextCap and idleAttrsCap bound the token buffers an idle
	// Reader keeps.
	idleTextCap  = 512
	idleAttrsCap = 16
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
	src      source
	tok      token
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
	return rd
}

// Idle reports whether the Reader holds no unread input, so that the next
// call to Next would wait for the source. An idle Reader gives its read
// buffer back to the pool: the caller is about to wait.
func (r *Reader) Idle() bool {
	if r.src.buffered() > 0 {
		return false
	}
	r.src.release()
	// Token buffers that one large stanza grew are not kept for a wait
	// that may last hours; ordinary ones are, to spare the next stanza
	// their allocation.
	if cap(r.tok.text) > idleTextCap {
		r.tok.text = nil
	}
	if cap(r.tok.attrs) > idleAttrsCap {
		r.tok.attrs = nil
	}
	return true
}

// SkipSpace drops the whitespace at the head of the buffered input
// between two top-level elements (a client's whitespace keepalive),
// without reading from the source. After a keepalive the Reader is then
// Idle again, and its caller waits for the peer in its own shallow frames,
// not inside Next, which would wait for the next element in deep ones.
func (r *Reader) SkipSpace() {
	if r.state != stateInStream {
		return
	}
	c := &r.src
	for c.rd < c.wr && byteClass[c.buf[c.rd]]&space != 0 {
		c.rd++
	}
}

// Prime hands the Reader one byte that the caller read from the source
// itself; Next reads it first. A server waits for an idle peer this way, in
// a shallow stack frame, so that the runtime can shrink the stacks of
// thousands of idle connections.
func (r *Reader) Prime(b byte) {
	r.src.prime(b)
}

// Ready reads once from the source into the Reader's buffer, if that holds
// nothing: the caller has waited until the source had input. The elements
// that read brought are then parsed by Next without going back to the
// source between them; without Ready, the first byte after a wait would be
// read on its own and the rest with a second read. It returns the source's
// error when the read brought nothing; the Reader stays usable, as after a
// read deadline between elements.
func (r *Reader) Ready() error {
	return r.src.ready()
}

// ContentNamespace returns the default namespace declared on the last
// stream header (jabber:client for a well-behaved client), "" if none.
func (r *Reader) ContentNamespace() string { return r.contentNS }

// Restart prepares for a new stream header on the same byte source, as
// after SASL success. Bytes already buffered are kept.
func (r *Reader) Restart() {
	// Between top-level elements the tokenizer holds no state of its own.
	r.clearStream()
}

// Reset switches to a new byte source, as after STARTTLS, dropping any
// buffered bytes of the old one (a peer must not be able to inject
// plaintext into the encrypted stream). The next call must be ReadHeader.
func (r *Reader) Reset(src io.Reader) {
	r.src.release()
	r.src.r = src
	r.src.deferred = nil
	r.clearStream()
}

func (r *Reader) clearStream() {
	r.src.n, r.src.exceeded, r.src.srcErr = 0, false, nil
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
		if err := r.readMarkup(); err != nil {
			return nil, r.tokenError(err, true)
		}
		switch r.tok.kind {
		case tokDecl:
			if sawDecl {
				return nil, r.fail(restricted("processing instruction"))
			}
			sawDecl = true
		case tokText:
			return nil, r.fail(&Error{Condition: "not-well-formed", Text: "text before stream header"})
		case tokStart:
			return r.header()
		case tokEnd:
			return nil, r.fail(&Error{Condition: "not-well-formed", Text: "end tag before stream header"})
		default:
			return nil, r.fail(restricted(r.tok.what))
		}
	}
}

func (r *Reader) header() (*Element, error) {
	el, err := r.resolve()
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
	r.streamPrefix = r.tok.prefix
	r.contentNS, _ = r.lookup("")
	r.baseLen = len(r.scope)
	r.state = stateInStream
	if r.tok.selfClose {
		r.state = stateEnded // <stream:stream/>: a stream with nothing in it
	}
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
	c := &r.src
	var ws int64 // whitespace since the last element: one budget
	for {
		// Each top-level element gets the full budget, and so does the run
		// of whitespace before it. After whitespace the next element is
		// still untouched, so a source error there leaves the Reader usable.
		c.n = 0
		if w := c.window(); len(w) > 0 && byteClass[w[0]]&space != 0 {
			i := 1
			for i < len(w) && byteClass[w[i]]&space != 0 {
				i++
			}
			c.advance(i)
			c.n = 0
			if ws += int64(i); ws > c.max {
				c.exceeded = true
				return nil, r.tokenError(errLimit, true)
			}
			continue
		}
		b, err := c.getc()
		if err != nil {
			return nil, r.tokenError(err, true)
		}
		if byteClass[b]&space != 0 {
			if ws++; ws > c.max {
				c.exceeded = true
				return nil, r.tokenError(errLimit, true)
			}
			continue
		}
		if b != '<' {
			return nil, r.fail(&Error{Condition: "bad-format", Text: "text at stream level"})
		}
		if err := r.readMarkup(); err != nil {
			return nil, r.tokenError(err, false)
		}
		switch r.tok.kind {
		case tokStart:
			el, err := r.readElement()
			if err != nil {
				return nil, r.fail(err)
			}
			if c.n > shrinkAfter {
				r.tok = token{}
			}
			return el, nil
		case tokEnd:
			if r.tok.prefix != r.streamPrefix || r.tok.local != "stream" {
				return nil, r.fail(&Error{Condition: "not-well-formed", Text: "unexpected end tag </" + joinName(r.tok.prefix, r.tok.local) + ">"})
			}
			r.state = stateEnded
			return nil, ErrStreamEnd
		case tokText:
			return nil, r.fail(&Error{Condition: "bad-format", Text: "text at stream level"})
		case tokDecl:
			return nil, r.fail(restricted("processing instruction"))
		default:
			return nil, r.fail(restricted(r.tok.what))
		}
	}
}

// readElement reads the rest of the element whose start tag is r.tok.
func (r *Reader) readElement() (*Element, error) {
	defer r.clearStack()
	root, err := r.push()
	if err != nil {
		return nil, err
	}
	if r.tok.selfClose {
		return root, nil
	}
	for len(r.stack) > 0 {
		if err := r.readToken(); err != nil {
			return nil, r.tokenError(err, false)
		}
		top := &r.stack[len(r.stack)-1]
		switch r.tok.kind {
		case tokStart:
			if len(r.stack) >= r.maxDepth {
				return nil, &Error{Condition: "policy-violation",
					Text: "elements nested deeper than " + strconv.Itoa(r.maxDepth)}
			}
			parent := top.el
			el, err := r.push()
			if err != nil {
				return nil, err
			}
			parent.Children = append(parent.Children, Node{Elem: el})
			if r.tok.selfClose {
				r.pop()
			}
		case tokEnd:
			if r.tok.prefix != top.prefix || r.tok.local != top.local {
				return nil, &Error{Condition: "not-well-formed",
					Text: "end tag </" + joinName(r.tok.prefix, r.tok.local) + "> does not match <" + joinName(top.prefix, top.local) + ">"}
			}
			r.pop()
		case tokText:
			top.el.AppendText(string(r.tok.text))
		case tokDecl:
			return nil, restricted("processing instruction")
		default:
			return nil, restricted(r.tok.what)
		}
	}
	return root, nil
}

// pop closes the innermost element.
func (r *Reader) pop() {
	top := &r.stack[len(r.stack)-1]
	clear(r.scope[top.scopeLen:])
	r.scope = r.scope[:top.scopeLen]
	*top = frame{}
	r.stack = r.stack[:len(r.stack)-1]
}

// push resolves the start tag r.tok and opens it as the innermost element.
func (r *Reader) push() (*Element, error) {
	scopeLen := len(r.scope)
	el, err := r.resolve()
	if err != nil {
		return nil, err
	}
	r.stack = append(r.stack, frame{el: el, prefix: r.tok.prefix, local: r.tok.local, scopeLen: scopeLen})
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

// resolve adds the start tag r.tok's namespace declarations to the scope
// and returns it as an Element with namespaces resolved and declarations
// dropped. It enforces the Namespaces in XML constraints.
func (r *Reader) resolve() (*Element, error) {
	t := &r.tok
	scopeLen := len(r.scope)
	plain := 0
	for _, a := range t.attrs {
		var prefix string
		switch {
		case a.prefix == "" && a.local == "xmlns":
			// Default namespace; "" undeclares it.
		case a.prefix == "xmlns":
			prefix = a.local
			if prefix == "xml" {
				if a.value != NSXML {
					return nil, nsError("prefix xml bound to " + a.value)
				}
				continue
			}
			if prefix == "xmlns" || a.value == "" {
				return nil, nsError("invalid declaration of prefix " + prefix)
			}
		default:
			plain++
			continue
		}
		if a.value == NSXML || a.value == xmlnsURI {
			return nil, nsError("reserved namespace " + a.value + " bound")
		}
		for _, b := range r.scope[scopeLen:] {
			if b.prefix == prefix {
				return nil, nsError("namespace declared twice on one element")
			}
		}
		if len(r.scope) >= maxBindings {
			return nil, &Error{Condition: "policy-violation", Text: "too many namespace declarations"}
		}
		r.scope = append(r.scope, binding{prefix: prefix, uri: a.value})
	}

	if t.prefix == "xmlns" {
		return nil, nsError("invalid element name " + joinName(t.prefix, t.local))
	}
	space, ok := r.lookup(t.prefix)
	if !ok {
		return nil, nsError(undeclaredPrefix + t.prefix)
	}
	el := &Element{Space: space, Local: t.local}
	if plain == 0 {
		return el, nil
	}
	room := plain
	if len(r.stack) == 0 {
		room++ // a stanza: for the from a server stamps on it, without growing
	}
	el.Attrs = make([]Attr, 0, room)
	for _, a := range t.attrs {
		if a.prefix == "xmlns" || (a.prefix == "" && a.local == "xmlns") {
			continue
		}
		var aspace string
		if a.prefix != "" {
			// Unprefixed attributes are in no namespace, whatever the
			// default namespace is.
			if aspace, ok = r.lookup(a.prefix); !ok {
				return nil, nsError(undeclaredPrefix + a.prefix)
			}
		}
		el.Attrs = append(el.Attrs, Attr{Space: aspace, Local: a.local, Value: a.value})
	}
	if hasDuplicate(el.Attrs) {
		return nil, &Error{Condition: "not-well-formed", Text: "duplicate attribute on <" + joinName(t.prefix, t.local) + ">"}
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
			return wrapped
		}
		return r.fail(wrapped)
	}
	var e *Error
	if errors.As(err, &e) {
		return r.fail(e)
	}
	return r.fail(&Error{Condition: "not-well-formed", Text: err.Error()})
}

// expectMarkup skips whitespace before a stream header and fails at once
// when the next byte cannot start markup: an HTTP request or a TLS
// ClientHello on a plain XMPP port would otherwise be read as text up to the
// next '<', which may never come, holding the connection until a timeout.
func (r *Reader) expectMarkup() error {
	for {
		b, err := r.src.getc()
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

func restricted(what string) *Error {
	return &Error{Condition: "restricted-xml", Text: what + " not allowed"}
}

func nsError(text string) *Error {
	return &Error{Condition: "not-well-formed", Text: text}
}
