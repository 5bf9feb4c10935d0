// Package client is a lean XMPP client for load generation: just enough of
// RFC 6120 to connect (optionally with STARTTLS or direct TLS), register
// in-band (XEP-0077), authenticate with SASL PLAIN or SCRAM-SHA-1/256,
// bind a resource and send initial presence, against any server. It writes
// hand-built XML and reads with the scan package instead of a parser, so
// that thousands of connections cost the load generator little.
package client

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdg-go/scram"

	"github.com/koi-im/koi/tools/koi-bench/internal/scan"
)

// TLS modes.
const (
	TLSAuto     = "auto"     // STARTTLS when the server offers it
	TLSNone     = "none"     // never; fail if the server requires STARTTLS
	TLSStartTLS = "starttls" // STARTTLS, fail if not offered
	TLSDirect   = "direct"   // TLS from the first byte (XEP-0368)
)

// SASL mechanisms the client speaks.
const (
	MechPLAIN       = "PLAIN"
	MechSCRAMSHA1   = "SCRAM-SHA-1"
	MechSCRAMSHA256 = "SCRAM-SHA-256"
)

// Namespaces used in negotiation.
const (
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsRegister = "jabber:iq:register"
	nsPing     = "urn:xmpp:ping"
)

// Options configure a Dialer.
type Options struct {
	Addr   string // host:port of the server
	Domain string // the XMPP domain (stream 'to')
	TLS    string // one of the TLS* modes; "" means TLSAuto
	// TLSConfig is used for STARTTLS and direct TLS; nil means one that
	// accepts any certificate (benchmarks run against self-signed ones).
	TLSConfig *tls.Config
	// Mechanism forces a SASL mechanism; "" picks SCRAM-SHA-256, then
	// SCRAM-SHA-1, then PLAIN, whichever the server offers first.
	Mechanism string
	// Timeout bounds one negotiation (connect to bound resource). 0 means 30s.
	Timeout time.Duration
	// Sources are local addresses to rotate outgoing connections over, to
	// get past the ephemeral port range of one source address.
	Sources []net.IP
	// ReadBuffer is the initial read buffer of a connection (default 4 KiB).
	ReadBuffer int
}

// Dialer opens sessions. It caches SCRAM salted passwords per user, as
// real clients do, so that only a user's first login pays for PBKDF2 on
// the client side. A Dialer is safe for concurrent use.
type Dialer struct {
	opt  Options
	next atomic.Uint32

	mu     sync.Mutex
	scram  map[scramKey]*scram.Client
	tokens map[string]string // user -> FAST token (MechFAST)
}

type scramKey struct{ mech, user, pass string }

// NewDialer returns a Dialer for opt.
func NewDialer(opt Options) (*Dialer, error) {
	if opt.TLS == "" {
		opt.TLS = TLSAuto
	}
	switch opt.TLS {
	case TLSAuto, TLSNone, TLSStartTLS, TLSDirect:
	default:
		return nil, fmt.Errorf("unknown TLS mode %q (want auto, none, starttls or direct)", opt.TLS)
	}
	switch opt.Mechanism {
	case "", MechPLAIN, MechSCRAMSHA1, MechSCRAMSHA256, MechFAST:
	default:
		return nil, fmt.Errorf("unknown SASL mechanism %q (want PLAIN, SCRAM-SHA-1, SCRAM-SHA-256 or %s)", opt.Mechanism, MechFAST)
	}
	if opt.Domain == "" {
		return nil, errors.New("no XMPP domain")
	}
	if _, _, err := net.SplitHostPort(opt.Addr); err != nil {
		return nil, fmt.Errorf("server address %q: %w", opt.Addr, err)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.ReadBuffer <= 0 {
		opt.ReadBuffer = 4096
	}
	if opt.TLSConfig == nil {
		opt.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	}
	if opt.TLSConfig.ServerName == "" {
		c := opt.TLSConfig.Clone()
		c.ServerName = opt.Domain
		opt.TLSConfig = c
	}
	return &Dialer{opt: opt, scram: map[scramKey]*scram.Client{}, tokens: map[string]string{}}, nil
}

// Options returns the dialer's options.
func (d *Dialer) Options() Options { return d.opt }

// Conn is one client stream.
type Conn struct {
	nc      net.Conn
	sc      *scan.Scanner
	d       *Dialer
	feat    []byte // the last stream features, copied
	tls     bool
	mech    string
	jid     string
	iters   int // PBKDF2 iterations the server asked for in SCRAM
	idCount int
	phases  Phases
}

// Phases is how long each step of opening a session took.
type Phases struct {
	Connect time.Duration // TCP connect
	Stream  time.Duration // stream header and features, TLS included
	Auth    time.Duration // SASL
	Bind    time.Duration // stream restart, resource binding and, if asked, presence
}

// Phases returns the time the steps of Dialer.Session took.
func (c *Conn) Phases() Phases { return c.phases }

// NetConn is the transport (a *tls.Conn when TLS is on). Writers of
// stanzas may write to it directly once the session is bound.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Scanner reads the stream.
func (c *Conn) Scanner() *scan.Scanner { return c.sc }

// JID is the bound full JID, "" before binding.
func (c *Conn) JID() string { return c.jid }

// Mechanism is the SASL mechanism used to log in.
func (c *Conn) Mechanism() string { return c.mech }

// TLS reports whether the stream is encrypted.
func (c *Conn) TLS() bool { return c.tls }

// SCRAMIterations is the iteration count the server sent in SCRAM, 0 if
// SCRAM was not used.
func (c *Conn) SCRAMIterations() int { return c.iters }

// Connect opens a stream up to the pre-authentication features, after
// STARTTLS when the mode asks for it.
func (d *Dialer) Connect(ctx context.Context) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	c, err := d.connect(ctx)
	if err != nil {
		return nil, err
	}
	c.nc.SetDeadline(time.Time{})
	return c, nil
}

func (d *Dialer) connect(ctx context.Context) (*Conn, error) {
	nd := net.Dialer{}
	if n := len(d.opt.Sources); n > 0 {
		ip := d.opt.Sources[int(d.next.Add(1))%n]
		nd.LocalAddr = &net.TCPAddr{IP: ip}
		nd.Control = bindNoPort
	}
	t0 := time.Now()
	nc, err := nd.DialContext(ctx, "tcp", d.opt.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	t1 := time.Now()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c := &Conn{nc: nc, d: d}
	c.sc = scan.NewScanner(nc, d.opt.ReadBuffer, 0)
	if d.opt.TLS == TLSDirect {
		if err := c.startTLS(ctx); err != nil {
			nc.Close()
			return nil, err
		}
	}
	if err := c.open(); err != nil {
		c.nc.Close()
		return nil, err
	}
	st, hasTLS := scan.Child(c.feat, "starttls")
	_, required := scan.Child(st, "required")
	switch {
	case c.tls:
	case hasTLS && (d.opt.TLS == TLSAuto || d.opt.TLS == TLSStartTLS):
		if err := c.doStartTLS(ctx); err != nil {
			c.nc.Close()
			return nil, err
		}
	case d.opt.TLS == TLSStartTLS:
		c.nc.Close()
		return nil, errors.New("the server does not offer STARTTLS")
	case hasTLS && required:
		c.nc.Close()
		return nil, errors.New("the server requires STARTTLS (TLS mode is none)")
	}
	c.phases.Connect, c.phases.Stream = t1.Sub(t0), time.Since(t1)
	return c, nil
}

func (c *Conn) startTLS(ctx context.Context) error {
	tc := tls.Client(c.nc, c.d.opt.TLSConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w%s", err, c.detail(err))
	}
	c.nc = tc
	c.tls = true
	c.sc.Reset(tc)
	return nil
}

// detail describes the connection and a TLS record error, for errors
// that point at the transport.
func (c *Conn) detail(err error) string {
	s := " (" + c.nc.LocalAddr().String()
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		s += fmt.Sprintf(", record header %q", rh.RecordHeader[:])
	}
	return s + ")"
}

func (c *Conn) doStartTLS(ctx context.Context) error {
	if err := c.write("<starttls xmlns='" + nsTLS + "'/>"); err != nil {
		return err
	}
	el, err := c.next()
	if err != nil {
		return err
	}
	if !scan.IsNamed(el, "proceed") {
		return fmt.Errorf("STARTTLS refused: %s", short(el))
	}
	if err := c.startTLS(ctx); err != nil {
		return err
	}
	return c.open()
}

// open sends our stream header and reads the server's header and
// features.
func (c *Conn) open() error {
	if err := c.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='" +
		string(scan.Escape(nil, c.d.opt.Domain)) + "'>"); err != nil {
		return err
	}
	t, err := c.sc.Next()
	switch {
	case err != nil:
		return fmt.Errorf("reading the stream header: %w%s", err, c.detail(err))
	case t.Kind == scan.End:
		return errors.New("the server closed the stream")
	case t.Kind != scan.Header:
		return fmt.Errorf("expected a stream header, got %s", short(t.Raw))
	}
	el, err := c.next()
	if err != nil {
		return err
	}
	if !scan.IsNamed(el, "features") {
		return fmt.Errorf("expected stream features, got %s", short(el))
	}
	c.feat = append(c.feat[:0], el...)
	return nil
}

// next returns the next top-level element, turning a stream error or the
// end of the stream into an error.
func (c *Conn) next() ([]byte, error) {
	t, err := c.sc.Next()
	if err != nil {
		return nil, err
	}
	switch t.Kind {
	case scan.End:
		return nil, errors.New("the server closed the stream")
	case scan.Header:
		return nil, errors.New("unexpected stream header")
	}
	if scan.IsNamed(t.Raw, "error") && len(t.Raw) > 7 && string(t.Raw[:7]) == "<stream" {
		return nil, StreamError(t.Raw)
	}
	return t.Raw, nil
}

// StreamError describes a <stream:error/> element.
func StreamError(raw []byte) error {
	return fmt.Errorf("stream error %s", describe(raw))
}

// describe renders the condition and text of an error-like element.
func describe(raw []byte) string {
	cond := scan.Condition(raw)
	if cond == "" {
		cond = "undefined-condition"
	}
	if t, ok := scan.Child(raw, "text"); ok {
		cond += " (" + scan.Text(t) + ")"
	}
	return cond
}

func (c *Conn) write(s string) error {
	_, err := c.nc.Write([]byte(s))
	return err
}

func (c *Conn) newID(prefix string) string {
	c.idCount++
	return prefix + strconv.Itoa(c.idCount)
}

// Features returns the stream features last received.
func (c *Conn) Features() []byte { return c.feat }

// Mechanisms lists the SASL mechanisms the server offers.
func (c *Conn) Mechanisms() []string {
	var out []string
	scan.Children(c.feat, "mechanism", func(m []byte) bool {
		out = append(out, scan.Text(m))
		return true
	})
	return out
}

// Register creates user with password by in-band registration on a
// pre-authentication stream. It returns ErrExists when the name is taken,
// so that re-running a benchmark against the same server works.
func (c *Conn) Register(ctx context.Context, user, password string) error {
	c.setDeadline(ctx)
	defer c.nc.SetDeadline(time.Time{})
	id := c.newID("reg")
	b := make([]byte, 0, 256)
	b = append(b, "<iq type='set' id='"...)
	b = append(b, id...)
	b = append(b, "'><query xmlns='"+nsRegister+"'><username>"...)
	b = scan.Escape(b, user)
	b = append(b, "</username><password>"...)
	b = scan.Escape(b, password)
	b = append(b, "</password></query></iq>"...)
	if _, err := c.nc.Write(b); err != nil {
		return err
	}
	el, err := c.reply(id)
	if err != nil {
		return err
	}
	if v, _ := scan.Attr(el, "type"); string(v) == "result" {
		return nil
	}
	if e, ok := scan.Child(el, "error"); ok && scan.Condition(e) == "conflict" {
		return ErrExists
	}
	return fmt.Errorf("registration of %s refused: %s", user, stanzaErrorCondition(el))
}

// ErrExists is returned by Register for a name that is taken.
var ErrExists = errors.New("account exists")

// reply waits for the IQ response with id, skipping anything else.
func (c *Conn) reply(id string) ([]byte, error) {
	for {
		el, err := c.next()
		if err != nil {
			return nil, err
		}
		if !scan.IsNamed(el, "iq") {
			continue
		}
		if v, _ := scan.Attr(el, "id"); string(v) == id {
			return el, nil
		}
	}
}

func stanzaErrorCondition(el []byte) string {
	e, ok := scan.Child(el, "error")
	if !ok {
		return "no error condition"
	}
	return describe(e)
}

func (c *Conn) setDeadline(ctx context.Context) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(c.d.opt.Timeout)
	}
	c.nc.SetDeadline(dl)
}

// Login authenticates, restarts the stream and binds resource ("" lets
// the server choose).
func (c *Conn) Login(ctx context.Context, user, password, resource string) error {
	c.setDeadline(ctx)
	defer c.nc.SetDeadline(time.Time{})
	t0 := time.Now()
	if c.d.opt.Mechanism == MechFAST {
		// Authenticated and bound in one exchange: no restart, no bind.
		err := c.fastLogin(user, password, resource)
		c.phases.Auth = time.Since(t0)
		return err
	}
	if err := c.auth(user, password); err != nil {
		return err
	}
	t1 := time.Now()
	c.sc.Reset(c.nc)
	if err := c.open(); err != nil {
		return err
	}
	err := c.bind(resource)
	c.phases.Auth, c.phases.Bind = t1.Sub(t0), time.Since(t1)
	return err
}

func (c *Conn) pickMechanism() (string, error) {
	offered := c.Mechanisms()
	if m := c.d.opt.Mechanism; m != "" {
		if !slices.Contains(offered, m) {
			return "", fmt.Errorf("the server does not offer %s (it offers %v)", m, offered)
		}
		return m, nil
	}
	for _, m := range []string{MechSCRAMSHA256, MechSCRAMSHA1, MechPLAIN} {
		if slices.Contains(offered, m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("no usable SASL mechanism among %v", offered)
}

func (c *Conn) auth(user, password string) error {
	mech, err := c.pickMechanism()
	if err != nil {
		return err
	}
	c.mech = mech
	if mech == MechPLAIN {
		msg := "\x00" + user + "\x00" + password
		if err := c.write("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte(msg)) + "</auth>"); err != nil {
			return err
		}
		return c.saslOutcome(nil)
	}
	conv, err := c.d.scramConversation(mech, user, password)
	if err != nil {
		return err
	}
	first, err := conv.Step("")
	if err != nil {
		return fmt.Errorf("SCRAM: %w", err)
	}
	if err := c.write("<auth xmlns='" + nsSASL + "' mechanism='" + mech + "'>" + base64.StdEncoding.EncodeToString([]byte(first)) + "</auth>"); err != nil {
		return err
	}
	return c.saslOutcome(conv)
}

// saslOutcome answers challenges until success or failure.
func (c *Conn) saslOutcome(conv *scram.ClientConversation) error {
	for {
		el, err := c.next()
		if err != nil {
			return err
		}
		data, err := base64.StdEncoding.DecodeString(scan.Text(el))
		if err != nil {
			return fmt.Errorf("SASL: bad base64 from the server: %w", err)
		}
		switch string(scan.Name(el)) {
		case "challenge":
			if conv == nil {
				return errors.New("SASL: unexpected challenge for PLAIN")
			}
			if c.iters == 0 {
				c.iters = scramIterations(data)
			}
			resp, err := conv.Step(string(data))
			if err != nil {
				return fmt.Errorf("SASL: %w", err)
			}
			if err := c.write("<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString([]byte(resp)) + "</response>"); err != nil {
				return err
			}
		case "success":
			if conv != nil {
				if !conv.Done() {
					if _, err := conv.Step(string(data)); err != nil {
						return fmt.Errorf("SASL: server signature: %w", err)
					}
				}
				if !conv.Valid() {
					return errors.New("SASL: the server's SCRAM signature did not verify")
				}
			}
			return nil
		case "failure":
			return fmt.Errorf("SASL %s failed: %s", c.mech, describe(el))
		default:
			return fmt.Errorf("SASL: unexpected %s", short(el))
		}
	}
}

// scramIterations reads i= from a SCRAM server-first message.
func scramIterations(msg []byte) int {
	for _, part := range strings.Split(string(msg), ",") {
		if v, ok := strings.CutPrefix(part, "i="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func (d *Dialer) scramConversation(mech, user, password string) (*scram.ClientConversation, error) {
	k := scramKey{mech, user, password}
	d.mu.Lock()
	cl := d.scram[k]
	d.mu.Unlock()
	if cl == nil {
		hf := scram.SHA1
		if mech == MechSCRAMSHA256 {
			hf = scram.SHA256
		}
		var err error
		cl, err = hf.NewClient(user, password, "")
		if err != nil {
			return nil, fmt.Errorf("SCRAM: %w", err)
		}
		d.mu.Lock()
		if old := d.scram[k]; old != nil {
			cl = old
		} else {
			d.scram[k] = cl
		}
		d.mu.Unlock()
	}
	return cl.NewConversation(), nil
}

func (c *Conn) bind(resource string) error {
	if _, ok := scan.Child(c.feat, "bind"); !ok {
		return errors.New("the server offers no resource binding")
	}
	id := c.newID("bind")
	b := "<iq type='set' id='" + id + "'><bind xmlns='" + nsBind + "'"
	if resource == "" {
		b += "/></iq>"
	} else {
		b += "><resource>" + string(scan.Escape(nil, resource)) + "</resource></bind></iq>"
	}
	if err := c.write(b); err != nil {
		return err
	}
	el, err := c.reply(id)
	if err != nil {
		return err
	}
	if v, _ := scan.Attr(el, "type"); string(v) != "result" {
		return fmt.Errorf("bind refused: %s", stanzaErrorCondition(el))
	}
	j, ok := scan.Child(el, "jid")
	if !ok {
		return errors.New("bind result without a JID")
	}
	c.jid = scan.Text(j)
	// The legacy session IQ (RFC 3921) only where the server marks it
	// mandatory.
	if s, ok := scan.Child(c.feat, "session"); ok {
		if _, optional := scan.Child(s, "optional"); !optional {
			id := c.newID("sess")
			if err := c.write("<iq type='set' id='" + id + "'><session xmlns='" + nsSession + "'/></iq>"); err != nil {
				return err
			}
			el, err := c.reply(id)
			if err != nil {
				return err
			}
			if v, _ := scan.Attr(el, "type"); string(v) != "result" {
				return fmt.Errorf("session refused: %s", stanzaErrorCondition(el))
			}
		}
	}
	return nil
}

// Available sends initial presence and waits for the answer to a ping
// sent after it, so that when it returns the server has made the session
// available (messages to the bare JID reach it).
func (c *Conn) Available(ctx context.Context) error {
	if err := c.write("<presence/>"); err != nil {
		return err
	}
	return c.Ping(ctx)
}

// Keepalive sends a whitespace keepalive (RFC 6120 §4.6.1), as some
// clients (Psi, for one) do every minute or so.
func (c *Conn) Keepalive() error {
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer c.nc.SetWriteDeadline(time.Time{})
	return c.write(" ")
}

// Ping sends an XEP-0199 ping to the server and waits for its answer;
// anything received meanwhile is skipped.
func (c *Conn) Ping(ctx context.Context) error {
	c.setDeadline(ctx)
	defer c.nc.SetDeadline(time.Time{})
	id := c.newID("ping")
	if err := c.write("<iq type='get' id='" + id + "' to='" + string(scan.Escape(nil, c.d.opt.Domain)) + "'><ping xmlns='" + nsPing + "'/></iq>"); err != nil {
		return err
	}
	_, err := c.reply(id)
	return err
}

// Close ends the stream politely (without waiting for the server's
// closing tag) and closes the connection.
func (c *Conn) Close() error {
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.write("</stream:stream>")
	return c.nc.Close()
}

// Session connects, logs in as user and binds resource; with available
// set it also sends initial presence and waits until the server has
// processed it.
func (d *Dialer) Session(ctx context.Context, user, password, resource string, available bool) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	c, err := d.connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.Login(ctx, user, password, resource); err != nil {
		c.nc.Close()
		return nil, err
	}
	if available {
		t := time.Now()
		if err := c.Available(ctx); err != nil {
			c.nc.Close()
			return nil, err
		}
		c.phases.Bind += time.Since(t)
	}
	c.nc.SetDeadline(time.Time{})
	return c, nil
}

func short(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

const nsSM = "urn:xmpp:sm:3"

// EnableSM turns on resumable stream management (XEP-0198) and returns the
// resumption id.
func (c *Conn) EnableSM(ctx context.Context) (string, error) {
	c.setDeadline(ctx)
	defer c.nc.SetDeadline(time.Time{})
	if err := c.write("<enable xmlns='" + nsSM + "' resume='true'/>"); err != nil {
		return "", err
	}
	for {
		el, err := c.next()
		if err != nil {
			return "", err
		}
		switch {
		case scan.IsNamed(el, "enabled"):
			id, _ := scan.Attr(el, "id")
			if len(id) == 0 {
				return "", errors.New("stream management enabled without resumption")
			}
			return string(id), nil
		case scan.IsNamed(el, "failed"):
			return "", fmt.Errorf("stream management refused: %s", describe(el))
		}
	}
}

// Drop resets the TCP connection without closing the stream, as a client
// that lost its network: a resumable session stays on the server, detached.
func (c *Conn) Drop() error {
	nc := c.nc
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = u.NetConn()
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	return nc.Close()
}
