package config

import (
	"net"
	"strings"
	"time"
)

// TURN names the STUN/TURN server that clients use for audio and video
// calls, which the server advertises with External Service Discovery,
// XEP-0215 (optional block turn; see core/extdisco). With a secret shared
// with the TURN server (coturn's static-auth-secret with use-auth-secret),
// users get TURN credentials that expire.
type TURN struct {
	Host    string // key host: the TURN server's DNS name or address; "" (no block): none advertised
	Port    int    // key port: STUN and TURN over UDP and TCP, default 3478
	TLSPort int    // key tls_port: TURN over TLS (turns), default 0: none
	// Secret (key secret, or secret_file) is coturn's static-auth-secret;
	// "": only STUN is advertised.
	Secret string
	TTL    time.Duration // key ttl: how long credentials last, default 24h
}

// Defaults and bounds of the turn block.
const (
	DefaultTURNPort = 3478
	DefaultTURNTTL  = 24 * time.Hour
	maxTURNTTL      = 30 * 24 * time.Hour
)

func (d *decoder) turn(v any) TURN {
	if v == nil {
		return TURN{}
	}
	b := d.block([]string{"turn"}, v)
	t := TURN{
		Port:    int(b.integer("port", DefaultTURNPort, true)),
		TLSPort: int(b.integer("tls_port", 0, false)),
		TTL:     b.duration("ttl", DefaultTURNTTL, true),
	}
	for _, p := range []struct {
		key string
		n   *int
	}{{"port", &t.Port}, {"tls_port", &t.TLSPort}} {
		if *p.n < 0 || *p.n > 65535 {
			d.problem(b.at(p.key), "want a port number up to 65535, got %d", *p.n)
		}
	}
	host, _ := b.str("host")
	switch {
	case host == "":
		d.problem(b.at("host"), `missing: the TURN server's name, like host = "turn.example.com"`)
	case strings.ContainsAny(host, ":/ ") && net.ParseIP(host) == nil:
		d.problem(b.at("host"), "want a DNS name or an IP address, without a scheme or a port (those are port and tls_port), got %q", host)
	default:
		t.Host = host
	}
	t.Secret, _ = d.secret(b, ", and the same as coturn's static-auth-secret")
	if t.TLSPort > 0 && t.Secret == "" {
		d.problem(b.at("tls_port"), "turns needs credentials: set secret (coturn's static-auth-secret) too")
	}
	if t.TTL > maxTURNTTL {
		d.problem(b.at("ttl"), "at most %v, got %v", maxTURNTTL, t.TTL)
		t.TTL = DefaultTURNTTL
	}
	return t
}
