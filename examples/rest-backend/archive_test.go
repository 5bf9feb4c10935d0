package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// What is already stored, in an earlier batch or earlier in the same one,
// is skipped, and every message is stored exactly once.
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
	// ids 10..155, 10..19 already stored, and 150 twice.
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

// BenchmarkAppendArchive measures the http plugin's archive path without
// koi: batches of 256 messages like koi's archive writer sends (JSON
// encoding, one signed HTTP request, the service's decoding and SQLite
// inserts). Compare with the sql plugin's BenchmarkAppendArchive.
func BenchmarkAppendArchive(b *testing.B) {
	_, ts := startService(b, signedOptions())
	be := newPluginBackend(b, pluginConfig(b, ts.URL, nil))
	const batchSize = 256
	batch := make([]sdk.ArchivedMessage, batchSize)
	stamp := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n := 0
	b.ResetTimer()
	for b.Loop() {
		for i := range batch {
			n++
			batch[i] = sdk.ArchivedMessage{
				Owner: fmt.Sprintf("user%d@localhost", n%500), StanzaID: fmt.Sprintf("sid%09d", n), Peer: "peer@localhost",
				PeerResource: "bench", Stamp: stamp, Outgoing: n%2 == 0,
				Stanza: fmt.Sprintf("<message xmlns='jabber:client' to='peer@localhost' id='m%d' type='chat'><body>message number %d from the bench</body></message>", n, n),
				Body:   fmt.Sprintf("message number %d from the bench", n),
			}
		}
		if err := be.AppendArchive(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "msgs/s")
}
