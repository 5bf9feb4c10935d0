package httpbackend

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

func archivedMessage() sdk.ArchivedMessage {
	return sdk.ArchivedMessage{Owner: "juliet@example.com", StanzaID: "s1", Peer: "romeo@example.net",
		Stamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Stanza: "<message/>", Body: "hi"}
}

// TestAppendAnswerChecked: the archive writer forgets a batch the plugin
// reports stored, so a 2xx whose body is not the contract's answer (a
// proxy's error page, a truncated body) must be a temporary failure that
// is retried, never a silent loss.
func TestAppendAnswerChecked(t *testing.T) {
	for _, c := range []struct {
		name   string
		first  string // the body of the first answer, status 200
		status int
	}{
		{"html page", "<html><body>Bad gateway</body></html>", http.StatusOK},
		{"truncated JSON", `{"stored": `, http.StatusOK},
		{"a JSON string", `"xxxx"`, http.StatusOK},
		{"more stored than sent", `{"stored": 2}`, http.StatusOK},
		{"negative count", `{"stored": -1}`, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hits atomic.Int32
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				if hits.Add(1) == 1 {
					w.WriteHeader(c.status)
					io.WriteString(w, c.first)
					return
				}
				io.WriteString(w, `{"stored": 1}`)
			})
			// Without a retry the bad answer is an error koi retries later.
			b := newTestBackend(t, h, map[string]any{"retries": 0})
			err := b.AppendArchive(t.Context(), []sdk.ArchivedMessage{archivedMessage()})
			if !errors.Is(err, sdk.ErrUnavailable) {
				t.Fatalf("AppendArchive answered %q: %v, want an error wrapping sdk.ErrUnavailable", c.first, err)
			}
			// With one, the plugin sends the batch again at once.
			hits.Store(0)
			b = newTestBackend(t, h, map[string]any{"retries": 1, "retry_backoff": "1ms"})
			if err := b.AppendArchive(t.Context(), []sdk.ArchivedMessage{archivedMessage()}); err != nil {
				t.Fatalf("AppendArchive with a retry: %v", err)
			}
			if n := hits.Load(); n != 2 {
				t.Errorf("%d requests, want 2", n)
			}
		})
	}
}

// TestAppendAnswerAccepted: the answers the contract allows are success.
func TestAppendAnswerAccepted(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
	}{
		{http.StatusOK, `{"stored": 1}`},
		{http.StatusOK, `{"stored": 0}`}, // already stored: a repeat
		{http.StatusOK, ` {} `},
		{http.StatusNoContent, ``},
	} {
		var hits atomic.Int32
		b := newTestBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.WriteHeader(c.status)
			io.WriteString(w, c.body)
		}), map[string]any{"retries": 2, "retry_backoff": "1ms"})
		if err := b.AppendArchive(t.Context(), []sdk.ArchivedMessage{archivedMessage()}); err != nil {
			t.Errorf("AppendArchive answered %d %q: %v", c.status, c.body, err)
		}
		if n := hits.Load(); n != 1 {
			t.Errorf("answer %d %q: %d requests, want 1", c.status, c.body, n)
		}
	}
}

// TestAppendBodyUnescaped: stanzas travel as written, not with every <
// and > escaped as \u003c and \u003e (valid JSON, but larger and slower).
func TestAppendBodyUnescaped(t *testing.T) {
	var body []byte
	b := newTestBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	}), nil)
	m := archivedMessage()
	m.Stanza = "<message to='a@b'><body>x &amp; y</body></message>"
	if err := b.AppendArchive(t.Context(), []sdk.ArchivedMessage{m}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte(`"stanza":"<message to='a@b'><body>x &amp; y</body></message>"`)) {
		t.Errorf("append body %s: want the stanza unescaped", body)
	}
	var got wireAppend
	if err := json.Unmarshal(body, &got); err != nil || len(got.Messages) != 1 || got.Messages[0].Stanza != m.Stanza {
		t.Errorf("append body does not decode to the message: %v, %+v", err, got)
	}
}
