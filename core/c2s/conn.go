package c2s

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/sasl"
	"github.com/koi-im/koi/core/sm"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/tlscb"
	"github.com/koi-im/koi/core/xmlstream"
)

// Namespaces of stream negotiation.
const (
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsRegister = "jabber:iq:register"
	nsRegFeat  = "http://jabber.org/features/iq-register"
	nsRosterV  = "urn:xmpp:features:rosterver"
	nsPreAppr  = "urn:xmpp:features:pre-approval"
	nsSASLCB   = "urn:xmpp:sasl-cb:0"
)

const (
	handshakeTimeout = 15 * time.Second
	writeTimeout     = 30 * time.Second
	closeGrace       = 2 * time.Second
	maxAuthAttempts  = 5
)

// errStreamClosing ends the read loop after we sent a stream error.
var errStreamClosing = errors.New("stream closing")

type conn struct {
	srv  *Server
	nc   net.Conn // the current transport: a *tls.Conn after STARTTLS
	mode TLSMode
	r    *xmlstream.Reader

	host       Host
	encrypted  bool
	served     tlscb.Served // the certificate the TLS handshake sent; unknown is the zero value
	cbMismatch bool         // a -PLUS attempt failed for want of its binding type
	finished   []byte       // TLS 1.3 client Finished, until login (see tlscb)
	user       string       // authenticated local part
	session    *router.Session
	headerSent bool
	remoteIP   string
	remote     string // address:port, for logs

	wmu sync.Mutex // serialises writes to nc

	out         sendQueue // the outgoing queue and its writer (sendqueue.go)
	closed      atomic.Bool
	lastWrite   atomic.Int64     // unix nanoseconds of the last write, for keepalives
	lastRead    atomic.Int64     // unix nanoseconds of the last read, for keepalives
	pingSent    atomic.Int64     // unix nanoseconds of the unanswered keepalive ping, 0 if none
	ka          *KeepalivePolicy // the listener's keepalive policy
	bound       atomic.Bool      // a resource is bound: keepalives may be sent
	errorSent   atomic.Bool      // Close wrote a stream error: linger at the close
	writeLost   atomic.Bool      // a write failed: the peer is gone
	rdl         int64            // the read deadline (unix ns) the session goroutine set, 0 if none or unknown
	ownDeadline bool             // a read under a deadline of its own (a wait, a probe): deadlineReader keeps it
	one         [1]byte          // where an idle session without a socket waits for its next byte (waitIdle)
	park        parking          // an idle session waiting without a goroutine (idlepark.go)

	csi atomic.Pointer[csiGate] // set while the client is inactive (XEP-0352)

	smSess atomic.Pointer[smSession] // set once stream management is on (XEP-0198)
	lost   bool                      // the transport died under us: a resumable session detaches
}

func newConn(s *Server, nc net.Conn, mode TLSMode) *conn {
	ip := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	return &conn{
		srv: s, nc: nc, mode: mode, remoteIP: ip, remote: nc.RemoteAddr().String(),
		ka: s.defaultKA,
	}
}

// log returns a logger carrying what is known about the connection. It is
// built per call, not kept: logging is rare, connections are many.
func (c *conn) log() hclog.Logger {
	kv := []any{"remote", c.remote}
	switch {
	case c.session != nil:
		kv = append(kv, "jid", c.session.JID().String())
	case c.user != "":
		kv = append(kv, "user", c.user+"@"+c.host.Name())
	}
	return c.srv.cfg.Log.With(kv...)
}

func (c *conn) serve() {
	if c.mode == TLSDirect && !c.directTLS() {
		c.end(nil)
		return
	}
	c.r = xmlstream.NewReader(deadlineReader{c, c.srv.tun().IdleTimeout}, c.srv.tun().Limits)
	if err := c.negotiate(); err != nil {
		c.end(err)
		return
	}
	c.resume()
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *conn) header(from, to string) string {
	b := make([]byte, 0, 256)
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='"...)
	b = append(b, newID()...)
	b = append(b, "' version='1.0' xml:lang='en'"...)
	if from != "" {
		b = append(b, " from='"...)
		b = xmlstream.AppendAttrValue(b, from)
		b = append(b, '\'')
	}
	if to != "" {
		b = append(b, " to='"...)
		b = xmlstream.AppendAttrValue(b, to)
		b = append(b, '\'')
	}
	return string(append(b, '>'))
}

// openStream reads the client's stream header and answers with ours and
// the features of this stage.
func (c *conn) openStream() error {
	hdr, err := c.r.ReadHeader()
	if err != nil {
		return err
	}
	to := hdr.Attr("to")
	var h Host
	if d, err := jid.Parse(to); err == nil && d.IsDomain() {
		h = c.srv.cfg.Host(d.Domain())
	}
	from := ""
	if f, err := jid.Parse(hdr.Attr("from")); err == nil {
		from = f.String()
	}
	name := to
	if h != nil {
		name = h.Name()
	}
	var problem error
	switch {
	case c.r.ContentNamespace() != xmlstream.NSClient:
		problem = &xmlstream.Error{Condition: "invalid-namespace", Text: "the content namespace must be jabber:client"}
	case h == nil:
		problem = &xmlstream.Error{Condition: "host-unknown", Text: "this server does not serve " + to}
	case c.host != nil && c.host != h:
		problem = &xmlstream.Error{Condition: "not-authorized", Text: "the stream was restarted for another host"}
	case !strings.HasPrefix(hdr.Attr("version"), "1."):
		problem = &xmlstream.Error{Condition: "unsupported-version", Text: "XMPP 1.0 streams only"}
	}
	out := []byte(c.header(name, from))
	if problem != nil {
		// Our header first, then the stream error (sent by Close).
		if err := c.writeRaw(out); err != nil {
			return err
		}
		c.headerSent = true
		return problem
	}
	c.host = h
	// Header and features in one write: a login restarts the stream twice.
	out = c.features().AppendXML(out, xmlstream.NSClient)
	c.headerSent = true
	return c.writeRaw(out)
}

func (c *conn) tlsPending() bool {
	return !c.encrypted && (c.mode == TLSRequired || c.mode == TLSOptional)
}

func (c *conn) features() *xmlstream.Element {
	f := xmlstream.NewElement(xmlstream.NSStream, "features")
	switch {
	case c.user == "":
		if c.tlsPending() {
			st := xmlstream.NewElement(nsTLS, "starttls")
			if c.mode == TLSRequired {
				st.AppendChild(xmlstream.NewElement(nsTLS, "required"))
				f.AppendChild(st)
				return f
			}
			f.AppendChild(st)
		}
		o := c.saslOptions()
		mechs := xmlstream.NewElement(nsSASL, "mechanisms")
		for _, m := range sasl.Mechanisms(o) {
			mechs.AppendChild(xmlstream.NewElement(nsSASL, "mechanism").AppendText(m))
		}
		f.AppendChild(mechs)
		if len(mechs.Elements()) > 0 {
			f.AppendChild(c.sasl2Feature(o, sasl.Mechanisms(o)))
		}
		if o.ChannelBinding != nil {
			cb := xmlstream.NewElement(nsSASLCB, "sasl-channel-binding")
			for _, t := range o.CBTypes {
				cb.AppendChild(xmlstream.NewElement(nsSASLCB, "channel-binding").SetAttr("type", t))
			}
			f.AppendChild(cb)
		}
		if c.host.RegistrationOpen() && (c.encrypted || c.mode == TLSDisabled) {
			f.AppendChild(xmlstream.NewElement(nsRegFeat, "register"))
		}
	default:
		f.AppendChild(xmlstream.NewElement(nsBind, "bind"))
		f.AppendChild(xmlstream.NewElement(nsSession, "session").AppendChild(xmlstream.NewElement(nsSession, "optional")))
		f.AppendChild(xmlstream.NewElement(nsRosterV, "ver"))
		f.AppendChild(xmlstream.NewElement(nsPreAppr, "sub"))
		f.AppendChild(xmlstream.NewElement(nsCSI, "csi"))
		if c.srv.cfg.SM.Enabled {
			f.AppendChild(xmlstream.NewElement(sm.NS, "sm"))
		}
	}
	return f
}

// negotiate runs the stream up to a bound resource.
func (c *conn) negotiate() error {
	if err := c.openStream(); err != nil {
		return err
	}
	authFailures := 0
	for {
		el, err := c.r.Next()
		if err != nil {
			return err
		}
		if c.closed.Load() {
			return errStreamClosing
		}
		switch {
		case el.Space == nsTLS && el.Local == "starttls" && c.tlsPending() && c.user == "":
			release, err := c.handshakeSlot()
			if err != nil {
				return err
			}
			if err := c.writeRaw([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
				release()
				return err
			}
			err = c.startTLS()
			release()
			if err != nil {
				c.log().Debug("STARTTLS handshake failed", "error", err)
				c.closed.Store(true)
				return errStreamClosing
			}
			c.r.Reset(deadlineReader{c, c.srv.tun().IdleTimeout})
			if err := c.openStream(); err != nil {
				return err
			}
		case c.tlsPending() && c.mode == TLSRequired:
			return &xmlstream.Error{Condition: "policy-violation", Text: "STARTTLS is required"}
		case el.Space == nsSASL && el.Local == "auth" && c.user == "":
			ok, err := c.authenticate(el)
			if err != nil {
				return err
			}
			if !ok {
				if authFailures++; authFailures >= maxAuthAttempts {
					return &xmlstream.Error{Condition: "policy-violation", Text: "too many failed authentication attempts"}
				}
				continue
			}
			c.r.Restart()
			if err := c.openStream(); err != nil {
				return err
			}
		case el.Space == nsSASL2 && el.Local == "authenticate" && c.user == "":
			ok, bound, err := c.authenticate2(el)
			if err != nil || bound {
				return err
			}
			if !ok {
				if authFailures++; authFailures >= maxAuthAttempts {
					return &xmlstream.Error{Condition: "policy-violation", Text: "too many failed authentication attempts"}
				}
			}
		case el.Space == xmlstream.NSClient && el.Local == "iq" && c.user == "":
			if err := c.preAuthIQ(el); err != nil {
				return err
			}
		case el.Space == xmlstream.NSClient && el.Local == "iq" && c.user != "":
			bound, err := c.postAuthIQ(el)
			if err != nil || bound {
				return err
			}
		case el.Space == sm.NS && el.Local == "resume" && c.user != "" && c.srv.cfg.SM.Enabled:
			resumed, err := c.resumeStream(el)
			if err != nil || resumed {
				return err
			}
		case el.Space == sm.NS && el.Local == "enable" && c.user != "" && c.srv.cfg.SM.Enabled:
			// XEP-0198 §3: only after binding a resource.
			if err := c.writeRaw(smFailed("unexpected-request", nil).AppendXML(nil, xmlstream.NSClient)); err != nil {
				return err
			}
		default:
			return &xmlstream.Error{Condition: "not-authorized", Text: "authenticate and bind a resource first"}
		}
	}
}

// postAuthIQ handles resource binding and the legacy session IQ. It
// returns true once a resource is bound.
func (c *conn) postAuthIQ(iq *xmlstream.Element) (bool, error) {
	q := iq.FirstChild()
	switch {
	case q != nil && q.Space == nsBind && q.Local == "bind" && iq.Attr("type") == "set":
		return c.bind(iq, q)
	case q != nil && q.Space == nsSession && q.Local == "session" && iq.Attr("type") == "set":
		return false, c.writeRaw(stanza.Result(iq, nil).AppendXML(nil, xmlstream.NSClient))
	}
	return false, &xmlstream.Error{Condition: "not-authorized", Text: "bind a resource first"}
}

func (c *conn) bind(iq, q *xmlstream.Element) (bool, error) {
	res := ""
	if r := q.Child(nsBind, "resource"); r != nil {
		res = strings.TrimSpace(r.Text())
	}
	if res == "" {
		res = "koi-" + newID()[:12]
	}
	full, err := jid.New(c.user, c.host.Name(), res)
	if err != nil {
		reply := stanza.ErrorReply(iq, stanza.ErrBadRequest.WithText("invalid resource"))
		return false, c.writeRaw(reply.AppendXML(nil, xmlstream.NSClient))
	}
	res2 := xmlstream.NewElement(nsBind, "bind").AppendChild(xmlstream.NewElement(nsBind, "jid").AppendText(full.String()))
	reply := stanza.Result(iq, res2)
	reply.RemoveAttr("to")
	// The result goes first in the queue: nothing routed to the new
	// session may overtake it, and from here on every write is queued.
	c.enqueue(reply.AppendXML(nil, xmlstream.NSClient), true)
	s, replaced := c.srv.cfg.Router.Bind(full, c)
	c.session = s
	c.bound.Store(true)
	if replaced != nil {
		replaced.Close("conflict", "replaced by a new connection for the same resource")
	}
	c.log().Debug("resource bound")
	return true, nil
}

// sessionLoop reads stanzas of a bound session and hands them on. It is
// small on purpose: an idle session waits in it (see waitIdle), or parks.
func (c *conn) sessionLoop() error {
	ctx := c.park.context()
	rc := rawConn(c.nc)
	for {
		// A whitespace keepalive is all some clients send for hours: it
		// must not leave the session waiting inside Next, where it
		// never parks.
		if c.r.SkipSpace(); c.r.Idle() {
			if err := c.waitIdle(rc); err != nil {
				return err
			}
			continue
		}
		if err := c.nextStanza(ctx); err != nil {
			return err
		}
	}
}

// nextStanza reads one element of a bound session and handles it.
func (c *conn) nextStanza(ctx context.Context) error {
	el, err := c.r.Next()
	if err != nil {
		return err
	}
	if c.closed.Load() {
		return errStreamClosing
	}
	if c.clientState(el) {
		return nil
	}
	if handled, err := c.smElement(ctx, el); handled || err != nil {
		return err
	}
	if !stanza.IsStanza(el) {
		return &xmlstream.Error{Condition: "unsupported-stanza-type", Text: "<" + el.Local + "/> is not supported here"}
	}
	if ss := c.smSess.Load(); ss != nil {
		ss.st.Handled()
	}
	s := c.session
	full := s.JID()
	if f := el.Attr("from"); f != "" {
		fj, err := jid.Parse(f)
		if err != nil || (fj != full && fj != full.Bare()) {
			return &xmlstream.Error{Condition: "invalid-from", Text: "from does not match your address"}
		}
	}
	el.SetAttr("from", s.Address())
	if el.Local == "iq" && !validIQ(el) {
		if el.Attr("type") != "error" && el.Attr("type") != "result" {
			el.RemoveAttr("to")
			c.Send(stanza.ErrorReply(el, stanza.ErrBadRequest.WithText("an IQ needs an id, a type and (for get and set) exactly one payload")))
		}
		return nil
	}
	if q := el.FirstChild(); el.Local == "iq" && q != nil && el.Attr("to") == "" && q.Space == nsSession && el.Attr("type") == "set" {
		c.Send(stanza.Result(el, nil))
		return nil
	}
	// Backend calls carry their own timeouts (plugin call_timeout);
	// the context ends when the connection does.
	start := time.Now()
	c.srv.cfg.Handler.Stanza(ctx, s, el)
	c.srv.cfg.Observer.StanzaIn(el.Local, time.Since(start))
	return nil
}

func validIQ(iq *xmlstream.Element) bool {
	if iq.Attr("id") == "" {
		return false
	}
	switch iq.Attr("type") {
	case "get", "set":
		return len(iq.Elements()) == 1
	case "result", "error":
		return true
	}
	return false
}
