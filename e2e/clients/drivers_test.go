package clients

import "testing"

func TestOpenRace(t *testing.T) {
	race := `2026-12-04T16:08:33.714Z status: opening
2026-12-04T16:08:33.722Z status: open
2026-12-04T16:08:35.768Z start failed: TimeoutError
    at file:///x/node_modules/@xmpp/events/lib/promise.js:32:21
    at Client.open (file:///x/node_modules/@xmpp/connection/index.js:270:12)
`
	if !openRace(race) {
		t.Error("the open race of xmpp.js not recognised")
	}
	// koi never answered the stream header: that is koi's fault.
	silent := `2026-12-04T16:08:33.714Z status: opening
2026-12-04T16:08:35.768Z start failed: TimeoutError
    at Client.open (file:///x/node_modules/@xmpp/connection/index.js:270:12)
`
	if openRace(silent) {
		t.Error("a server that never answered taken for the client's race")
	}
}
