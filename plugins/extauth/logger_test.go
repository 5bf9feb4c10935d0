package extauth

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Every level carries the outer args first, then the inner ones, then the
// line's own, and a line's args never leak into the next line.
func TestWithArgs(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // so that the lines can be compared
			}
			return a
		},
	}))
	log := withArgs(withArgs(base, "instance", 1), "pid", 42)
	log.Debug("d", "k", "v1")
	log.Info("i")
	log.Warn("w", "k", "v3")
	log.Error("e")
	want := []string{
		`level=DEBUG msg=d instance=1 pid=42 k=v1`,
		`level=INFO msg=i instance=1 pid=42`,
		`level=WARN msg=w instance=1 pid=42 k=v3`,
		`level=ERROR msg=e instance=1 pid=42`,
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
