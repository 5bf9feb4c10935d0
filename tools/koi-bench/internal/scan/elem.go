package scan

import (
	"bytes"
	"strings"
)

// Name returns the local name of the element whose start tag begins raw,
// without its namespace prefix: "features" for <stream:features>.
func Name(raw []byte) []byte {
	if len(raw) < 2 || raw[0] != '<' {
		return nil
	}
	i := 1
	for i < len(raw) && !isNameEnd(raw[i]) {
		i++
	}
	name := raw[1:i]
	if c := bytes.IndexByte(name, ':'); c >= 0 {
		name = name[c+1:]
	}
	return name
}

func isNameEnd(c byte) bool {
	return c == ' ' || c == '>' || c == '/' || c == '\t' || c == '\n' || c == '\r'
}

// IsNamed reports whether raw's element has local name name.
func IsNamed(raw []byte, name string) bool {
	return string(Name(raw)) == name
}

// startTag returns the start tag at the beginning of raw.
func startTag(raw []byte) []byte {
	n, _, ok := tagEnd(raw)
	if !ok {
		return raw
	}
	return raw[:n]
}

// Attr returns the raw (still escaped) value of attribute name on the
// element's start tag. name is matched exactly, prefix included
// ("xml:lang").
func Attr(raw []byte, name string) ([]byte, bool) {
	tag := startTag(raw)
	i := 1
	for i < len(tag) && !isNameEnd(tag[i]) {
		i++
	}
	for i < len(tag) {
		for i < len(tag) && (tag[i] == ' ' || tag[i] == '\t' || tag[i] == '\n' || tag[i] == '\r') {
			i++
		}
		ns := i
		for i < len(tag) && tag[i] != '=' && tag[i] != '>' && tag[i] != '/' && tag[i] != ' ' {
			i++
		}
		an := tag[ns:i]
		for i < len(tag) && tag[i] == ' ' {
			i++
		}
		if i >= len(tag) || tag[i] != '=' {
			return nil, false
		}
		i++
		for i < len(tag) && tag[i] == ' ' {
			i++
		}
		if i >= len(tag) || (tag[i] != '\'' && tag[i] != '"') {
			return nil, false
		}
		q := tag[i]
		j := bytes.IndexByte(tag[i+1:], q)
		if j < 0 {
			return nil, false
		}
		v := tag[i+1 : i+1+j]
		i += j + 2
		if string(an) == name {
			return v, true
		}
	}
	return nil, false
}

// Children calls fn with the raw bytes of every element below the top one
// whose local name is name, at any depth, in document order, until fn
// returns false.
func Children(raw []byte, name string, fn func(child []byte) bool) {
	if len(raw) == 0 {
		return
	}
	n, selfClosing, ok := tagEnd(raw)
	if !ok || selfClosing {
		return
	}
	i := n
	for {
		j := bytes.IndexByte(raw[i:], '<')
		if j < 0 {
			return
		}
		i += j
		if i+1 >= len(raw) || raw[i+1] == '/' || raw[i+1] == '!' || raw[i+1] == '?' {
			i++
			continue
		}
		if string(Name(raw[i:])) == name {
			end := elementEnd(raw[i:])
			if !fn(raw[i : i+end]) {
				return
			}
		}
		i++
	}
}

// Child returns the first element below the top one with local name name.
func Child(raw []byte, name string) ([]byte, bool) {
	var out []byte
	found := false
	Children(raw, name, func(c []byte) bool {
		out, found = c, true
		return false
	})
	return out, found
}

// elementEnd returns the length of the element starting at b[0], or
// len(b) when it is not closed within b.
func elementEnd(b []byte) int {
	depth := 0
	i := 0
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 {
			return len(b)
		}
		i += j
		if i+1 < len(b) && b[i+1] == '/' {
			k := bytes.IndexByte(b[i:], '>')
			if k < 0 {
				return len(b)
			}
			i += k + 1
			depth--
			if depth == 0 {
				return i
			}
			continue
		}
		if i+1 < len(b) && b[i+1] == '!' {
			k, ok, _ := skipSpecial(b[i:])
			if !ok {
				return len(b)
			}
			i += k
			continue
		}
		n, selfClosing, ok := tagEnd(b[i:])
		if !ok {
			return len(b)
		}
		i += n
		if selfClosing {
			if depth == 0 {
				return i
			}
			continue
		}
		depth++
	}
	return len(b)
}

// Text returns the character data directly inside the element (its
// children's text included), with entities and CDATA decoded.
func Text(raw []byte) string {
	n, selfClosing, ok := tagEnd(raw)
	if !ok || selfClosing {
		return ""
	}
	end := bytes.LastIndexByte(raw, '<')
	if end < n {
		return ""
	}
	inner := raw[n:end]
	var sb strings.Builder
	for len(inner) > 0 {
		i := bytes.IndexByte(inner, '<')
		if i < 0 {
			sb.WriteString(Unescape(inner))
			break
		}
		sb.WriteString(Unescape(inner[:i]))
		inner = inner[i:]
		if bytes.HasPrefix(inner, []byte("<![CDATA[")) {
			k := bytes.Index(inner, []byte("]]>"))
			if k < 0 {
				break
			}
			sb.Write(inner[9:k])
			inner = inner[k+3:]
			continue
		}
		k, _, ok := tagEnd(inner)
		if !ok {
			break
		}
		inner = inner[k:]
	}
	return sb.String()
}

// Unescape decodes the five predefined XML entities and numeric character
// references. Unknown entities are kept as written.
func Unescape(b []byte) string {
	if bytes.IndexByte(b, '&') < 0 {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		i := bytes.IndexByte(b, '&')
		if i < 0 {
			sb.Write(b)
			break
		}
		sb.Write(b[:i])
		b = b[i:]
		j := bytes.IndexByte(b, ';')
		if j < 0 {
			sb.Write(b)
			break
		}
		ent := string(b[1:j])
		switch {
		case ent == "amp":
			sb.WriteByte('&')
		case ent == "lt":
			sb.WriteByte('<')
		case ent == "gt":
			sb.WriteByte('>')
		case ent == "apos":
			sb.WriteByte('\'')
		case ent == "quot":
			sb.WriteByte('"')
		case strings.HasPrefix(ent, "#"):
			if r, ok := charRef(ent[1:]); ok {
				sb.WriteRune(r)
			} else {
				sb.Write(b[:j+1])
			}
		default:
			sb.Write(b[:j+1])
		}
		b = b[j+1:]
	}
	return sb.String()
}

func charRef(s string) (rune, bool) {
	base := 10
	if strings.HasPrefix(s, "x") {
		base, s = 16, s[1:]
	}
	if s == "" || len(s) > 8 {
		return 0, false
	}
	var r rune
	for _, c := range s {
		var d rune
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case base == 16 && c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*rune(base) + d
	}
	return r, r <= 0x10FFFF
}

// Escape appends s to dst escaped for use in XML text or a single- or
// double-quoted attribute value.
func Escape(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '\'':
			dst = append(dst, "&apos;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// Elements calls fn with each direct child element of raw's top element,
// in order, until fn returns false.
func Elements(raw []byte, fn func(child []byte) bool) {
	n, selfClosing, ok := tagEnd(raw)
	if !ok || selfClosing {
		return
	}
	i := n
	for i < len(raw) {
		j := bytes.IndexByte(raw[i:], '<')
		if j < 0 || i+j+1 >= len(raw) {
			return
		}
		i += j
		switch raw[i+1] {
		case '/':
			return
		case '!':
			k, ok, _ := skipSpecial(raw[i:])
			if !ok {
				return
			}
			i += k
			continue
		}
		end := elementEnd(raw[i:])
		if !fn(raw[i : i+end]) {
			return
		}
		i += end
	}
}

// Condition returns the local name of the first child element of raw that
// is not <text/>: the defined condition of a stream error, a SASL failure
// or a stanza's <error/> element. It is "" if there is none.
func Condition(raw []byte) string {
	cond := ""
	Elements(raw, func(c []byte) bool {
		if n := string(Name(c)); n != "text" {
			cond = n
			return false
		}
		return true
	})
	return cond
}
