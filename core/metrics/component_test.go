package metrics

import (
	"strings"
	"testing"
)

func TestComponentCounts(t *testing.T) {
	r := New()
	r.ComponentHandshake("success")
	r.ComponentHandshake("failure")
	r.ComponentHandshake("odd")
	r.ComponentHandshake("refused")
	r.ComponentConnected("gw.example.com", true)
	r.ComponentConnected("irc.example.com", true)
	r.ComponentConnected("irc.example.com", false)
	r.ComponentStanza("gw.example.com", true, "message")
	r.ComponentStanza("gw.example.com", true, "message")
	r.ComponentStanza("gw.example.com", false, "iq")
	out := scrape(t, r)
	for _, want := range []string{
		`koi_component_handshakes_total{result="success"} 1` + "\n",
		`koi_component_handshakes_total{result="failure"} 2` + "\n",
		`koi_component_handshakes_total{result="refused"} 1` + "\n",
		`koi_component_connected{domain="gw.example.com"} 1` + "\n",
		`koi_component_connected{domain="irc.example.com"} 0` + "\n",
		`koi_component_stanzas_total{direction="in",domain="gw.example.com",type="message"} 2` + "\n",
		`koi_component_stanzas_total{direction="out",domain="gw.example.com",type="iq"} 1` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the scrape", want)
		}
	}
}
