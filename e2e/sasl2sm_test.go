package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
)

// dropRaw kills a raw client's TCP connection with a reset, as a phone
// losing its network looks to the server.
func dropRaw(r *rawClient) {
	nc := r.nc
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	nc.Close()
}

// TestSASL2InlineStreamManagement: a phone logs in with SASL2, binds with
// Bind 2 and enables resumable stream management inline; its connection
// drops; it comes back with a FAST token and resumes inline, in one round
// trip: the session, its full JID and the messages it had not handled
// are all there, each exactly once (XEP-0198 with XEP-0388/0386/0484).
func TestSASL2InlineStreamManagement(t *testing.T) {
	s := startServer(t, defaultOptions())
	s.addUser(t, "pia@localhost", "pw-pia")
	s.addUser(t, "ole@localhost", "pw-ole")
	ole := dialRaw(t, s.c2s, nil)
	ole.login("localhost", s.tlsConfig(t, "localhost"), "ole", "pw-ole", "o")

	r, _ := sasl2Connect(t, s, "", "localhost")
	el := r.sasl2SCRAM("pia", "pw-pia", fastUserAgnt+
		"<bind xmlns='"+nsBind2+"'><tag>phone</tag><enable xmlns='"+nsSM+"' resume='true'/></bind>"+
		"<request-token xmlns='"+nsFAST+"' mechanism='HT-SHA-256-NONE'/>")
	if !el.is(nsSASL2, "success") {
		t.Fatalf("SASL2: %s", el)
	}
	token := el.child(nsFAST, "token").attr("token")
	full := el.child(nsSASL2, "authorization-identifier").Text
	enabled := el.child(nsBind2, "bound").child(nsSM, "enabled")
	if enabled == nil || enabled.attr("resume") != "true" || enabled.attr("id") == "" {
		t.Fatalf("no resumable <enabled/> in <bound/>: %s", el)
	}
	previd := enabled.attr("id")

	// Five messages arrive; the phone handles them, acknowledges two,
	// then loses its network.
	for i := 1; i <= 5; i++ {
		ole.send(fmt.Sprintf("<message to='%s' type='chat' id='m%d'><body>msg %d</body></message>", full, i, i))
	}
	got := 0
	for got < 5 {
		m := r.mustNext()
		if m.is(nsClient, "message") {
			got++
			if b := m.child(nsClient, "body").Text; b != fmt.Sprintf("msg %d", got) {
				t.Fatalf("message %d: %s", got, m)
			}
		}
	}
	r.send("<a xmlns='" + nsSM + "' h='2'/>")
	r.wantRoundTrip("before-drop") // the ping counts as one handled stanza
	dropRaw(r)
	waitLog(t, s, "connection lost, session kept for resumption")
	for i := 6; i <= 7; i++ {
		ole.send(fmt.Sprintf("<message to='%s' type='chat' id='m%d'><body>msg %d</body></message>", full, i, i))
	}
	ole.wantRoundTrip("sent") // both are routed before the resumption

	// Back online: FAST and the resumption in one <authenticate/>. The
	// phone handled five messages and the ping's result: h=6.
	r2, _ := sasl2Connect(t, s, "127.0.0.2", "localhost")
	el = r2.sasl2FAST("HT-SHA-256-NONE", "pia", token, nil,
		"<resume xmlns='"+nsSM+"' previd='"+previd+"' h='6'/>")
	if !el.is(nsSASL2, "success") {
		t.Fatalf("FAST with inline resume: %s", el)
	}
	res := el.child(nsSM, "resumed")
	if res == nil || res.attr("previd") != previd || res.attr("h") != "1" {
		t.Fatalf("want <resumed previd h='1'/> in <success/> (the server handled one ping): %s", el)
	}
	if id := el.child(nsSASL2, "authorization-identifier").Text; id != full {
		t.Errorf("resumed as %s, want the old session %s", id, full)
	}
	// Exactly the two messages it had not handled are replayed, in order.
	var replay []string
	for len(replay) < 2 {
		m := r2.mustNext()
		if m.is(nsClient, "message") {
			replay = append(replay, m.child(nsClient, "body").Text)
		}
	}
	if strings.Join(replay, ",") != "msg 6,msg 7" {
		t.Errorf("replayed %q, want msg 6 and msg 7 only", replay)
	}
	r2.wantRoundTrip("after-resume")
	// No stanza is counted twice: the server's h after the resumption
	// continues from 1 (the ping before) plus the ping just now.
	r2.send("<r xmlns='" + nsSM + "'/>")
	for {
		a := r2.mustNext()
		if a.is(nsSM, "a") {
			if a.attr("h") != "2" {
				t.Errorf("server h %s, want 2", a.attr("h"))
			}
			break
		}
	}
	if strings.Count(s.log.String(), "stream resumed") != 1 {
		t.Error("koi did not log one resumption")
	}

	// A resumption that fails inline goes on with Bind 2: a new session,
	// <failed/> in <success/> says why.
	r3, _ := sasl2Connect(t, s, "", "localhost")
	el = r3.sasl2FAST("HT-SHA-256-NONE", "pia", token, nil,
		"<resume xmlns='"+nsSM+"' previd='no-such-session' h='0'/><bind xmlns='"+nsBind2+"'><tag>tablet</tag></bind>")
	if !el.is(nsSASL2, "success") || el.child(nsSM, "failed") == nil || el.child(nsSM, "failed").child(nsStanzas, "item-not-found") == nil {
		t.Fatalf("failed inline resume: %s", el)
	}
	if b := el.child(nsBind2, "bound"); b == nil || !strings.Contains(el.child(nsSASL2, "authorization-identifier").Text, "/tablet") {
		t.Fatalf("no new Bind 2 session after the failed resumption: %s", el)
	}
	r3.wantRoundTrip("tablet")
}
