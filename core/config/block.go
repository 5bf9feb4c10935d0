package config

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/net/idna"
)

// block is one block of the tree being decoded, with the schema of its keys.
type block struct {
	d    *decoder
	path []string
	m    map[string]any
	kind map[string]kind
}

// block checks v is a block and reports its unknown keys. An absent block
// (v == nil) decodes to all defaults.
func (d *decoder) block(path []string, v any) *block {
	keys, _ := blockKeys(path[0])
	b := &block{d: d, path: path, kind: keys}
	switch t := v.(type) {
	case nil:
	case map[string]any:
		b.m = t
		for _, k := range slices.Sorted(maps.Keys(t)) {
			if _, ok := keys[k]; !ok {
				d.problem(b.at(k), "unknown key%s", suggest(k, slices.Collect(maps.Keys(keys))))
			}
		}
	case []any:
		d.problem(path, "want one block, got a list (is the block written twice?)")
	default:
		d.problem(path, "want a block, got %s", describe(v))
	}
	return b
}

func (b *block) at(key string) []string {
	return append(slices.Clone(b.path), key)
}

func (b *block) has(key string) bool {
	_, ok := b.m[key]
	return ok
}

func (b *block) get(key string) (any, bool) {
	v, ok := b.m[key]
	return v, ok
}

// str returns a string value; ok is false when the key is absent or not a
// string (the latter reported).
func (b *block) str(key string) (string, bool) {
	v, ok := b.m[key]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		b.d.problem(b.at(key), "want a string, got %s", describe(v))
	}
	return s, ok
}

// nonEmpty returns a string value that must not be empty, or def.
func (b *block) nonEmpty(key, def string) string {
	s, ok := b.str(key)
	if !ok {
		return def
	}
	if s == "" {
		b.d.problem(b.at(key), "must not be empty")
		return def
	}
	return s
}

// enum returns one of allowed (matched case-insensitively), or def.
func (b *block) enum(key, def string, allowed ...string) string {
	s, ok := b.str(key)
	if !ok {
		return def
	}
	if l := strings.ToLower(s); slices.Contains(allowed, l) {
		return l
	}
	q := make([]string, len(allowed))
	for i, a := range allowed {
		q[i] = quote(a)
	}
	b.d.problem(b.at(key), "want one of %s, got %s", strings.Join(q, ", "), quote(s))
	return def
}

func (b *block) boolean(key string, def bool) bool {
	v, ok := b.m[key]
	if !ok {
		return def
	}
	t, ok := v.(bool)
	if !ok {
		b.d.problem(b.at(key), "want true or false, got %s", describe(v))
		return def
	}
	return t
}

// integer returns a non-negative integer (positive when positive is set),
// or def.
func (b *block) integer(key string, def int64, positive bool) int64 {
	v, ok := b.m[key]
	if !ok {
		return def
	}
	var n int64
	switch t := v.(type) {
	case int:
		n = int64(t)
	case int64:
		n = t
	default:
		b.d.problem(b.at(key), "want an integer, got %s", describe(v))
		return def
	}
	switch {
	case n < 0:
		b.d.problem(b.at(key), "must not be negative, got %d", n)
		return def
	case n == 0 && positive:
		b.d.problem(b.at(key), "must be greater than 0")
		return def
	}
	return n
}

// duration returns a non-negative duration written as a string like "5s"
// (positive when positive is set), or def.
func (b *block) duration(key string, def time.Duration, positive bool) time.Duration {
	v, ok := b.m[key]
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		b.d.problem(b.at(key), `want a duration string like "5s", got %s`, describe(v))
		return def
	}
	t, err := time.ParseDuration(s)
	switch {
	case err != nil:
		b.d.problem(b.at(key), `want a duration like "5s" or "1m30s", got %s`, quote(s))
		return def
	case t < 0:
		b.d.problem(b.at(key), "must not be negative, got %s", quote(s))
		return def
	case t == 0 && positive:
		b.d.problem(b.at(key), "must be greater than 0")
		return def
	}
	return t
}

// list returns a list of strings.
func (b *block) list(key string) []string {
	v, ok := b.m[key]
	if !ok {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		b.d.problem(b.at(key), `want a list of strings like ["-v"], got %s`, describe(v))
		return nil
	}
	return b.strings(key, l)
}

// stringOrList returns a string as a one-element list, or a list of
// strings; ok is false when the value has the wrong type (reported).
func (b *block) stringOrList(key string) (l []string, ok bool) {
	v, ok := b.m[key]
	if !ok {
		return nil, true
	}
	switch t := v.(type) {
	case string:
		return []string{t}, true
	case []any:
		return b.strings(key, t), true
	}
	b.d.problem(b.at(key), "want a string or a list of strings, got %s", describe(v))
	return nil, false
}

func (b *block) strings(key string, l []any) []string {
	out := make([]string, 0, len(l))
	for i, e := range l {
		s, ok := e.(string)
		if !ok {
			b.d.problem(b.at(key), "item %d: want a string, got %s", i+1, describe(e))
			continue
		}
		out = append(out, s)
	}
	return out
}

// describe names the type of a parsed value for messages.
func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "nothing"
	case string:
		return "string " + quote(t)
	case bool:
		return "bool " + strconv.FormatBool(t)
	case int, int64:
		return fmt.Sprintf("integer %d", t)
	case float64:
		return "number " + strconv.FormatFloat(t, 'g', -1, 64)
	case []any:
		return "a list"
	case map[string]any:
		return "a block"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func quote(s string) string { return strconv.Quote(s) }

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// checkAddress checks a host:port listen address; the host may be empty
// (all interfaces). It returns a message, or "".
func checkAddress(a string) string {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return "want host:port, like 127.0.0.1:5222, got " + quote(a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "want a port from 1 to 65535, got " + quote(a)
	}
	return ""
}

// checkDomain checks a host label (lowercased already) is a domain name:
// letters, digits and hyphens in DNS lengths, IDNA2008 lookup rules for
// non-ASCII names. It returns a message, or "".
func checkDomain(name string) string {
	if name == "" {
		return "empty"
	}
	if strings.HasSuffix(name, ".") {
		return "remove the trailing dot"
	}
	ascii := name
	if strings.IndexFunc(name, func(r rune) bool { return r > unicode.MaxASCII }) >= 0 {
		// Internationalised: check it maps to an A-label form, then check
		// that like any other name.
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return strings.TrimPrefix(err.Error(), "idna: ")
		}
		ascii = a
	}
	if len(ascii) > 253 {
		return "longer than 253 bytes"
	}
	for _, l := range strings.Split(ascii, ".") {
		switch {
		case l == "":
			return "empty label"
		case len(l) > 63:
			return "label " + quote(l) + " is longer than 63 bytes"
		case strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-"):
			return "label " + quote(l) + " starts or ends with a hyphen"
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "label " + quote(l) + " has " + quote(string(r)) + "; use letters, digits and hyphens"
			}
		}
	}
	return ""
}
