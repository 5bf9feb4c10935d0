package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// A batch larger than the biggest insert statement is cut into several;
// what is already stored, in an earlier batch or earlier in the same one,
// is skipped and not counted, and every message is stored exactly once.
func TestAppendBatchAcrossInsertChunks(t *testing.T) {
	srv, ts := startService(t, signedOptions())
	b := newPluginBackend(t, pluginConfig(t, ts.URL, nil))
	msg := func(i int) sdk.ArchivedMessage {
		return sdk.ArchivedMessage{
			Owner: "juliet@example.com", StanzaID: fmt.Sprintf("sid%05d", i), Peer: "romeo@example.net",
			Stamp:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
			Stanza: fmt.Sprintf("<message><body>%d</body></message>", i), Body: fmt.Sprint(i),
		}
	}
	var first []sdk.ArchivedMessage
	for i := range 20 {
		first = append(first, msg(i))
	}
	if err := b.AppendArchive(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	// 128 + 16 + 1 + 1 + 1 rows: ids 10..156 plus one repeated in the batch.
	var batch []sdk.ArchivedMessage
	for i := 10; i < 156; i++ {
		batch = append(batch, msg(i))
	}
	batch = append(batch, msg(150))
	if err := b.AppendArchive(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	var rows, distinct int
	if err := srv.st.db.QueryRow(`SELECT count(*), count(DISTINCT sid) FROM archive WHERE owner = ?`, "juliet@example.com").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != 156 || distinct != 156 {
		t.Errorf("stored %d rows (%d distinct), want 156", rows, distinct)
	}
	var body string
	if err := srv.st.db.QueryRow(`SELECT body FROM archive WHERE owner = ? AND sid = ?`, "juliet@example.com", "sid00155").Scan(&body); err != nil || body != "155" {
		t.Errorf("last message: body %q, %v", body, err)
	}
}
