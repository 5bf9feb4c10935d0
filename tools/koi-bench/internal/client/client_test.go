package client

import (
	"testing"
	"time"
)

func TestSCRAMIterations(t *testing.T) {
	for msg, want := range map[string]int{
		"r=abc,s=c2FsdA==,i=4096":  4096,
		"r=abc,i=10000,s=c2FsdA==": 10000,
		"r=abc,s=c2FsdA==":         0,
		"":                         0,
	} {
		if got := scramIterations([]byte(msg)); got != want {
			t.Errorf("scramIterations(%q) = %d, want %d", msg, got, want)
		}
	}
}

func TestNewDialerChecksOptions(t *testing.T) {
	for _, o := range []Options{
		{Addr: "127.0.0.1:5222", Domain: "d", TLS: "sometimes"},
		{Addr: "127.0.0.1:5222", Domain: "d", Mechanism: "DIGEST-MD5"},
		{Addr: "127.0.0.1:5222"},
		{Addr: "no port", Domain: "d"},
	} {
		if _, err := NewDialer(o); err == nil {
			t.Errorf("NewDialer(%+v): no error", o)
		}
	}
	d, err := NewDialer(Options{Addr: "127.0.0.1:5222", Domain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	o := d.Options()
	if o.TLS != TLSAuto || o.Timeout != 30*time.Second || o.TLSConfig.ServerName != "example.org" {
		t.Errorf("defaults: %+v", o)
	}
}

func TestStanzaErrorCondition(t *testing.T) {
	el := []byte(`<iq type='error' id='r1'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>taken</text></error></iq>`)
	if got := stanzaErrorCondition(el); got != "conflict (taken)" {
		t.Errorf("condition %q", got)
	}
	se := StreamError([]byte(`<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`))
	if se.Error() != "stream error host-unknown" {
		t.Errorf("stream error %q", se)
	}
}
