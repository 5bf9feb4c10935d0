package upload

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxFilename bounds the file name a client may announce, in bytes: what
// common file systems allow for one name.
const maxFilename = 255

// maxURLName bounds the name in the slot's URLs, in bytes, before
// percent-encoding.
const maxURLName = 100

// maxExtension is the longest extension (with its dot) kept whole when a
// name is shortened for the URL.
const maxExtension = 16

// checkFilename returns why a file name announced in a slot request is
// refused, or "". The name is never used to build a storage path (the
// slot's random id is), but one that only makes sense as an attack on a
// path gets a clear error rather than a silent rewrite.
func checkFilename(name string) string {
	switch {
	case name == "":
		return "the filename attribute is missing or empty"
	case len(name) > maxFilename:
		return "the file name is longer than 255 bytes"
	case !utf8.ValidString(name):
		return "the file name is not valid UTF-8"
	case name == "." || name == "..":
		return "the file name is a path, not a name"
	case strings.ContainsAny(name, "/\\"):
		return "the file name must not contain a path separator"
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return "the file name must not contain control characters"
		}
	}
	return ""
}

// urlName is the form of a (checked) file name used in the slot's URLs:
// letters, digits, dots, hyphens and underscores kept, in NFC, anything
// else (spaces, URL syntax, quotes, brackets) made an underscore, no leading dot, the
// extension kept when the name is shortened. The original name is kept
// beside the file for the download's Content-Disposition.
func urlName(name string) string {
	var b strings.Builder
	for _, r := range norm.NFC.String(name) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		case strings.ContainsRune(".-_", r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), ".")
	if len(s) > maxURLName {
		ext := ""
		if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i <= maxExtension {
			ext = s[i:]
		}
		s = truncate(s[:len(s)-len(ext)], maxURLName-len(ext)) + ext
	}
	if strings.Trim(s, "._") == "" {
		return "file"
	}
	return s
}

// truncate shortens s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// validURLName reports whether s could be a name urlName made; requests
// for anything else are refused before any storage is touched.
func validURLName(s string) bool {
	if s == "" || len(s) > maxURLName || s[0] == '.' || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || strings.ContainsRune(".-_", r)) {
			return false
		}
	}
	return true
}
