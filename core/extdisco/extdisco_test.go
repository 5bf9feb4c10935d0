package extdisco

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// TestCredentials: the TURN REST API's scheme, checked against a value
// computed with openssl (printf %s "$U" | openssl dgst -sha1 -hmac "$S"
// -binary | base64), which coturn accepted in e2e TestTURNCredentials.
func TestCredentials(t *testing.T) {
	user, pass := Credentials("koi-test-secret-0123456789", "alice@localhost", time.Unix(1796650693, 0))
	if user != "1796650693:alice@localhost" || pass != "izZkcqU7EKugE9Xc9HZeiY5TNH4=" {
		t.Fatalf("credentials %q %q", user, pass)
	}
}

// registrar keeps the handler Register gives it.
type registrar struct {
	h        modules.OwnIQ
	features []string
}

func (r *registrar) HandleServerIQ(typ, ns string, h modules.OwnIQ) {
	if typ == "get" && ns == NS {
		r.h = h
	}
}

func (r *registrar) AddServerFeature(ns string, on func(*modules.Host) bool) {
	if on(nil) {
		r.features = append(r.features, ns)
	}
}

type nopConn struct{}

func (nopConn) Send(*xmlstream.Element) bool { return true }
func (nopConn) Close(string, string)         {}

// ask sends payload to the handler as alice and returns its answer.
func ask(t *testing.T, cfg Config, now time.Time, payload string) (*xmlstream.Element, *stanza.Error) {
	t.Helper()
	reg := &registrar{}
	s := Register(cfg, reg)
	s.now = func() time.Time { return now }
	if reg.h == nil || len(reg.features) != 1 || reg.features[0] != NS {
		t.Fatalf("registered %v, features %v", reg.h != nil, reg.features)
	}
	sess, _ := router.New().Bind(jid.MustParse("alice@example.com/phone"), nopConn{})
	q, err := stanza.Parse(payload)
	if err != nil {
		t.Fatal(err)
	}
	iq := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "get")
	iq.AppendChild(q)
	return reg.h(context.Background(), sess, iq, q)
}

// described renders the answer's services as type/transport:port plus
// their credentials' expiry, one per line.
func described(el *xmlstream.Element) string {
	var b strings.Builder
	for _, s := range el.Elements() {
		b.WriteString(s.Attr("type") + "/" + s.Attr("transport") + " " + s.Attr("host") + ":" + s.Attr("port"))
		if s.Attr("restricted") == "1" {
			b.WriteString(" " + s.Attr("username") + " until " + s.Attr("expires"))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestServices(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	full := Config{Host: "turn.example.com", Port: 3478, TLSPort: 5349, Secret: "0123456789abcdef", TTL: time.Hour}
	for _, tc := range []struct {
		name    string
		cfg     Config
		payload string
		want    string
		cond    string
	}{
		{"all", full, `<services xmlns='urn:xmpp:extdisco:2'/>`,
			"stun/udp turn.example.com:3478\n" +
				"turn/udp turn.example.com:3478 1796648400:alice@example.com until 2026-12-07T13:00:00Z\n" +
				"turn/tcp turn.example.com:3478 1796648400:alice@example.com until 2026-12-07T13:00:00Z\n" +
				"turns/tcp turn.example.com:5349 1796648400:alice@example.com until 2026-12-07T13:00:00Z\n", ""},
		{"of one type", full, `<services xmlns='urn:xmpp:extdisco:2' type='turns'/>`,
			"turns/tcp turn.example.com:5349 1796648400:alice@example.com until 2026-12-07T13:00:00Z\n", ""},
		{"without a secret", Config{Host: "stun.example.com", Port: 3478, TTL: time.Hour}, `<services xmlns='urn:xmpp:extdisco:2'/>`,
			"stun/udp stun.example.com:3478\n", ""},
		{"credentials", full, `<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.com' type='turn'/></credentials>`,
			"turn/udp turn.example.com:3478 1796648400:alice@example.com until 2026-12-07T13:00:00Z\n" +
				"turn/tcp turn.example.com:3478 1796648400:alice@example.com until 2026-12-07T13:00:00Z\n", ""},
		{"credentials of one port", full, `<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.com' type='turns' port='5349'/></credentials>`,
			"turns/tcp turn.example.com:5349 1796648400:alice@example.com until 2026-12-07T13:00:00Z\n", ""},
		{"credentials of another host", full, `<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.net' type='turn'/></credentials>`, "", "item-not-found"},
		{"credentials of stun", full, `<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.com' type='stun'/></credentials>`, "", "item-not-found"},
		{"credentials without a service", full, `<credentials xmlns='urn:xmpp:extdisco:2'/>`, "", "bad-request"},
		{"something else", full, `<service xmlns='urn:xmpp:extdisco:2'/>`, "", "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, serr := ask(t, tc.cfg, now, tc.payload)
			if tc.cond != "" {
				if serr == nil || serr.Condition != tc.cond {
					t.Fatalf("want %s, got %v %v", tc.cond, res, serr)
				}
				return
			}
			if serr != nil {
				t.Fatal(serr)
			}
			if got := described(res); got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
			for _, s := range res.Elements() {
				if s.Attr("restricted") != "1" {
					continue
				}
				if _, pass := Credentials(tc.cfg.Secret, "alice@example.com", now.Add(time.Hour)); s.Attr("password") != pass {
					t.Fatalf("password %q, want %q", s.Attr("password"), pass)
				}
			}
		})
	}
}
