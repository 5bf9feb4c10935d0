package e2e

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentClients has several clients log in at once and message
// each other at the same time; every message must arrive once.
func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	const users, messages = 10, 30
	srv := startServer(t, defaultOptions())
	const pw = "pw-many"
	for i := range users {
		srv.addUser(t, fmt.Sprintf("u%d@localhost", i), pw)
	}
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}

	clients := make([]*client, users)
	var wg sync.WaitGroup
	errs := make(chan error, users)
	for i := range users {
		wg.Go(func() {
			c, err := connect(t.Context(), t, local, fmt.Sprintf("u%d@localhost/c", i), pw)
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
		})
	}
	wg.Wait()
	close(errs)
	for _, c := range clients {
		if c != nil {
			t.Cleanup(c.close)
		}
	}
	for err := range errs {
		t.Fatalf("concurrent login: %v", err)
	}
	for _, c := range clients {
		c.send("<presence/>")
	}

	// Each client sends to the next one, all at once.
	for i, c := range clients {
		wg.Go(func() {
			to := fmt.Sprintf("u%d@localhost", (i+1)%users)
			for n := range messages {
				if err := c.trySend(fmt.Sprintf("<message to='%s' type='chat' id='m%d'><body>%d from %d</body></message>", to, n, n, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, c := range clients {
		from := fmt.Sprintf("u%d@localhost/c", (i+users-1)%users)
		for n := range messages {
			m := c.expect(fmt.Sprintf("message %d from %s", n, from), isMessageFrom(from))
			if want := fmt.Sprintf("m%d", n); m.attr("id") != want {
				t.Fatalf("%s: got message %s, want id %s: messages between two clients stay in order", c.jid, m, want)
			}
		}
	}
}
