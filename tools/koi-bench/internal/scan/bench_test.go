package scan

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkScanMessages is the receive cost per message in koi-bench:
// splitting a read's worth of routed messages and finding each id.
func BenchmarkScanMessages(b *testing.B) {
	msg := []byte("<message from='kb1@localhost/kb' to='kb2@localhost' type='chat' id='kb0123abcd.0000000000000001.00000000000f4240' xmlns='jabber:client'><body>The quick brown fox jumps over the lazy dog. The quick brown f</body></message>")
	batch := bytes.Repeat(msg, 64)
	stream := append([]byte("<stream:stream xmlns='jabber:client'>"), batch...)
	r := &loopReader{head: stream, body: batch}
	sc := NewScanner(r, 16<<10, 0)
	if _, err := sc.Next(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		tok, err := sc.Next()
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := Attr(tok.Raw, "id"); !ok {
			b.Fatal("no id")
		}
	}
}

// loopReader serves head once, then body forever.
type loopReader struct {
	head, body []byte
	off        int
}

func (l *loopReader) Read(p []byte) (int, error) {
	if l.head != nil {
		n := copy(p, l.head)
		l.head = l.head[n:]
		if len(l.head) == 0 {
			l.head = nil
		}
		return n, nil
	}
	if len(l.body) == 0 {
		return 0, io.EOF
	}
	n := copy(p, l.body[l.off:])
	l.off = (l.off + n) % len(l.body)
	return n, nil
}
