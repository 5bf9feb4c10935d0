package xmlstream

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// escapeOracle is appendEscaped written the plain way, a rune at a time,
// to check the word-at-a-time skipping against.
func escapeOracle(s string, attr bool) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r == 0xFFFE, r == 0xFFFF:
			b.WriteString("\uFFFD")
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '\r':
			b.WriteString("&#xD;")
		case attr && r == '\'':
			b.WriteString("&apos;")
		case attr && r == '"':
			b.WriteString("&quot;")
		case attr && r == '\n':
			b.WriteString("&#xA;")
		case attr && r == '\t':
			b.WriteString("&#x9;")
		case r < 0x20 && r != '\t' && r != '\n':
			b.WriteString("\uFFFD")
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// TestEscapeWords: every byte value in every position of a word, and
// words of several special and plain bytes at once (where a carry or a
// borrow from one byte could hide or fake another), escape as the oracle
// does, in text and in attributes.
func TestEscapeWords(t *testing.T) {
	check := func(s string) {
		t.Helper()
		for _, attr := range []bool{false, true} {
			if got, want := string(appendEscaped(nil, s, attr)), escapeOracle(s, attr); got != want {
				t.Fatalf("appendEscaped(%q, %v) = %q, want %q", s, attr, got, want)
			}
		}
	}
	for pos := range 8 {
		for v := range 256 {
			w := []byte("abcdefghijklmnop")
			w[pos] = byte(v)
			check(string(w))
		}
	}
	alphabet := []byte{0x00, 0x01, '\t', '\n', '\r', 0x1f, ' ', '!', '"', '%', '&', '\'', ';', '<', '=', '>', '?', 'a', 0x7e, 0x7f, 0x80, 0xd0, 0xff}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		w := make([]byte, 8+rng.IntN(17))
		for i := range w {
			w[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(w))
	}
}

func FuzzAppendEscaped(f *testing.F) {
	for _, s := range []string{
		"", "hello bob, hello bob, hello bob", "a<b>&c'd\"e\r\nf\tg\x00h\x1f",
		"Привет, мир! ещё раз", "\xff\xfe broken \xc3", "\uFFFE\uFFFF", "12345678<2345678&",
		strings.Repeat("x", 63) + "&", "émoji 🐟 and text past eight bytes",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, attr bool) {
		if got, want := string(appendEscaped(nil, s, attr)), escapeOracle(s, attr); got != want {
			t.Fatalf("appendEscaped(%q, %v) = %q, want %q", s, attr, got, want)
		}
	})
}

func BenchmarkAppendEscaped(b *testing.B) {
	for _, c := range []struct{ name, s string }{
		{"ascii-275", strings.Repeat("hello bob, ", 25)},
		{"lines-275", strings.Repeat("hello bob\n", 27) + "hello"},
		{"cyrillic-275", strings.Repeat("привет ", 21) + "при"},
		{"id-16", "06h4w0w2pd92et0q"},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := appendEscaped(nil, c.s, false)
			b.SetBytes(int64(len(c.s)))
			for b.Loop() {
				buf = appendEscaped(buf[:0], c.s, false)
			}
		})
	}
}
