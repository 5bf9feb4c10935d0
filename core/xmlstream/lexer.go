package xmlstream

// The tokenizer: the XML subset of RFC 6120 §11, read straight from the
// connection's buffer. It replaces encoding/xml, which took 36–43% of
// koi's CPU per routed message: a method call and line bookkeeping per
// byte, and an allocation per token. Here runs of ordinary bytes are
// scanned in the buffer, one token's buffers serve the next, and common
// names come from a table instead of the heap.
//
// It checks what XML 1.0 requires of the input that the subset allows:
// names (NameStartChar, NameChar), the Char production for raw text and
// for character references (no NUL, no C0 controls but tab, CR and LF, no
// surrogates, no U+FFFE/U+FFFF), UTF-8, the five predefined entities and
// nothing else, "]]>" only where it ends a CDATA section, quoted attribute
// values without '<', whitespace between attributes, and end-of-line
// normalisation (CR LF and a lone CR become LF). Comments, processing
// instructions and DTDs are reported as soon as they are recognised,
// without reading them.

import (
	"strconv"
	"unicode/utf8"
)

type tokKind uint8

const (
	tokStart      tokKind = iota + 1 // a start tag; selfClose if it ended with "/>"
	tokEnd                           // an end tag
	tokText                          // text or a CDATA section
	tokDecl                          // the XML declaration <?xml …?>
	tokRestricted                    // a comment, processing instruction or DTD
)

type rawAttr struct{ prefix, local, value string }

// token is the last token read. Its slices are reused by the next one.
type token struct {
	kind      tokKind
	prefix    string // tokStart, tokEnd: the raw name
	local     string
	attrs     []rawAttr // tokStart
	selfClose bool
	text      []byte // tokText: the decoded text
	what      string // tokRestricted: what it was
}

// byte classes
const (
	// textPlain: copied as they are in text: printable ASCII but for
	// '<', '&', '>' and ']' ("]]>" is not allowed in text), tab and LF.
	textPlain = 1 << iota
	// attrPlain: the same in attribute values, where '>' and ']' are
	// plain but the quotes end the value.
	attrPlain
	// nameStart, nameChar: ASCII NameStartChar and NameChar, colon
	// included (the namespace layer splits the name at it).
	nameStart
	nameChar
	// space: XML's S production.
	space
)

var byteClass = func() (t [256]uint8) {
	for b := 0x20; b < 0x7f; b++ {
		t[b] |= textPlain | attrPlain
	}
	t['\t'] |= textPlain | attrPlain
	t['\n'] |= textPlain | attrPlain
	for _, b := range []byte("<&>]") {
		t[b] &^= textPlain
	}
	for _, b := range []byte("<&'\"") {
		t[b] &^= attrPlain
	}
	for b := 'a'; b <= 'z'; b++ {
		t[b] |= nameStart | nameChar
		t[b-'a'+'A'] |= nameStart | nameChar
	}
	t['_'] |= nameStart | nameChar
	t[':'] |= nameStart | nameChar
	for b := '0'; b <= '9'; b++ {
		t[b] |= nameChar
	}
	t['-'] |= nameChar
	t['.'] |= nameChar
	for _, b := range []byte(" \t\r\n") {
		t[b] |= space
	}
	return t
}()

func syntaxError(text string) *Error {
	return &Error{Condition: "not-well-formed", Text: text}
}

// readMarkup reads the token after a '<' that the caller has consumed.
func (r *Reader) readMarkup() error {
	c := &r.src
	b, err := c.getc()
	if err != nil {
		return err
	}
	switch b {
	case '/':
		return r.readEndTag()
	case '?':
		return r.readPI()
	case '!':
		return r.readBang()
	}
	c.unget()
	return r.readStartTag()
}

// readToken reads the next token inside an element.
func (r *Reader) readToken() error {
	c := &r.src
	b, err := c.getc()
	if err != nil {
		return err
	}
	if b == '<' {
		return r.readMarkup()
	}
	c.unget()
	return r.readText()
}

func (r *Reader) readStartTag() error {
	c := &r.src
	t := &r.tok
	prefix, local, err := r.readName()
	if err != nil {
		return err
	}
	t.kind, t.prefix, t.local, t.selfClose = tokStart, prefix, local, false
	clear(t.attrs)
	t.attrs = t.attrs[:0]
	for {
		spaced, err := r.skipSpace()
		if err != nil {
			return err
		}
		b, err := c.getc()
		if err != nil {
			return err
		}
		switch b {
		case '>':
			return nil
		case '/':
			if b, err = c.getc(); err != nil {
				return err
			}
			if b != '>' {
				return syntaxError("expected /> in element")
			}
			t.selfClose = true
			return nil
		}
		if !spaced {
			return syntaxError("expected whitespace before an attribute of <" + joinName(prefix, local) + ">")
		}
		c.unget()
		ap, al, err := r.readName()
		if err != nil {
			return err
		}
		if _, err := r.skipSpace(); err != nil {
			return err
		}
		if b, err = c.getc(); err != nil {
			return err
		}
		if b != '=' {
			return syntaxError("attribute name without = in element")
		}
		if _, err := r.skipSpace(); err != nil {
			return err
		}
		q, err := c.getc()
		if err != nil {
			return err
		}
		if q != '\'' && q != '"' {
			return syntaxError("unquoted or missing attribute value in element")
		}
		v, err := r.readAttrValue(q)
		if err != nil {
			return err
		}
		t.attrs = append(t.attrs, rawAttr{prefix: ap, local: al, value: v})
	}
}

func (r *Reader) readEndTag() error {
	prefix, local, err := r.readName()
	if err != nil {
		return err
	}
	if _, err := r.skipSpace(); err != nil {
		return err
	}
	b, err := r.src.getc()
	if err != nil {
		return err
	}
	if b != '>' {
		return syntaxError("invalid characters between </" + joinName(prefix, local) + " and >")
	}
	r.tok.kind, r.tok.prefix, r.tok.local = tokEnd, prefix, local
	return nil
}

// readPI reads a processing instruction after "<?". Only the XML
// declaration is read to its end (its version and encoding matter); any
// other is refused as soon as its target is known.
func (r *Reader) readPI() error {
	c := &r.src
	var target []byte
	for {
		b, err := c.getc()
		if err != nil {
			return err
		}
		if byteClass[b]&nameChar == 0 && b < utf8.RuneSelf {
			c.unget()
			break
		}
		target = append(target, b)
		if len(target) > 16 {
			break
		}
	}
	if string(target) != "xml" {
		r.tok.kind, r.tok.what = tokRestricted, "processing instruction"
		return nil
	}
	// The declaration's content, up to "?>".
	content := r.tok.text[:0]
	for {
		b, err := c.getc()
		if err != nil {
			return err
		}
		if b == '>' && len(content) > 0 && content[len(content)-1] == '?' {
			content = content[:len(content)-1]
			break
		}
		content = append(content, b)
	}
	r.tok.text = content
	if len(content) > 0 && byteClass[content[0]]&space == 0 {
		return syntaxError("invalid XML declaration")
	}
	if v, ok := declAttr(content, "version"); ok && v != "1.0" {
		return syntaxError("unsupported XML version " + strconv.Quote(v) + "; only version 1.0 is supported")
	}
	if e, ok := declAttr(content, "encoding"); ok && !equalFoldASCII(e, "utf-8") {
		return &Error{Condition: "unsupported-encoding", Text: "only UTF-8 is supported"}
	}
	r.tok.kind = tokDecl
	return nil
}

// declAttr finds name='value' (or "value") in an XML declaration.
func declAttr(content []byte, name string) (string, bool) {
	s := string(content)
	for i := 0; i+len(name) <= len(s); i++ {
		if s[i:i+len(name)] != name || (i > 0 && byteClass[s[i-1]]&space == 0) {
			continue
		}
		rest := s[i+len(name):]
		j := 0
		for j < len(rest) && byteClass[rest[j]]&space != 0 {
			j++
		}
		if j == len(rest) || rest[j] != '=' {
			continue
		}
		j++
		for j < len(rest) && byteClass[rest[j]]&space != 0 {
			j++
		}
		if j == len(rest) || (rest[j] != '\'' && rest[j] != '"') {
			return "", true
		}
		q := rest[j]
		rest = rest[j+1:]
		for k := 0; k < len(rest); k++ {
			if rest[k] == q {
				return rest[:k], true
			}
		}
		return "", true
	}
	return "", false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// readBang reads what follows "<!": a CDATA section is text, a comment or
// a DTD is refused at once.
func (r *Reader) readBang() error {
	c := &r.src
	b, err := c.getc()
	if err != nil {
		return err
	}
	switch b {
	case '-':
		if b, err = c.getc(); err != nil {
			return err
		}
		if b != '-' {
			return syntaxError("invalid sequence <!- not part of <!--")
		}
		r.tok.kind, r.tok.what = tokRestricted, "comment"
		return nil
	case '[':
		for i := 0; i < len("CDATA["); i++ {
			if b, err = c.getc(); err != nil {
				return err
			}
			if b != "CDATA["[i] {
				return syntaxError("invalid <![ sequence")
			}
		}
		return r.readCDATA()
	}
	r.tok.kind, r.tok.what = tokRestricted, "DTD or directive"
	return nil
}

// readCDATA reads a CDATA section's text after "<![CDATA[".
func (r *Reader) readCDATA() error {
	c := &r.src
	t := r.tok.text[:0]
	brackets := 0
	for {
		b, err := c.getc()
		if err != nil {
			r.tok.text = t
			return err
		}
		switch {
		case b == ']':
			brackets++
			t = append(t, b)
			continue
		case b == '>' && brackets >= 2:
			r.tok.kind, r.tok.text = tokText, t[:len(t)-2]
			return nil
		default:
			t, err = r.appendChar(t, b, false)
		}
		brackets = 0
		if err != nil {
			r.tok.text = t
			return err
		}
	}
}

// readText reads text up to the next '<'.
func (r *Reader) readText() error {
	c := &r.src
	t := r.tok.text[:0]
	brackets := 0
	for {
		n := len(t)
		if t = c.appendRun(t, textPlain); len(t) > n {
			brackets = 0
		}
		b, err := c.getc()
		if err != nil {
			r.tok.text = t
			return err
		}
		switch {
		case b == '<':
			c.unget()
			r.tok.kind, r.tok.text = tokText, t
			return nil
		case b == ']':
			brackets++
			t = append(t, b)
			continue
		case b == '>' && brackets >= 2:
			r.tok.text = t
			return syntaxError("unescaped ]]> not in CDATA section")
		default:
			t, err = r.appendChar(t, b, true)
		}
		brackets = 0
		if err != nil {
			r.tok.text = t
			return err
		}
	}
}

// readAttrValue reads an attribute value up to its closing quote q.
func (r *Reader) readAttrValue(q byte) (string, error) {
	t, err := r.appendAttrValue(r.tok.text[:0], q)
	r.tok.text = t
	if err != nil {
		return "", err
	}
	return intern(t), nil
}

func (r *Reader) appendAttrValue(t []byte, q byte) ([]byte, error) {
	c := &r.src
	for {
		t = c.appendRun(t, attrPlain)
		b, err := c.getc()
		if err != nil {
			return t, err
		}
		switch {
		case b == q:
			return t, nil
		case b == '<':
			return t, syntaxError("unescaped < inside quoted string")
		default:
			t, err = r.appendChar(t, b, true)
		}
		if err != nil {
			return t, err
		}
	}
}

// appendRun appends the bytes of class at the front of the buffer and
// consumes them.
func (c *source) appendRun(t []byte, class uint8) []byte {
	w := c.window()
	i := 0
	for i < len(w) && byteClass[w[i]]&class != 0 {
		i++
	}
	c.advance(i)
	return append(t, w[:i]...)
}

// appendChar appends the character that b, just read, starts in text or
// an attribute value: a reference's (where refs), LF for a CR, a UTF-8
// sequence, or b itself where XML allows it.
func (r *Reader) appendChar(t []byte, b byte, refs bool) ([]byte, error) {
	switch {
	case b == '&' && refs:
		return r.appendRef(t)
	case b == '\r':
		return r.appendNewline(t)
	case b >= utf8.RuneSelf:
		r.src.unget()
		return r.appendRune(t)
	case b < 0x20 && b != '\t' && b != '\n':
		return t, badChar(rune(b))
	}
	return append(t, b), nil
}

// appendNewline appends the LF that a CR (just read), or a CR LF, stands for.
func (r *Reader) appendNewline(t []byte) ([]byte, error) {
	b, err := r.src.getc()
	if err != nil {
		return t, err
	}
	if b != '\n' {
		r.src.unget()
	}
	return append(t, '\n'), nil
}

// appendRune reads one UTF-8 encoded character and appends it, refusing
// bad UTF-8 and the characters XML does not allow.
func (r *Reader) appendRune(t []byte) ([]byte, error) {
	c := &r.src
	var ch rune
	var size int
	if w := c.window(); utf8.FullRune(w) {
		ch, size = utf8.DecodeRune(w)
		if ch == utf8.RuneError && size <= 1 {
			return t, syntaxError("invalid UTF-8")
		}
		t = append(t, w[:size]...)
		c.advance(size)
	} else {
		// The character straddles the end of the buffer.
		var p [utf8.UTFMax]byte
		n := 0
		for !utf8.FullRune(p[:n]) {
			b, err := c.getc()
			if err != nil {
				return t, err
			}
			p[n] = b
			n++
		}
		ch, size = utf8.DecodeRune(p[:n])
		if ch == utf8.RuneError && size <= 1 {
			return t, syntaxError("invalid UTF-8")
		}
		t = append(t, p[:n]...)
	}
	if !xmlChar(uint32(ch)) {
		return t, badChar(ch)
	}
	return t, nil
}

func badChar(ch rune) error {
	if ch == 0xFFFE || ch == 0xFFFF {
		return syntaxError("U+FFFE and U+FFFF are not XML characters")
	}
	return syntaxError("illegal character code U+" + strconv.FormatInt(int64(ch), 16))
}

// appendRef decodes a reference after its '&' and appends its character.
func (r *Reader) appendRef(t []byte) ([]byte, error) {
	c := &r.src
	var name [12]byte
	n := 0
	for {
		b, err := c.getc()
		if err != nil {
			return t, err
		}
		if b == ';' {
			break
		}
		if n == len(name) || (byteClass[b]&nameChar == 0 && b != '#') {
			return t, syntaxError("invalid character entity &" + string(name[:n]) + " (no semicolon)")
		}
		name[n] = b
		n++
	}
	s := name[:n]
	switch string(s) {
	case "lt":
		return append(t, '<'), nil
	case "gt":
		return append(t, '>'), nil
	case "amp":
		return append(t, '&'), nil
	case "apos":
		return append(t, '\''), nil
	case "quot":
		return append(t, '"'), nil
	}
	if len(s) < 2 || s[0] != '#' {
		return t, syntaxError("invalid character entity &" + string(s) + ";")
	}
	digits, base := s[1:], uint32(10)
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 {
		return t, syntaxError("invalid character entity &" + string(s) + ";")
	}
	var v uint32
	for _, d := range digits {
		var x uint32
		switch {
		case '0' <= d && d <= '9':
			x = uint32(d - '0')
		case base == 16 && 'a' <= d && d <= 'f':
			x = uint32(d-'a') + 10
		case base == 16 && 'A' <= d && d <= 'F':
			x = uint32(d-'A') + 10
		default:
			return t, syntaxError("invalid character entity &" + string(s) + ";")
		}
		v = min(v*base+x, 0x110000)
	}
	if !xmlChar(v) {
		return t, syntaxError("character reference to a code point that XML does not allow")
	}
	return utf8.AppendRune(t, rune(v)), nil
}

// xmlChar reports whether c matches XML 1.0's Char production.
func xmlChar(c uint32) bool {
	return c == 0x9 || c == 0xA || c == 0xD ||
		0x20 <= c && c <= 0xD7FF ||
		0xE000 <= c && c <= 0xFFFD ||
		0x10000 <= c && c <= 0x10FFFF
}

// skipSpace consumes whitespace and reports whether there was any.
func (r *Reader) skipSpace() (bool, error) {
	c := &r.src
	spaced := false
	for {
		b, err := c.getc()
		if err != nil {
			return spaced, err
		}
		if byteClass[b]&space == 0 {
			c.unget()
			return spaced, nil
		}
		spaced = true
	}
}

// readName reads a name and splits it at its colon, if it has one.
func (r *Reader) readName() (prefix, local string, err error) {
	c := &r.src
	w := c.window()
	i, colon := 0, -1
	for i < len(w) && byteClass[w[i]]&nameChar != 0 {
		if w[i] == ':' {
			if colon >= 0 {
				return "", "", syntaxError("invalid name: more than one colon")
			}
			colon = i
		}
		i++
	}
	if i < len(w) && w[i] < utf8.RuneSelf {
		// The whole name is in the buffer, in ASCII: no copy.
		if i == 0 || byteClass[w[0]]&nameStart == 0 {
			return "", "", syntaxError("expected a name")
		}
		prefix, local, err = splitName(w[:i], colon)
		c.advance(i)
		return prefix, local, err
	}
	return r.readNameSlow()
}

// readNameSlow reads a name that is not ASCII or not all buffered.
func (r *Reader) readNameSlow() (prefix, local string, err error) {
	c := &r.src
	var stack [64]byte
	name, colon := stack[:0], -1
	for {
		b, err := c.getc()
		if err != nil {
			return "", "", err
		}
		if b < utf8.RuneSelf {
			if byteClass[b]&nameChar == 0 {
				c.unget()
				break
			}
			if len(name) == 0 && byteClass[b]&nameStart == 0 {
				return "", "", syntaxError("expected a name")
			}
			if b == ':' {
				if colon >= 0 {
					return "", "", syntaxError("invalid name: more than one colon")
				}
				colon = len(name)
			}
			name = append(name, b)
			continue
		}
		c.unget()
		start := len(name)
		if name, err = r.appendRune(name); err != nil {
			return "", "", err
		}
		ch, _ := utf8.DecodeRune(name[start:])
		if !nameRune(ch, start == 0) {
			return "", "", syntaxError("invalid character " + strconv.QuoteRune(ch) + " in a name")
		}
	}
	if len(name) == 0 {
		return "", "", syntaxError("expected a name")
	}
	return splitName(name, colon)
}

// nameRune reports whether the non-ASCII ch may be in a name (XML 1.0
// fifth edition, NameStartChar and NameChar).
func nameRune(ch rune, first bool) bool {
	switch {
	case 0xC0 <= ch && ch <= 0xD6, 0xD8 <= ch && ch <= 0xF6, 0xF8 <= ch && ch <= 0x2FF,
		0x370 <= ch && ch <= 0x37D, 0x37F <= ch && ch <= 0x1FFF, 0x200C <= ch && ch <= 0x200D,
		0x2070 <= ch && ch <= 0x218F, 0x2C00 <= ch && ch <= 0x2FEF, 0x3001 <= ch && ch <= 0xD7FF,
		0xF900 <= ch && ch <= 0xFDCF, 0xFDF0 <= ch && ch <= 0xFFFD, 0x10000 <= ch && ch <= 0xEFFFF:
		return true
	case ch == 0xB7, 0x300 <= ch && ch <= 0x36F, 0x203F <= ch && ch <= 0x2040:
		return !first
	}
	return false
}

// splitName splits a name at its colon (at index colon, -1 for none).
func splitName(name []byte, colon int) (prefix, local string, err error) {
	if colon < 0 {
		return "", intern(name), nil
	}
	if colon == 0 || colon == len(name)-1 {
		return "", "", syntaxError("invalid name " + strconv.Quote(string(name)))
	}
	return intern(name[:colon]), intern(name[colon+1:]), nil
}

func joinName(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}
