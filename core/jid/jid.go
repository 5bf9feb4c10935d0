// Package jid parses, normalises and formats XMPP addresses (RFC 7622).
//
// A JID holds its three parts already normalised, so two JIDs that denote
// the same address compare equal with ==.
package jid

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"
)

// ErrMalformed is wrapped by every error from Parse, New, WithResource,
// NormalizeLocal and NormalizeResource. Its text is the RFC 6120 stanza
// error condition to send back.
var ErrMalformed = errors.New("jid-malformed")

const (
	// maxPart is the RFC 7622 §3.1 limit for each part, in bytes, after
	// normalisation.
	maxPart = 1023
	// maxRawPart bounds the input handed to PRECIS and IDNA. Normalisation
	// can shrink a part (fullwidth forms are three bytes, their ASCII
	// mapping one), so the raw bound is looser than maxPart; it exists so a
	// peer cannot make us normalise megabytes.
	maxRawPart = 4 * maxPart
	// localProhibited are the characters RFC 7622 §3.3.1 forbids in a
	// localpart on top of the UsernameCaseMapped profile.
	localProhibited = `"&'/:<>@`
)

// domainProfile is the UTS #46 lookup mapping with the checks RFC 7622
// §3.2 asks for: lowercase, width and NFC mapping, STD3 (LDH) rules,
// hyphen and joiner checks, and the Bidi rule; A-labels become U-labels.
var domainProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
)

// JID is a normalised XMPP address. The zero value is the empty address,
// which is not valid on the wire (see IsZero).
type JID struct {
	local, domain, resource string
}

// Parse splits s into its parts per RFC 7622 §3.1 (resource from the first
// '/', then localpart up to the first '@') and normalises each part.
func Parse(s string) (JID, error) {
	rest, resource, hasResource := strings.Cut(s, "/")
	if hasResource && resource == "" {
		return JID{}, malformed("empty resourcepart")
	}
	local, domain, hasLocal := strings.Cut(rest, "@")
	if !hasLocal {
		local, domain = "", rest
	} else if local == "" {
		return JID{}, malformed("empty localpart")
	}
	return New(local, domain, resource)
}

// New builds a JID from its parts, normalising each. The domain is
// required; local and resource may be empty.
func New(local, domain, resource string) (JID, error) {
	var j JID
	var err error
	if j.domain, err = normalizeDomain(domain); err != nil {
		return JID{}, err
	}
	if local != "" {
		if j.local, err = NormalizeLocal(local); err != nil {
			return JID{}, err
		}
	}
	if resource != "" {
		if j.resource, err = NormalizeResource(resource); err != nil {
			return JID{}, err
		}
	}
	return j, nil
}

// MustParse is Parse for constants and tests: it panics on error.
func MustParse(s string) JID {
	j, err := Parse(s)
	if err != nil {
		panic(fmt.Sprintf("jid.MustParse(%q): %v", s, err))
	}
	return j
}

// Local returns the normalised localpart, "" if none.
func (j JID) Local() string { return j.local }

// Domain returns the normalised domainpart.
func (j JID) Domain() string { return j.domain }

// Resource returns the resourcepart, "" if none.
func (j JID) Resource() string { return j.resource }

// Bare returns j without its resource.
func (j JID) Bare() JID { return JID{local: j.local, domain: j.domain} }

// Domainpart returns the JID made of j's domain alone.
func (j JID) Domainpart() JID { return JID{domain: j.domain} }

// WithResource returns j with its resource replaced by r, normalised. An
// empty r yields the bare JID.
func (j JID) WithResource(r string) (JID, error) {
	j.resource = ""
	if r == "" {
		return j, nil
	}
	var err error
	if j.resource, err = NormalizeResource(r); err != nil {
		return JID{}, err
	}
	return j, nil
}

// IsBare reports whether j has no resource.
func (j JID) IsBare() bool { return j.resource == "" }

// IsZero reports whether j is the zero JID.
func (j JID) IsZero() bool { return j == JID{} }

// IsDomain reports whether j is a bare domain: a domain, no local, no
// resource.
func (j JID) IsDomain() bool { return j.domain != "" && j.local == "" && j.resource == "" }

// String returns the canonical text form local@domain/resource.
func (j JID) String() string {
	if j.local == "" && j.resource == "" {
		return j.domain
	}
	n := len(j.domain)
	if j.local != "" {
		n += len(j.local) + 1
	}
	if j.resource != "" {
		n += len(j.resource) + 1
	}
	var b strings.Builder
	b.Grow(n)
	if j.local != "" {
		b.WriteString(j.local)
		b.WriteByte('@')
	}
	b.WriteString(j.domain)
	if j.resource != "" {
		b.WriteByte('/')
		b.WriteString(j.resource)
	}
	return b.String()
}

// Reuse returns s if it spells j's canonical form already, and String
// otherwise: a stanza's address is rewritten in canonical form, and most
// are canonical as sent, so the common case builds no string.
func (j JID) Reuse(s string) string {
	if j.spells(s) {
		return s
	}
	return j.String()
}

// ReuseBare returns the canonical form of j's bare JID, as a prefix of s
// when s spells j (full or bare) already, so that the common case builds
// no string; otherwise it builds one.
func (j JID) ReuseBare(s string) string {
	if j.resource != "" && j.spells(s) {
		return s[:len(s)-len(j.resource)-1]
	}
	return j.Bare().Reuse(s)
}

// Spells reports whether s is j's canonical form, byte for byte.
func (j JID) Spells(s string) bool { return j.spells(s) }

// ParseKnown is Parse(s), but returns known at no cost when it is not zero
// and s spells it: routing code usually has the sender's JID at hand.
func ParseKnown(s string, known JID) (JID, error) {
	if known.IsZero() || !known.spells(s) {
		return Parse(s)
	}
	return known, nil
}

func (j JID) spells(s string) bool {
	if j.local != "" {
		if !strings.HasPrefix(s, j.local) || len(s) == len(j.local) || s[len(j.local)] != '@' {
			return false
		}
		s = s[len(j.local)+1:]
	}
	if !strings.HasPrefix(s, j.domain) {
		return false
	}
	s = s[len(j.domain):]
	if j.resource == "" {
		return s == ""
	}
	return len(s) == len(j.resource)+1 && s[0] == '/' && s[1:] == j.resource
}

// NormalizeLocal applies the RFC 7622 §3.3 localpart rules
// (UsernameCaseMapped plus the extra prohibited characters) to s. It is
// also the normalisation for SASL usernames, so that an account name and
// the localpart of its JID agree.
func NormalizeLocal(s string) (string, error) {
	if s == "" {
		return "", malformed("empty localpart")
	}
	if len(s) > maxRawPart {
		return "", malformed("localpart too long")
	}
	// PRECIS would quietly turn invalid UTF-8 into U+FFFD.
	if !utf8.ValidString(s) {
		return "", malformed("localpart is not UTF-8")
	}
	out, ok := asciiLocal(s)
	if !ok {
		var err error
		out, err = precis.UsernameCaseMapped.String(s)
		if err != nil {
			return "", fmt.Errorf("%w: localpart: %w", ErrMalformed, err)
		}
	}
	if len(out) > maxPart {
		return "", malformed("localpart too long")
	}
	if strings.ContainsAny(out, localProhibited) {
		return "", malformed(`localpart contains one of "&'/:<>@`)
	}
	return out, nil
}

// NormalizeResource applies the RFC 7622 §3.4 resourcepart rules
// (OpaqueString) to s.
func NormalizeResource(s string) (string, error) {
	if s == "" {
		return "", malformed("empty resourcepart")
	}
	if len(s) > maxRawPart {
		return "", malformed("resourcepart too long")
	}
	out := s
	if !printableASCII(s) {
		if !utf8.ValidString(s) {
			return "", malformed("resourcepart is not UTF-8")
		}
		var err error
		out, err = precis.OpaqueString.String(s)
		if err != nil {
			return "", fmt.Errorf("%w: resourcepart: %w", ErrMalformed, err)
		}
	}
	if len(out) > maxPart {
		return "", malformed("resourcepart too long")
	}
	return out, nil
}

// normalizeDomain applies RFC 7622 §3.2: strip one trailing dot, accept IP
// literals, otherwise IDNA-map to U-labels.
func normalizeDomain(s string) (string, error) {
	if len(s) > maxRawPart {
		return "", malformed("domainpart too long")
	}
	stripped := strings.HasSuffix(s, ".")
	if stripped {
		s = s[:len(s)-1]
	}
	if s == "" {
		return "", malformed("empty domainpart")
	}
	if s[0] == '[' {
		return ipv6Literal(s)
	}
	out, ok := asciiDomain(s)
	if !ok {
		if !utf8.ValidString(s) {
			return "", malformed("domainpart is not UTF-8")
		}
		var err error
		out, err = domainProfile.ToUnicode(s)
		if err != nil {
			return "", fmt.Errorf("%w: domainpart: %w", ErrMalformed, err)
		}
		// A final separator may only show up after mapping (U+3002 and
		// friends); it is stripped like an ASCII one, but only once.
		if !stripped {
			out = strings.TrimSuffix(out, ".")
		}
		// The IDNA mapping can produce an empty label from input such as
		// U+3002 (ideographic full stop) next to a dot.
		if !labelsNonEmpty(out) {
			return "", malformed("empty label in domainpart")
		}
	}
	if len(out) > maxPart {
		return "", malformed("domainpart too long")
	}
	return out, nil
}

// ipv6Literal accepts "[addr]" for an IPv6 address without zone and
// returns it in canonical (RFC 5952) form so equal addresses compare equal.
func ipv6Literal(s string) (string, error) {
	if len(s) < 3 || s[len(s)-1] != ']' {
		return "", malformed("bad IP literal in domainpart")
	}
	addr, err := netip.ParseAddr(s[1 : len(s)-1])
	if err != nil || !addr.Is6() || addr.Zone() != "" {
		return "", malformed("bad IPv6 literal in domainpart")
	}
	return "[" + addr.String() + "]", nil
}

// asciiLocal is the UsernameCaseMapped profile for the common all-ASCII
// case: IdentifierClass allows exactly U+0021..U+007E there, width and NFC
// mapping are no-ops and the Bidi rule cannot fire, so only lowercasing is
// left. ok is false when the input needs the full profile.
func asciiLocal(s string) (string, bool) {
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e {
			return "", false
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if !upper {
		return s, true
	}
	return toLowerASCII(s), true
}

// printableASCII reports whether s is all U+0020..U+007E, for which the
// OpaqueString profile is the identity.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// asciiDomain handles the common case of a plain LDH host name without
// A-labels, which IDNA would only lowercase. ok is false when the input
// needs full IDNA processing or is invalid (IDNA then reports why).
func asciiDomain(s string) (string, bool) {
	upper := false
	labelStart := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			label := s[labelStart:i]
			// Empty labels, leading or trailing hyphens and "??--" (which
			// includes A-labels) go the slow way.
			if label == "" || label[0] == '-' || label[len(label)-1] == '-' ||
				(len(label) >= 4 && label[2] == '-' && label[3] == '-') {
				return "", false
			}
			labelStart = i + 1
			continue
		}
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
		case 'A' <= c && c <= 'Z':
			upper = true
		default:
			return "", false
		}
	}
	if !upper {
		return s, true
	}
	return toLowerASCII(s), true
}

func labelsNonEmpty(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	return !strings.Contains(s, "..")
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func malformed(msg string) error {
	return fmt.Errorf("%w: %s", ErrMalformed, msg)
}
