package c2s

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/sasl"
	"github.com/koi-im/koi/core/xmlstream"
)

type fakeHost struct{}

func (fakeHost) Name() string           { return "localhost" }
func (fakeHost) SASLStore() sasl.Store  { return nil }
func (fakeHost) SCRAM() bool            { return true }
func (fakeHost) RegistrationOpen() bool { return false }
func (fakeHost) ChannelBinding() string { return "" }
func (fakeHost) PreAuthIQ(context.Context, *xmlstream.Element, string) *xmlstream.Element {
	return nil
}

// ServeConn never offers STARTTLS; PLAIN only when the transport is
// encrypted; never channel binding.
func TestServeConnFeatures(t *testing.T) {
	for _, tt := range []struct {
		encrypted bool
		want      []string
		notWant   []string
	}{
		{false, []string{"SCRAM-SHA-256", "SCRAM-SHA-1"}, []string{"starttls", "PLAIN", "-PLUS", "sasl-channel-binding"}},
		{true, []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}, []string{"starttls", "-PLUS", "sasl-channel-binding"}},
	} {
		srv := New(Config{
			Host:   func(d string) Host { return fakeHost{} },
			Router: router.New(),
		})
		a, b := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(a, ConnOptions{Encrypted: tt.encrypted}) }()
		b.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(b, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		buf := make([]byte, 4096)
		for !strings.Contains(got.String(), "</stream:features>") {
			n, err := b.Read(buf)
			if err != nil {
				t.Fatalf("reading features: %v (got %q)", err, got.String())
			}
			got.Write(buf[:n])
		}
		for _, w := range tt.want {
			if !strings.Contains(got.String(), ">"+w+"<") {
				t.Errorf("encrypted=%v: %s not offered: %s", tt.encrypted, w, got.String())
			}
		}
		for _, w := range tt.notWant {
			if strings.Contains(got.String(), w) {
				t.Errorf("encrypted=%v: %s offered: %s", tt.encrypted, w, got.String())
			}
		}
		go func() {
			// Read up to the closing tag Shutdown sends, then hang up as a
			// client would, so the server does not wait out its grace.
			var tail strings.Builder
			for !strings.Contains(tail.String(), "</stream:stream>") {
				n, err := b.Read(buf)
				if err != nil {
					break
				}
				tail.Write(buf[:n])
			}
			b.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeConn: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ServeConn did not return after Shutdown")
		}
		b.Close()
	}
}
