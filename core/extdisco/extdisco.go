// Package extdisco serves External Service Discovery (XEP-0215): the STUN
// and TURN server that clients (Conversations, Dino, Monal, Movim…) use
// to set up audio and video calls. TURN relays traffic, so it wants
// credentials; they are made here from a secret shared with the TURN
// server, in the scheme of the TURN REST API that coturn implements
// (use-auth-secret): the username is the expiry time (and the user), the
// password the HMAC-SHA1 of the username under the secret. They expire on
// their own, so the server keeps no state. The services are those of
// Prosody's mod_turn_external: STUN and TURN over UDP and TCP on one port,
// TURN over TLS on another.
package extdisco

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// NS is External Service Discovery's namespace, version 2.
const NS = "urn:xmpp:extdisco:2"

// Config names the TURN server (config block turn).
type Config struct {
	Host    string
	Port    int    // STUN and TURN, UDP and TCP
	TLSPort int    // TURN over TLS; 0: none
	Secret  string // coturn's static-auth-secret; "": STUN only
	TTL     time.Duration
}

// service is one advertised service.
type service struct {
	typ, transport string
	port           int
	restricted     bool // needs the credentials
}

// Server answers the discovery requests.
type Server struct {
	cfg Config
	now func() time.Time
}

// Registrar is what the service needs of the module server
// (modules.Server implements it).
type Registrar interface {
	HandleServerIQ(typ, ns string, h modules.OwnIQ)
	AddServerFeature(ns string, on func(*modules.Host) bool)
}

// Register serves discovery on every host of srv.
func Register(cfg Config, srv Registrar) *Server {
	s := &Server{cfg: cfg, now: time.Now}
	srv.HandleServerIQ("get", NS, s.handle)
	srv.AddServerFeature(NS, func(*modules.Host) bool { return true })
	return s
}

// services lists what the configuration offers.
func (s *Server) services() []service {
	c := s.cfg
	out := []service{{typ: "stun", transport: "udp", port: c.Port}}
	if c.Secret == "" {
		return out
	}
	out = append(out,
		service{typ: "turn", transport: "udp", port: c.Port, restricted: true},
		service{typ: "turn", transport: "tcp", port: c.Port, restricted: true})
	if c.TLSPort > 0 {
		out = append(out, service{typ: "turns", transport: "tcp", port: c.TLSPort, restricted: true})
	}
	return out
}

// handle answers <services/> (XEP-0215 §3.1, optionally of one type) and
// <credentials/> (§3.3) from a user of this server.
func (s *Server) handle(_ context.Context, sess *router.Session, _, q *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	var keep func(service) bool
	switch q.Local {
	case "services":
		typ := q.Attr("type")
		keep = func(sv service) bool { return typ == "" || sv.typ == typ }
	case "credentials":
		want := q.Child(NS, "service")
		if want == nil || want.Attr("host") == "" || want.Attr("type") == "" {
			return nil, stanza.ErrBadRequest.WithText("want a service with its host and type")
		}
		port, _ := strconv.Atoi(want.Attr("port"))
		keep = func(sv service) bool {
			return want.Attr("host") == s.cfg.Host && want.Attr("type") == sv.typ &&
				(port == 0 || port == sv.port) && sv.restricted
		}
	default:
		return nil, stanza.ErrBadRequest
	}
	res := xmlstream.NewElement(NS, q.Local)
	user := sess.JID().Bare().String()
	for _, sv := range s.services() {
		if keep(sv) {
			res.AppendChild(s.element(sv, user))
		}
	}
	if q.Local == "credentials" && len(res.Children) == 0 {
		return nil, stanza.ErrItemNotFound.WithText("no such service needs credentials here")
	}
	return res, nil
}

// element is sv as advertised to user, with credentials if it needs them.
func (s *Server) element(sv service, user string) *xmlstream.Element {
	el := xmlstream.NewElement(NS, "service").SetAttr("type", sv.typ).
		SetAttr("host", s.cfg.Host).SetAttr("port", strconv.Itoa(sv.port)).SetAttr("transport", sv.transport)
	if sv.restricted {
		expires := s.now().Add(s.cfg.TTL).Truncate(time.Second)
		name, pass := Credentials(s.cfg.Secret, user, expires)
		el.SetAttr("restricted", "1").SetAttr("username", name).SetAttr("password", pass).
			SetAttr("expires", expires.UTC().Format(time.RFC3339))
	}
	return el
}

// Credentials are the TURN REST API's username and password for user,
// valid until expires, under the TURN server's shared secret: what coturn
// checks with use-auth-secret.
func Credentials(secret, user string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(m.Sum(nil))
}
