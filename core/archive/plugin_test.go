package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/pluginhost"
	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/sdktest"
)

// These tests write through the real transport: the plugin host, a
// koi-backend-sql process and its SQLite database.

// startSQLPlugin starts the sql plugin on a fresh SQLite file and returns
// its handle and the binary's path.
func startSQLPlugin(t testing.TB) (*pluginhost.Backend, string) {
	t.Helper()
	bin := sdktest.BuildPlugin(t, "github.com/koi-im/koi/plugins/sql/cmd/koi-backend-sql")
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})
	ph := pluginhost.New(log, []pluginhost.Spec{{
		Name: "store", Command: bin,
		Config: map[string]any{"driver": "sqlite", "dsn": filepath.Join(t.TempDir(), "koi.db")},
	}})
	if err := ph.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ph.Close(ctx)
	})
	b, _ := ph.Backend("store")
	return b, bin
}

func pluginOpener(b *pluginhost.Backend) Opener {
	return func(ctx context.Context) (Stream, error) { return b.OpenArchiveStream(ctx) }
}

// pidOf finds the process running bin, which is unique to the test.
func pidOf(t *testing.T, bin string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.HasPrefix(cmd, []byte(bin+"\x00")) {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && bytes.Contains(st, []byte(") Z ")) {
			continue // a zombie: killed, not yet reaped
		}
		return pid
	}
	return 0
}

// TestPluginKilledMidStream kills the plugin with SIGKILL while batches are
// in flight and more are queued, twice. The plugin host restarts it; the
// writer reopens its stream and resends what was not acknowledged. In the
// end every message is stored exactly once.
func TestPluginKilledMidStream(t *testing.T) {
	b, bin := startSQLPlugin(t)
	w := NewWriter(pluginOpener(b), Options{BatchSize: 32, FlushInterval: 2 * time.Millisecond,
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, BlockTimeout: 30 * time.Second}, nil)
	ids := NewIDs()
	const n = 3000
	owners := []string{"alice@example.com", "bob@example.com", "carol@example.com"}
	var appended atomic.Int64
	done := make(chan error, 1)
	// The last 100 messages wait for the second kill, so that it always
	// leaves the writer something to store through a new stream: when
	// it came after the last store, the writer had no reason to
	// reconnect, and the test failed for it.
	lastKill := make(chan struct{})
	// And the last third waits until the writer saw the first kill, so
	// that the second one always finds a stream to the new plugin
	// carrying something: under load, kill 1 once came so late that
	// kill 2's target was met already, and kill 2 hit the new plugin
	// before the writer had opened a stream to it.
	firstSeen := make(chan struct{})
	go func() {
		for i := range n {
			switch i {
			case 2 * n / 3:
				<-firstSeen
			case n - 100:
				<-lastKill
			}
			id, stamp := ids.Next()
			err := w.Append(context.Background(), sdk.ArchivedMessage{
				Owner: owners[i%len(owners)], StanzaID: id, Peer: "dave@example.com", Stamp: stamp,
				Stanza: fmt.Sprintf("<message><body>%d</body></message>", i), Body: strconv.Itoa(i),
			})
			if err != nil {
				done <- fmt.Errorf("append %d: %w", i, err)
				return
			}
			appended.Add(1)
			if i%100 == 0 {
				time.Sleep(time.Millisecond) // spread the load over the kills
			}
		}
		done <- nil
	}()
	var storedByFirst uint64 // stored when the writer saw kill 1
	for kill := 1; kill <= 2; kill++ {
		target := uint64(kill * n / 3)
		deadline := time.Now().Add(30 * time.Second)
		for st := w.Stats(); st.Stored < target || (kill == 2 && st.Stored <= storedByFirst); st = w.Stats() {
			if time.Now().After(deadline) {
				t.Fatalf("only %d messages stored before kill %d", st.Stored, kill)
			}
			time.Sleep(time.Millisecond)
		}
		pid := pidOf(t, bin)
		if pid == 0 {
			t.Fatal("plugin process not found")
		}
		st := w.Stats()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		t.Logf("kill %d: SIGKILL to pid %d with %d stored, %d pending", kill, pid, st.Stored, st.Pending)
		if kill == 2 {
			close(lastKill)
		} else {
			for w.Stats().Reconnects == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the writer did not see its stream end")
				}
				time.Sleep(time.Millisecond)
			}
			// What is stored from now on went through a new stream.
			storedByFirst = w.Stats().Stored
			close(firstSeen)
		}
		// Wait for the restart before the next kill.
		deadline = time.Now().Add(30 * time.Second)
		for pidOf(t, bin) == 0 || pidOf(t, bin) == pid {
			if time.Now().After(deadline) {
				t.Fatal("plugin not restarted")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := w.Stats()
	if st.Reconnects < 2 {
		t.Errorf("the writer reconnected %d times after 2 kills", st.Reconnects)
	}
	total := 0
	for _, owner := range owners {
		seen := map[string]bool{}
		after := ""
		for {
			q := sdk.ArchiveQuery{Owner: owner, After: after, Max: sdk.MaxArchivePage, Count: after == ""}
			p, err := b.QueryArchive(ctx, q)
			// The second kill may come after the last store: the new
			// process can be running before the host has reconnected.
			for errors.Is(err, sdk.ErrUnavailable) && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
				p, err = b.QueryArchive(ctx, q)
			}
			if err != nil {
				t.Fatal(err)
			}
			if after == "" && p.Count != n/len(owners) {
				t.Errorf("%s: count %d, want %d", owner, p.Count, n/len(owners))
			}
			for _, m := range p.Messages {
				if seen[m.StanzaID] {
					t.Fatalf("%s: %s stored twice", owner, m.StanzaID)
				}
				seen[m.StanzaID] = true
			}
			if p.Complete || len(p.Messages) == 0 {
				break
			}
			after = p.Messages[len(p.Messages)-1].StanzaID
		}
		total += len(seen)
	}
	if total != n || st.Stored != n {
		t.Fatalf("%d messages in the archive (writer acknowledged %d), want %d exactly once each", total, st.Stored, n)
	}
	t.Logf("%d messages stored exactly once across 2 plugin kills; %d reconnects", total, st.Reconnects)
}

// BenchmarkWriterThroughPlugin measures archive writes end to end: the
// writer's batches over the gRPC stream into koi-backend-sql on SQLite.
func BenchmarkWriterThroughPlugin(b *testing.B) {
	be, _ := startSQLPlugin(b)
	w := NewWriter(pluginOpener(be), Options{}, nil)
	ids := NewIDs()
	stanza := "<message xmlns='jabber:client' from='alice@example.com/pc' to='bob@example.com' type='chat' id='a1b2c3d4'><body>" +
		"hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob</body></message>"
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id, stamp := ids.Next()
		if err := w.Append(ctx, sdk.ArchivedMessage{Owner: "u" + strconv.Itoa(i%100) + "@example.com", StanzaID: id,
			Peer: "bob@example.com", Stamp: stamp, Stanza: stanza, Body: "hello bob"}); err != nil {
			b.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := w.Close(cctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := w.Stats()
	b.ReportMetric(float64(st.Stored)/float64(max(st.Batches, 1)), "msgs/batch")
}
