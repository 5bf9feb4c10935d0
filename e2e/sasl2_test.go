package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
)

// SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484), spoken by hand
// with the elements of the XEPs' examples, since no client packaged for
// Debian or npm speaks them.

const (
	nsSASL2      = "urn:xmpp:sasl:2"
	nsBind2      = "urn:xmpp:bind:0"
	nsFAST       = "urn:xmpp:fast:0"
	nsCarbons2   = "urn:xmpp:carbons:2"
	nsCSI0       = "urn:xmpp:csi:0"
	fastAgent    = "d4565fa7-4d72-4749-b3d3-740edbf87770" // XEP-0388's example id
	fastUserAgnt = "<user-agent xmlns='" + nsSASL2 + "' id='" + fastAgent + "'><software>koi e2e</software><device>test runner</device></user-agent>"
)

// sasl2Connect dials the STARTTLS listener from the address from ("" for
// any) and returns the client with the features after TLS.
func sasl2Connect(t *testing.T, s *server, from, domain string) (*rawClient, *element) {
	t.Helper()
	r := dialRawFrom(t, from, s.c2s, nil)
	r.open(domain)
	return r, r.startTLS(domain, s.tlsConfig(t, domain))
}

// sasl2SCRAM logs in with SCRAM-SHA-256 over SASL2, extra (user-agent,
// bind, token request) inside <authenticate/>, and returns the element
// that ended it. A success's additional data is checked as the server's
// SCRAM signature.
func (r *rawClient) sasl2SCRAM(user, password, extra string) *element {
	r.t.Helper()
	n := sasl.NewClient(sasl.ScramSha256, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(user), []byte(password), nil
	}))
	_, resp, err := n.Step(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	r.send("<authenticate xmlns='" + nsSASL2 + "' mechanism='SCRAM-SHA-256'><initial-response>" + b64(resp) +
		"</initial-response>" + extra + "</authenticate>")
	for {
		el := r.mustNext()
		switch {
		case el.is(nsSASL2, "challenge"):
			ch, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text))
			if err != nil {
				r.t.Fatalf("challenge not base64: %s", el)
			}
			_, resp, err := n.Step(ch)
			if err != nil {
				r.t.Fatalf("the client refuses challenge %q: %v", ch, err)
			}
			r.send("<response xmlns='" + nsSASL2 + "'>" + b64(resp) + "</response>")
		case el.is(nsSASL2, "success"):
			data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.child(nsSASL2, "additional-data").Text))
			if err != nil || len(data) == 0 {
				r.t.Fatalf("no SCRAM server-final in %s", el)
			}
			if _, _, err := n.Step(data); err != nil {
				r.t.Fatalf("server signature refused: %v", err)
			}
			return el
		case el.is(nsSASL2, "failure"):
			return el
		default:
			r.t.Fatalf("unexpected %s during SASL2", el)
		}
	}
}

func htProof(token, label string, cb []byte) []byte {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte(label))
	mac.Write(cb)
	return mac.Sum(nil)
}

// sasl2FAST logs in with a token in one message and returns the one
// element that answers it: <success/> (its additional data checked as the
// server's HT proof) or <failure/>. A challenge fails the test: FAST is
// one round trip.
func (r *rawClient) sasl2FAST(mech, user, token string, cb []byte, extra string) *element {
	r.t.Helper()
	msg := append([]byte(user+"\x00"), htProof(token, "Initiator", cb)...)
	r.send("<authenticate xmlns='" + nsSASL2 + "' mechanism='" + mech + "'><initial-response>" + b64(msg) +
		"</initial-response>" + fastUserAgnt + extra + "</authenticate>")
	el := r.mustNext()
	switch {
	case el.is(nsSASL2, "success"):
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.child(nsSASL2, "additional-data").Text))
		if err != nil || !hmac.Equal(data, htProof(token, "Responder", cb)) {
			r.t.Fatalf("the server's HT proof is wrong in %s", el)
		}
	case el.is(nsSASL2, "failure"):
	default:
		r.t.Fatalf("FAST login answered with %s, want <success/> or <failure/> at once", el)
	}
	return el
}

// sasl2Condition returns the condition of a SASL2 <failure/>.
func sasl2Condition(el *element) string {
	if !el.is(nsSASL2, "failure") {
		return ""
	}
	for _, c := range el.Children {
		if c.XMLName.Space == nsSASL {
			return c.XMLName.Local
		}
	}
	return ""
}

// wantToken returns the token of a <success/>, checking its expiry.
func wantToken(t *testing.T, success *element, lifetime time.Duration) string {
	t.Helper()
	tok := success.child(nsFAST, "token")
	if tok == nil || tok.attr("token") == "" {
		t.Fatalf("no FAST token in %s", success)
	}
	exp, err := time.Parse(time.RFC3339, tok.attr("expiry"))
	if err != nil {
		t.Fatalf("token expiry %q: %v", tok.attr("expiry"), err)
	}
	if d := time.Until(exp); d < lifetime-time.Minute || d > lifetime+time.Minute {
		t.Errorf("token expires in %v, want about %v", d, lifetime)
	}
	return tok.attr("token")
}

// wantRoundTrip checks that the stream carries stanzas (a ping answered).
func (r *rawClient) wantRoundTrip(id string) {
	r.t.Helper()
	r.send("<iq type='get' id='" + id + "'><ping xmlns='" + nsPing + "'/></iq>")
	for {
		el := r.mustNext()
		if el.is(nsClient, "iq") && el.attr("id") == id {
			if el.attr("type") != "result" {
				r.t.Fatalf("ping: %s", el)
			}
			return
		}
	}
}

const bind2Carbons = "<bind xmlns='" + nsBind2 + "'><tag>koi-e2e</tag><enable xmlns='" + nsCarbons2 + "'/></bind>"

func TestSASL2FAST(t *testing.T) {
	opt := defaultOptions()
	opt.AuthFailuresPerAccount = 3
	s := startServer(t, opt)
	s.addUser(t, "alice@localhost", "wonderland")
	s.addUser(t, "bob@localhost", "builder")
	s.addUser(t, "carol@localhost", "singer")
	const lifetime = 21 * 24 * time.Hour

	var token string
	t.Run("features", func(t *testing.T) {
		_, f := sasl2Connect(t, s, "", "localhost")
		a := f.child(nsSASL2, "authentication")
		if a == nil {
			t.Fatalf("no SASL2 <authentication/> in %s", f)
		}
		var mechs []string
		for _, m := range a.children(nsSASL2, "mechanism") {
			mechs = append(mechs, m.Text)
		}
		if !strings.Contains(strings.Join(mechs, " "), "SCRAM-SHA-256") {
			t.Errorf("SASL2 mechanisms %v", mechs)
		}
		inline := a.child(nsSASL2, "inline")
		var bindFeats []string
		for _, fe := range inline.child(nsBind2, "bind").child(nsBind2, "inline").children(nsBind2, "feature") {
			bindFeats = append(bindFeats, fe.attr("var"))
		}
		if strings.Join(bindFeats, " ") != nsCarbons2+" "+nsCSI0+" "+nsSM {
			t.Errorf("Bind 2 inline features %v, want carbons, CSI and stream management", bindFeats)
		}
		var fastMechs []string
		for _, m := range inline.child(nsFAST, "fast").children(nsFAST, "mechanism") {
			fastMechs = append(fastMechs, m.Text)
		}
		// TLS 1.3: tls-exporter and tls-server-end-point, then none.
		if strings.Join(fastMechs, " ") != "HT-SHA-256-EXPR HT-SHA-256-ENDP HT-SHA-256-NONE" {
			t.Errorf("FAST mechanisms %v", fastMechs)
		}
		// Stream management resumes inside <authenticate/>.
		if inline.child(nsSM, "sm") == nil {
			t.Errorf("urn:xmpp:sm:3 not offered inline: %s", inline)
		}
		// A host without tokens offers SASL2 without FAST.
		_, f2 := sasl2Connect(t, s, "", secondHost)
		if in := f2.child(nsSASL2, "authentication").child(nsSASL2, "inline"); in == nil || in.child(nsFAST, "fast") != nil {
			t.Errorf("example.test (no tokens): %s", f2)
		}
	})

	t.Run("SCRAM with Bind 2 and a token request", func(t *testing.T) {
		r, _ := sasl2Connect(t, s, "", "localhost")
		el := r.sasl2SCRAM("alice", "wonderland", fastUserAgnt+bind2Carbons+"<request-token xmlns='"+nsFAST+"' mechanism='HT-SHA-256-NONE'/>")
		if !el.is(nsSASL2, "success") {
			t.Fatalf("SASL2 SCRAM: %s", el)
		}
		token = wantToken(t, el, lifetime)
		full := el.child(nsSASL2, "authorization-identifier").Text
		if !strings.HasPrefix(full, "alice@localhost/koi-e2e~") || el.child(nsBind2, "bound") == nil {
			t.Fatalf("not bound by Bind 2: %s", el)
		}
		// No stream restart: stanzas flow at once.
		r.wantRoundTrip("p1")
		r.send("<presence/>") // carbons go to available resources

		// Carbons are on for the Bind 2 session: a message bob sends to
		// alice's other resource is copied here.
		other := dialRaw(t, s.c2s, nil)
		other.login("localhost", s.tlsConfig(t, "localhost"), "alice", "wonderland", "desk")
		other.send("<presence/>")
		bob := dialRaw(t, s.c2s, nil)
		bob.login("localhost", s.tlsConfig(t, "localhost"), "bob", "builder", "b")
		bob.send("<message to='alice@localhost/desk' type='chat' id='m1'><body>hi desk</body></message>")
		for {
			el := r.mustNext()
			if rc := el.child(nsCarbons2, "received"); el.is(nsClient, "message") && rc != nil {
				if !strings.Contains(rc.String(), "hi desk") {
					t.Errorf("carbon %s", el)
				}
				break
			}
		}
	})
	if token == "" {
		t.Fatal("no token to go on with")
	}

	t.Run("FAST login in one round trip", func(t *testing.T) {
		r, _ := sasl2Connect(t, s, "", "localhost")
		el := r.sasl2FAST("HT-SHA-256-NONE", "alice", token, nil, "<bind xmlns='"+nsBind2+"'><tag>koi-e2e</tag></bind>")
		if !el.is(nsSASL2, "success") || el.child(nsBind2, "bound") == nil {
			t.Fatalf("FAST login: %s", el)
		}
		if el.child(nsFAST, "token") != nil {
			t.Errorf("a fresh token was not asked for and is not due: %s", el)
		}
		r.wantRoundTrip("p2")
		s.waitLog(t, "mechanism=HT-SHA-256-NONE") // the FAST login's, logged as it goes
	})

	t.Run("FAST without Bind 2 then legacy bind", func(t *testing.T) {
		r, _ := sasl2Connect(t, s, "", "localhost")
		el := r.sasl2FAST("HT-SHA-256-NONE", "alice", token, nil, "")
		if !el.is(nsSASL2, "success") || el.child(nsSASL2, "authorization-identifier").Text != "alice@localhost" {
			t.Fatalf("FAST login: %s", el)
		}
		if f := r.mustNext(); !f.is(nsStream, "features") || f.child(nsBind, "bind") == nil {
			t.Fatalf("want the post-login features without a restart, got %s", f)
		}
		r.send("<iq type='set' id='b1'><bind xmlns='" + nsBind + "'><resource>legacy</resource></bind></iq>")
		if el := r.mustNext(); el.attr("type") != "result" {
			t.Fatalf("bind: %s", el)
		}
	})

	t.Run("channel-bound token", func(t *testing.T) {
		r, _ := sasl2Connect(t, s, "", "localhost")
		el := r.sasl2SCRAM("bob", "builder", fastUserAgnt+"<request-token xmlns='"+nsFAST+"' mechanism='HT-SHA-256-EXPR'/>")
		bobToken := wantToken(t, el, lifetime)
		r2, _ := sasl2Connect(t, s, "", "localhost")
		cs := r2.nc.(*tls.Conn).ConnectionState()
		cb, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			t.Fatal(err)
		}
		if el := r2.sasl2FAST("HT-SHA-256-EXPR", "bob", bobToken, cb, ""); !el.is(nsSASL2, "success") {
			t.Fatalf("tls-exporter bound FAST login: %s", el)
		}
		// The same token bound to another connection's data fails.
		r3, _ := sasl2Connect(t, s, "", "localhost")
		if el := r3.sasl2FAST("HT-SHA-256-EXPR", "bob", bobToken, cb, ""); sasl2Condition(el) != "not-authorized" {
			t.Fatalf("a proof bound to another connection: %s", el)
		}
	})

	t.Run("wrong token refused", func(t *testing.T) {
		r, _ := sasl2Connect(t, s, "", "localhost")
		if el := r.sasl2FAST("HT-SHA-256-NONE", "alice", token+"x", nil, ""); sasl2Condition(el) != "not-authorized" {
			t.Fatalf("wrong token: %s", el)
		}
		// The stream stays usable: the right token gets in.
		if el := r.sasl2FAST("HT-SHA-256-NONE", "alice", token, nil, ""); !el.is(nsSASL2, "success") {
			t.Fatalf("right token after a wrong one: %s", el)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		r, _ := sasl2Connect(t, s, "", "localhost")
		el := r.sasl2FAST("HT-SHA-256-NONE", "alice", token, nil, "<request-token xmlns='"+nsFAST+"' mechanism='HT-SHA-256-NONE'/>")
		if !el.is(nsSASL2, "success") {
			t.Fatalf("FAST login with a token request: %s", el)
		}
		fresh := wantToken(t, el, lifetime)
		if fresh == token {
			t.Fatal("the new token is the old one")
		}
		// Until the new token is used the old one still works (the answer
		// carrying the new one may have been lost).
		r2, _ := sasl2Connect(t, s, "", "localhost")
		if el := r2.sasl2FAST("HT-SHA-256-NONE", "alice", token, nil, ""); !el.is(nsSASL2, "success") {
			t.Fatalf("old token before the new one was used: %s", el)
		}
		r3, _ := sasl2Connect(t, s, "", "localhost")
		if el := r3.sasl2FAST("HT-SHA-256-NONE", "alice", fresh, nil, ""); !el.is(nsSASL2, "success") {
			t.Fatalf("new token: %s", el)
		}
		r4, _ := sasl2Connect(t, s, "", "localhost")
		if el := r4.sasl2FAST("HT-SHA-256-NONE", "alice", token, nil, ""); sasl2Condition(el) != "not-authorized" {
			t.Fatalf("old token after the new one was used: %s", el)
		}
		token = fresh
	})

	t.Run("invalidate", func(t *testing.T) {
		r, _ := sasl2Connect(t, s, "", "localhost")
		if el := r.sasl2FAST("HT-SHA-256-NONE", "alice", token, nil, "<fast xmlns='"+nsFAST+"' invalidate='true'/>"); !el.is(nsSASL2, "success") {
			t.Fatalf("FAST login with invalidate: %s", el)
		}
		r2, _ := sasl2Connect(t, s, "", "localhost")
		if el := r2.sasl2FAST("HT-SHA-256-NONE", "alice", token, nil, ""); sasl2Condition(el) != "not-authorized" {
			t.Fatalf("invalidated token: %s", el)
		}
	})

	newToken := func(t *testing.T, user, password string) string {
		t.Helper()
		r, _ := sasl2Connect(t, s, "", "localhost")
		el := r.sasl2SCRAM(user, password, fastUserAgnt+"<request-token xmlns='"+nsFAST+"' mechanism='HT-SHA-256-NONE'/>")
		if !el.is(nsSASL2, "success") {
			t.Fatalf("SASL2 SCRAM: %s", el)
		}
		return wantToken(t, el, lifetime)
	}

	t.Run("revoked by koictl", func(t *testing.T) {
		tok := newToken(t, "alice", "wonderland")
		if out, err := s.koictl("user", "revoke-tokens", "alice@localhost"); err != nil {
			t.Fatalf("koictl user revoke-tokens: %v\n%s", err, out)
		}
		r, _ := sasl2Connect(t, s, "", "localhost")
		if el := r.sasl2FAST("HT-SHA-256-NONE", "alice", tok, nil, ""); sasl2Condition(el) != "not-authorized" {
			t.Fatalf("revoked token: %s", el)
		}
	})

	t.Run("revoked by a password change", func(t *testing.T) {
		tok := newToken(t, "alice", "wonderland")
		r := dialRaw(t, s.c2s, nil)
		r.login("localhost", s.tlsConfig(t, "localhost"), "alice", "wonderland", "pw")
		r.send("<iq type='set' id='pw1'><query xmlns='" + nsRegister + "'><username>alice</username><password>looking-glass</password></query></iq>")
		if el := r.mustNext(); el.attr("type") != "result" {
			t.Fatalf("password change: %s", el)
		}
		r2, _ := sasl2Connect(t, s, "", "localhost")
		if el := r2.sasl2FAST("HT-SHA-256-NONE", "alice", tok, nil, ""); sasl2Condition(el) != "not-authorized" {
			t.Fatalf("token after a password change: %s", el)
		}
	})

	t.Run("wrong tokens count for the throttle", func(t *testing.T) {
		tok := newToken(t, "carol", "singer")
		const from = "127.0.0.9"
		for i := range opt.AuthFailuresPerAccount {
			r, _ := sasl2Connect(t, s, from, "localhost")
			if el := r.sasl2FAST("HT-SHA-256-NONE", "carol", tok[:len(tok)-1], nil, ""); sasl2Condition(el) != "not-authorized" {
				t.Fatalf("wrong token %d: %s", i, el)
			}
		}
		r, _ := sasl2Connect(t, s, from, "localhost")
		if el := r.sasl2FAST("HT-SHA-256-NONE", "carol", tok, nil, ""); sasl2Condition(el) != "temporary-auth-failure" {
			t.Fatalf("right token after %d wrong ones from one address: %s", opt.AuthFailuresPerAccount, el)
		}
		// From elsewhere the owner still gets in.
		r2, _ := sasl2Connect(t, s, "", "localhost")
		if el := r2.sasl2FAST("HT-SHA-256-NONE", "carol", tok, nil, ""); !el.is(nsSASL2, "success") {
			t.Fatalf("right token from another address: %s", el)
		}
		s.waitLog(t, "reason=\"wrong credentials\" user=carol host=localhost mechanism=HT-SHA-256-NONE")
	})

	t.Run("bad requests", func(t *testing.T) {
		r, _ := sasl2Connect(t, s, "", "localhost")
		// FAST without a user-agent id: no token slot to look in.
		msg := append([]byte("alice\x00"), htProof("x", "Initiator", nil)...)
		r.send("<authenticate xmlns='" + nsSASL2 + "' mechanism='HT-SHA-256-NONE'><initial-response>" + b64(msg) + "</initial-response></authenticate>")
		if el := r.mustNext(); sasl2Condition(el) != "malformed-request" {
			t.Fatalf("FAST without user-agent: %s", el)
		}
		r.send("<authenticate xmlns='" + nsSASL2 + "' mechanism='X-NOPE'><initial-response>eA==</initial-response></authenticate>")
		if el := r.mustNext(); sasl2Condition(el) != "invalid-mechanism" {
			t.Fatalf("unknown mechanism: %s", el)
		}
		r.send("<authenticate xmlns='" + nsSASL2 + "' mechanism='HT-SHA-256-NONE'><initial-response>!!</initial-response>" + fastUserAgnt + "</authenticate>")
		if el := r.mustNext(); sasl2Condition(el) != "incorrect-encoding" {
			t.Fatalf("bad base64: %s", el)
		}
	})

	t.Run("legacy SASL still works", func(t *testing.T) {
		r := dialRaw(t, s.c2s, nil)
		r.login("localhost", s.tlsConfig(t, "localhost"), "bob", "builder", "legacy")
		r.wantRoundTrip("p3")
	})
}

func TestSASL2FASTExpiry(t *testing.T) {
	opt := defaultOptions()
	opt.TokenLifetime = "2s"
	s := startServer(t, opt)
	s.addUser(t, "alice@localhost", "wonderland")
	r, _ := sasl2Connect(t, s, "", "localhost")
	el := r.sasl2SCRAM("alice", "wonderland", fastUserAgnt+"<request-token xmlns='"+nsFAST+"' mechanism='HT-SHA-256-NONE'/>")
	if !el.is(nsSASL2, "success") {
		t.Fatalf("SASL2 SCRAM: %s", el)
	}
	tok := wantToken(t, el, 2*time.Second)
	exp, _ := time.Parse(time.RFC3339, el.child(nsFAST, "token").attr("expiry"))
	// Past the expiry (whole seconds) on the server's clock too.
	time.Sleep(time.Until(exp) + 1100*time.Millisecond)
	r2, _ := sasl2Connect(t, s, "", "localhost")
	if el := r2.sasl2FAST("HT-SHA-256-NONE", "alice", tok, nil, ""); sasl2Condition(el) != "not-authorized" {
		t.Fatalf("expired token: %s", el)
	}
}
