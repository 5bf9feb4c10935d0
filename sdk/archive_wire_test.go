package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// archiveBackend keeps messages in a map. Its first AppendArchive call
// waits for release, so that the batches sent meanwhile queue up.
type archiveBackend struct {
	entered chan struct{} // closed when the first call starts
	release chan struct{}

	mu    sync.Mutex
	calls []int // messages per AppendArchive call
	msgs  map[string]ArchivedMessage
	first bool
}

func (a *archiveBackend) Capabilities() Capabilities {
	return Capabilities{Archive: ArchiveCapabilities{Access: AccessReadWrite}}
}
func (a *archiveBackend) Close() error { return nil }

func (a *archiveBackend) AppendArchive(ctx context.Context, msgs []ArchivedMessage) error {
	a.mu.Lock()
	first := !a.first
	a.first = true
	a.mu.Unlock()
	if first {
		close(a.entered)
		<-a.release
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, len(msgs))
	for _, m := range msgs {
		if m.Owner == "" {
			return fmt.Errorf("%w: no owner", ErrInvalid)
		}
		if m.Body == "panic" {
			panic("backend bug")
		}
	}
	for _, m := range msgs {
		if _, ok := a.msgs[m.Owner+"/"+m.StanzaID]; !ok {
			a.msgs[m.Owner+"/"+m.StanzaID] = m
		}
	}
	return nil
}

func (a *archiveBackend) QueryArchive(context.Context, ArchiveQuery) (ArchivePage, error) {
	return ArchivePage{}, nil
}
func (a *archiveBackend) DeleteArchive(context.Context, string) error { return nil }
func (a *archiveBackend) GetArchivePrefs(context.Context, string) (ArchivePrefs, error) {
	return ArchivePrefs{}, nil
}
func (a *archiveBackend) SetArchivePrefs(context.Context, string, ArchivePrefs) error { return nil }

// wire serves b over an in-memory gRPC connection and returns the host's
// client, configured.
func wire(t *testing.T, b Backend) *Client {
	t.Helper()
	c := dial(t, func(gs *grpc.Server) {
		registerServer(gs, newServer(func(context.Context, Config, Logger) (Backend, error) { return b, nil }, hclog.NewNullLogger()))
	})
	if _, err := c.Configure(context.Background(), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	return c
}

// dial serves what register puts on a gRPC server over an in-memory
// connection and returns the host's client, not yet configured.
func dial(t *testing.T, register func(*grpc.Server)) *Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	register(gs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return lis.Dial() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return NewClient(conn)
}

func wireMsgs(owner string, from, n int) []ArchivedMessage {
	var out []ArchivedMessage
	for i := from; i < from+n; i++ {
		out = append(out, ArchivedMessage{Owner: owner, StanzaID: fmt.Sprintf("%08d", i), Peer: "p@example.com", Stamp: time.Now()})
	}
	return out
}

// TestArchiveStreamGroupsAndAcknowledgesInOrder sends batches while the
// backend is busy: they are stored together in one call, each batch is
// acknowledged in order, and a faulty batch is refused alone.
func TestArchiveStreamGroupsAndAcknowledgesInOrder(t *testing.T) {
	b := &archiveBackend{entered: make(chan struct{}), release: make(chan struct{}), msgs: map[string]ArchivedMessage{}}
	c := wire(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.OpenArchiveStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := wireMsgs("", 100, 1)
	panics := wireMsgs("a@example.com", 200, 1)
	panics[0].Body = "panic"
	batches := [][]ArchivedMessage{
		wireMsgs("a@example.com", 0, 3), // stored alone, while the others queue
		wireMsgs("a@example.com", 3, 3),
		bad,
		wireMsgs("b@example.com", 6, 2),
		panics,
		wireMsgs("b@example.com", 8, 2),
	}
	for i, m := range batches {
		if err := st.Send(uint64(10+i), m); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-b.entered // the first batch is being stored
		}
	}
	time.Sleep(50 * time.Millisecond) // let them reach the plugin's queue
	close(b.release)
	for i := range batches {
		id, outcome, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if id != uint64(10+i) {
			t.Fatalf("ack %d is for batch %d: out of order", i, id)
		}
		switch i {
		case 2:
			if !errors.Is(outcome, ErrInvalid) {
				t.Errorf("the batch without owner: %v, want ErrInvalid", outcome)
			}
		case 4:
			if !errors.Is(outcome, ErrInvalid) || !errorsContain(outcome, "backend panicked") {
				t.Errorf("the batch that panics: %v", outcome)
			}
		default:
			if outcome != nil {
				t.Errorf("batch %d: %v", i, outcome)
			}
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Recv(); err != io.EOF {
		t.Errorf("after the last ack: %v, want io.EOF", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.msgs) != 10 {
		t.Errorf("stored %d messages, want the 10 valid ones", len(b.msgs))
	}
	if len(b.calls) < 2 || b.calls[1] != 9 {
		t.Errorf("AppendArchive calls of %v messages: the 5 queued batches (9 messages) were not stored together first", b.calls)
	}
	t.Logf("AppendArchive calls: %v", b.calls)
}

func errorsContain(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

// concurrentArchive is an AppendConcurrency with two writers. Each call
// reports its first stanza id on started and waits for its own release.
type concurrentArchive struct {
	archiveBackend
	started chan string
	mu      sync.Mutex
	release map[string]chan struct{}
}

func (c *concurrentArchive) AppendWriters() int { return 2 }

func (c *concurrentArchive) gate(id string) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.release[id] == nil {
		c.release[id] = make(chan struct{})
	}
	return c.release[id]
}

func (c *concurrentArchive) AppendArchive(ctx context.Context, msgs []ArchivedMessage) error {
	id := msgs[0].StanzaID
	c.started <- id
	select {
	case <-c.gate(id):
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.archiveBackend.AppendArchive(ctx, msgs)
}

// TestArchiveStreamConcurrentGroups: a backend with two writers has a
// second group stored while the first is still being stored, never a
// third, and a batch stored early is acknowledged only after the batches
// before it.
func TestArchiveStreamConcurrentGroups(t *testing.T) {
	b := &concurrentArchive{
		archiveBackend: archiveBackend{first: true, msgs: map[string]ArchivedMessage{}},
		started:        make(chan string, 8),
		release:        map[string]chan struct{}{},
	}
	c := wire(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.OpenArchiveStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(id uint64, from int) {
		t.Helper()
		if err := st.Send(id, wireMsgs("a@example.com", from, 2)); err != nil {
			t.Fatal(err)
		}
	}
	wantStarted := func(id string) {
		t.Helper()
		select {
		case got := <-b.started:
			if got != id {
				t.Fatalf("the call storing %s started, want %s", got, id)
			}
		case <-ctx.Done():
			t.Fatalf("the call storing %s did not start", id)
		}
	}
	send(1, 0)
	wantStarted("00000000")
	send(2, 2)
	wantStarted("00000002") // the second writer, while the first is busy
	send(3, 4)
	select {
	case id := <-b.started:
		t.Fatalf("a third call (%s) started with two writers busy", id)
	case <-time.After(100 * time.Millisecond):
	}
	close(b.gate("00000002")) // the second group is stored first...
	wantStarted("00000004")   // ...which frees a writer for the third
	close(b.gate("00000004"))
	time.Sleep(50 * time.Millisecond)
	close(b.gate("00000000"))
	for want := uint64(1); want <= 3; want++ {
		id, outcome, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if id != want || outcome != nil {
			t.Fatalf("ack %d: batch %d, outcome %v; want batch %d stored", want, id, outcome, want)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Recv(); err != io.EOF {
		t.Errorf("after the last ack: %v, want io.EOF", err)
	}
	b.archiveBackend.mu.Lock()
	defer b.archiveBackend.mu.Unlock()
	if len(b.msgs) != 6 {
		t.Errorf("stored %d messages, want 6", len(b.msgs))
	}
}
