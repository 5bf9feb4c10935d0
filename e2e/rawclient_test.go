package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
)

// rawClient speaks XMPP by hand over a socket, to send what a
// well-behaved library never would and to see exactly what comes back.
type rawClient struct {
	t   testing.TB
	nc  net.Conn
	br  *bufio.Reader
	dec *xml.Decoder
	// spaces counts whitespace between top-level elements: the server's
	// whitespace keepalives.
	spaces int
}

// errStreamEnd is returned by next when the server closed its stream
// with </stream:stream>.
var errStreamEnd = errors.New("server closed the stream")

// dialRaw connects to addr; with tlsCfg set, TLS starts at once (XEP-0368).
func dialRaw(t testing.TB, addr string, tlsCfg *tls.Config) *rawClient {
	t.Helper()
	return dialRawFrom(t, "", addr, tlsCfg)
}

// dialRawFrom is dialRaw from the local IP address from ("" for any):
// every 127.x.y.z address is this machine, so a test can log in from
// several client addresses.
func dialRawFrom(t testing.TB, from, addr string, tlsCfg *tls.Config) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: waitTimeout}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if tlsCfg != nil {
		tc := tls.Client(nc, tlsCfg)
		tc.SetDeadline(time.Now().Add(waitTimeout))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			t.Fatalf("TLS handshake with %s: %v", addr, err)
		}
		tc.SetDeadline(time.Time{})
		nc = tc
	}
	r := &rawClient{t: t, nc: nc}
	r.newReader()
	t.Cleanup(func() { r.nc.Close() })
	return r
}

func (r *rawClient) newReader() {
	r.br = bufio.NewReader(r.nc)
	r.restart()
}

// restart starts parsing a new stream on the same bytes; encoding/xml
// reads a bufio.Reader byte by byte, so nothing buffered is lost.
func (r *rawClient) restart() {
	r.dec = xml.NewDecoder(r.br)
	r.dec.Strict = true
}

// send writes raw bytes.
func (r *rawClient) send(s string) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(r.nc, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// header is a client stream header for domain to.
func header(to string) string {
	return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" +
		to + "' version='1.0' xml:lang='en'>"
}

// readHeader reads the server's stream header; an element that comes
// instead (a stream error sent with the header) is returned as the error.
func (r *rawClient) readHeader() (xml.StartElement, error) {
	r.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space == nsStream && t.Name.Local == "stream" {
				return t.Copy(), nil
			}
			return xml.StartElement{}, fmt.Errorf("got <%s xmlns=%q> before the stream header", t.Name.Local, t.Name.Space)
		case xml.ProcInst, xml.CharData:
		default:
			return xml.StartElement{}, fmt.Errorf("got %T before the stream header", tok)
		}
	}
}

// next reads the next top-level element, skipping whitespace. It returns
// errStreamEnd for </stream:stream>, io.EOF when the connection closed.
func (r *rawClient) next(timeout time.Duration) (*element, error) {
	r.nc.SetReadDeadline(time.Now().Add(timeout))
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return decodeElement(r.dec, t)
		case xml.EndElement:
			return nil, errStreamEnd
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, fmt.Errorf("text at stream level: %q", t)
			}
			r.spaces += len(t)
		default:
			return nil, fmt.Errorf("unexpected %T at stream level", tok)
		}
	}
}

// mustNext is next that fails the test on error.
func (r *rawClient) mustNext() *element {
	r.t.Helper()
	el, err := r.next(waitTimeout)
	if err != nil {
		r.t.Fatalf("reading: %v", err)
	}
	return el
}

// open sends a stream header for to and returns the features.
func (r *rawClient) open(to string) *element {
	r.t.Helper()
	r.send(header(to))
	if _, err := r.readHeader(); err != nil {
		r.t.Fatalf("stream header: %v", err)
	}
	f := r.mustNext()
	if !f.is(nsStream, "features") {
		r.t.Fatalf("want <stream:features/>, got %s", f)
	}
	return f
}

// startTLS negotiates STARTTLS and opens the encrypted stream; it returns
// the new features.
func (r *rawClient) startTLS(to string, cfg *tls.Config) *element {
	r.t.Helper()
	r.send("<starttls xmlns='" + nsTLS + "'/>")
	if el := r.mustNext(); !el.is(nsTLS, "proceed") {
		r.t.Fatalf("want <proceed/>, got %s", el)
	}
	tc := tls.Client(r.nc, cfg)
	tc.SetDeadline(time.Now().Add(waitTimeout))
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("STARTTLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	r.nc = tc
	r.newReader()
	return r.open(to)
}

// auth runs a SASL exchange with mellium.im/sasl's client and returns the
// element that ended it: <success/> or <failure/>.
func (r *rawClient) auth(mech sasl.Mechanism, user, password string) *element {
	r.t.Helper()
	opts := []sasl.Option{sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(user), []byte(password), nil
	})}
	if tc, ok := r.nc.(*tls.Conn); ok {
		opts = append(opts, sasl.TLSState(tc.ConnectionState()))
	}
	n := sasl.NewClient(mech, opts...)
	_, resp, err := n.Step(nil)
	if err != nil {
		r.t.Fatalf("SASL %s start: %v", mech.Name, err)
	}
	r.send("<auth xmlns='" + nsSASL + "' mechanism='" + mech.Name + "'>" + b64(resp) + "</auth>")
	for {
		el := r.mustNext()
		switch {
		case el.is(nsSASL, "challenge"):
			ch, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text))
			if err != nil {
				r.t.Fatalf("challenge not base64: %s", el)
			}
			_, resp, err := n.Step(ch)
			if err != nil {
				r.t.Fatalf("SASL %s: the client refuses challenge %q: %v", mech.Name, ch, err)
			}
			r.send("<response xmlns='" + nsSASL + "'>" + b64(resp) + "</response>")
		case el.is(nsSASL, "success"):
			// SCRAM: the additional data proves the server knew the
			// credentials; the client checks the signature.
			if add := strings.TrimSpace(el.Text); add != "" && add != "=" {
				data, err := base64.StdEncoding.DecodeString(add)
				if err != nil {
					r.t.Fatalf("success data not base64: %s", el)
				}
				if _, _, err := n.Step(data); err != nil {
					r.t.Fatalf("SASL %s: server signature refused: %v", mech.Name, err)
				}
			}
			return el
		case el.is(nsSASL, "failure"):
			return el
		default:
			r.t.Fatalf("unexpected %s during SASL", el)
		}
	}
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// saslCondition returns the condition of a SASL <failure/>.
func saslCondition(el *element) string {
	if !el.is(nsSASL, "failure") {
		return ""
	}
	for _, c := range el.Children {
		if c.XMLName.Space == nsSASL && c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return ""
}

// login takes a raw connection to a bound resource: STARTTLS on the c2s
// listener, SASL PLAIN, stream restart, bind.
func (r *rawClient) login(domain string, cfg *tls.Config, user, password, resource string) {
	r.t.Helper()
	r.open(domain)
	r.startTLS(domain, cfg)
	r.loginAfterTLS(domain, user, password, resource)
}

// loginAfterTLS is the rest of login once the stream is encrypted: SASL
// PLAIN, stream restart, bind.
func (r *rawClient) loginAfterTLS(domain, user, password, resource string) {
	r.t.Helper()
	if el := r.auth(sasl.Plain, user, password); !el.is(nsSASL, "success") {
		r.t.Fatalf("login as %s: %s", user, el)
	}
	r.restart()
	r.send(header(domain))
	if _, err := r.readHeader(); err != nil {
		r.t.Fatalf("stream header after SASL: %v", err)
	}
	if f := r.mustNext(); f.child(nsBind, "bind") == nil {
		r.t.Fatalf("no <bind/> in %s", f)
	}
	r.send("<iq type='set' id='bind1'><bind xmlns='" + nsBind + "'><resource>" + resource + "</resource></bind></iq>")
	if el := r.mustNext(); el.attr("type") != "result" {
		r.t.Fatalf("bind: %s", el)
	}
}

// expectStreamError reads until a stream error arrives, checks its
// condition and that the server then ends the stream and the connection.
func (r *rawClient) expectStreamError(condition string) {
	r.t.Helper()
	for {
		el, err := r.next(waitTimeout)
		if err != nil {
			r.t.Fatalf("want stream error <%s/>, got %v", condition, err)
		}
		if !el.is(nsStream, "error") {
			continue // stanzas sent before the error
		}
		if got := el.streamErrorCondition(); got != condition {
			r.t.Fatalf("stream error <%s/>, want <%s/>: %s", got, condition, el)
		}
		break
	}
	r.expectClosed()
}

// expectClosed checks that the server ends the stream and closes the
// connection within a few seconds.
func (r *rawClient) expectClosed() {
	r.t.Helper()
	el, err := r.next(waitTimeout)
	if !errors.Is(err, errStreamEnd) {
		r.t.Fatalf("want </stream:stream>, got %s, %v", el, err)
	}
	// Close our side too, as a client does; the server may then close
	// the connection at once rather than after a grace period.
	io.WriteString(r.nc, "</stream:stream>")
	r.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	var buf [64]byte
	n, err := r.br.Read(buf[:])
	if err == nil {
		r.t.Fatalf("data after </stream:stream>: %q", buf[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatalf("connection still open %v after the stream error", waitTimeout)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isConnReset(err) {
		r.t.Fatalf("waiting for the connection to close: %v", err)
	}
}

func isConnReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}
