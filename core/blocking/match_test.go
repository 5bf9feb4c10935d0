package blocking

import (
	"testing"

	"github.com/koi-im/koi/core/jid"
)

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		item, j string
		want    bool
	}{
		{"bob@example.com/phone", "bob@example.com/phone", true},
		{"bob@example.com/phone", "bob@example.com/laptop", false},
		{"bob@example.com/phone", "bob@example.com", false},
		{"bob@example.com", "bob@example.com", true},
		{"bob@example.com", "bob@example.com/phone", true},
		{"bob@example.com", "bo@example.com", false},
		{"bob@example.com", "bob@other.example", false},
		{"bob@example.com", "example.com", false},
		{"example.com/bot", "example.com/bot", true},
		{"example.com/bot", "example.com", false},
		{"example.com/bot", "bob@example.com/bot", false},
		{"example.com", "example.com", true},
		{"example.com", "bob@example.com", true},
		{"example.com", "bob@example.com/phone", true},
		{"example.com", "example.com/bot", true},
		{"example.com", "bob@sub.example.com", false},
		// Items and addresses are compared normalised.
		{"BOB@Example.COM", "bob@example.com/x", true},
	} {
		if got := Matches(jid.MustParse(c.item), jid.MustParse(c.j)); got != c.want {
			t.Errorf("Matches(%s, %s) = %v, want %v", c.item, c.j, got, c.want)
		}
	}
}
