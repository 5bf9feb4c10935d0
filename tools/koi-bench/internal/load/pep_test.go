package load

import "testing"

// The example of XEP-0115 §5.2.
func TestCapsVerOf(t *testing.T) {
	got := capsVerOf("client/pc//Exodus 0.9.1", []string{
		"http://jabber.org/protocol/muc", "http://jabber.org/protocol/disco#info",
		"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#items",
	})
	if want := "QgayPKawpkPSDYmwT/WM94uAlu0="; got != want {
		t.Errorf("capsVerOf = %q, want %q", got, want)
	}
}
