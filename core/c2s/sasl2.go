package c2s

// SASL2 (XEP-0388) with Bind 2 (XEP-0386) and FAST tokens (XEP-0484): a
// client authenticates, binds a resource, turns on carbons and CSI and gets
// or uses a token in one exchange, without a stream restart. A returning
// client with a token is online in one round trip and no PBKDF2.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/koi-im/koi/core/fast"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/sasl"
	"github.com/koi-im/koi/core/xmlstream"
)

// Namespaces of SASL2 and what rides inline in it.
const (
	nsSASL2   = "urn:xmpp:sasl:2"
	nsBind2   = "urn:xmpp:bind:0"
	nsCarbons = "urn:xmpp:carbons:2"
	nsSM      = "urn:xmpp:sm:3"
)

const (
	maxAgentID = 255 // a user-agent id names a token slot in the backend
	maxTag     = 32  // Bind 2 resource prefix
)

// exchange is one SASL exchange: core/sasl's SCRAM or PLAIN, or a FAST
// token login.
type exchange interface {
	Step(ctx context.Context, in []byte) (out []byte, done bool, err error)
	Mechanism() string
	Username() string
	Authcid() string
	Authzid() string
	ChannelBinding() string
}

// Carbons turns message carbons (XEP-0280) on for a session, for Bind 2's
// inline <enable/>. core/modules implements it.
type Carbons interface {
	EnableCarbons(s *router.Session)
}

// fastHost is a host that issues FAST tokens; a Host without the method,
// or returning nil, has FAST off.
type fastHost interface {
	FAST() *fast.Manager
}

func (c *conn) fast() *fast.Manager {
	if h, ok := c.host.(fastHost); ok {
		return h.FAST()
	}
	return nil
}

// fastMechanisms lists the HT mechanisms this connection offers.
func (c *conn) fastMechanisms(o sasl.Options) []string {
	if c.fast() == nil || !c.encrypted {
		// A token is a bearer secret: never over a plain stream.
		return nil
	}
	var types []string
	if o.ChannelBinding != nil {
		types = o.CBTypes
	}
	return fast.Mechanisms(types)
}

// sasl2Feature is the <authentication/> stream feature with what can be
// done inline.
func (c *conn) sasl2Feature(o sasl.Options, mechs []string) *xmlstream.Element {
	a := xmlstream.NewElement(nsSASL2, "authentication")
	for _, m := range mechs {
		a.AppendChild(xmlstream.NewElement(nsSASL2, "mechanism").AppendText(m))
	}
	inline := xmlstream.NewElement(nsSASL2, "inline")
	b2 := xmlstream.NewElement(nsBind2, "inline")
	if c.srv.cfg.Carbons != nil {
		b2.AppendChild(xmlstream.NewElement(nsBind2, "feature").SetAttr("var", nsCarbons))
	}
	b2.AppendChild(xmlstream.NewElement(nsBind2, "feature").SetAttr("var", nsCSI))
	if c.srv.cfg.SM.Enabled {
		b2.AppendChild(xmlstream.NewElement(nsBind2, "feature").SetAttr("var", nsSM))
		inline.AppendChild(xmlstream.NewElement(nsSM, "sm"))
	}
	inline.AppendChild(xmlstream.NewElement(nsBind2, "bind").AppendChild(b2))
	if fm := c.fastMechanisms(o); len(fm) > 0 {
		f := xmlstream.NewElement(fast.NS, "fast")
		for _, m := range fm {
			f.AppendChild(xmlstream.NewElement(fast.NS, "mechanism").AppendText(m))
		}
		inline.AppendChild(f)
	}
	return a.AppendChild(inline)
}

func (c *conn) sasl2Failure(f *sasl.Failure) error {
	el := xmlstream.NewElement(nsSASL2, "failure").AppendChild(xmlstream.NewElement(nsSASL, f.Condition))
	if f.Text != "" {
		el.AppendChild(xmlstream.NewElement(nsSASL2, "text").AppendText(f.Text))
	}
	return c.writeRaw(el.AppendXML(nil, xmlstream.NSClient))
}

// sasl2Request is what the client asked for in <authenticate/>.
type sasl2Request struct {
	mech         string
	initial      *xmlstream.Element // <initial-response/>, nil if absent
	agent        string             // <user-agent id=…/>
	bind         *xmlstream.Element // Bind 2 <bind/>
	tokenMech    string             // FAST <request-token mechanism=…/>
	invalidate   bool               // FAST <fast invalidate='true'/>
	resume       *xmlstream.Element // XEP-0198 <resume/>
	agentInvalid bool
}

func parseSASL2(el *xmlstream.Element) sasl2Request {
	r := sasl2Request{mech: el.Attr("mechanism"), initial: el.Child(nsSASL2, "initial-response")}
	if ua := el.Child(nsSASL2, "user-agent"); ua != nil {
		r.agent = ua.Attr("id")
		r.agentInvalid = r.agent == "" || len(r.agent) > maxAgentID || !utf8.ValidString(r.agent)
	}
	r.bind = el.Child(nsBind2, "bind")
	if rt := el.Child(fast.NS, "request-token"); rt != nil {
		r.tokenMech = rt.Attr("mechanism")
	}
	if f := el.Child(fast.NS, "fast"); f != nil {
		r.invalidate = f.Attr("invalidate") == "true" || f.Attr("invalidate") == "1"
	}
	r.resume = el.Child(nsSM, "resume")
	return r
}

// authenticate2 runs one SASL2 exchange. ok is false after a failure that
// leaves the stream usable for another attempt; bound is true when Bind 2
// (or a resumption) left a session, so negotiation is over.
func (c *conn) authenticate2(el *xmlstream.Element) (ok, bound bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if d, ok := c.srv.cfg.Guard.CheckAddress(c.remoteIP); !ok {
		c.log().Info("login refused", "reason", "throttled: too many wrong credentials from this address", "retry_after", retryText(d))
		c.srv.cfg.Observer.Login(LoginRefused)
		return false, false, c.sasl2Failure(&sasl.Failure{Condition: "temporary-auth-failure", Text: "too many failed logins from your address; try again in " + retryText(d)})
	}
	req := parseSASL2(el)
	if req.agentInvalid {
		return false, false, c.sasl2Failure(&sasl.Failure{Condition: sasl.CondMalformedRequest, Text: "the user-agent id must be 1 to 255 bytes of UTF-8"})
	}
	o := c.saslOptions()
	var n exchange
	var ht *fast.Exchange
	if _, isHT := fast.ChannelBindingType(req.mech); isHT {
		if !contains(c.fastMechanisms(o), req.mech) {
			return false, false, c.sasl2Failure(&sasl.Failure{Condition: sasl.CondInvalidMechanism, Text: req.mech + " is not offered here"})
		}
		var binding func(string) ([]byte, error)
		if o.ChannelBinding != nil {
			binding = o.ChannelBinding
		}
		if ht, err = c.fast().NewExchange(req.mech, c.host.Name(), req.agent, binding); err != nil {
			return false, false, c.sasl2Failure(asFailure(err, sasl.CondInvalidMechanism))
		}
		n = ht
	} else {
		sn, err := sasl.New(req.mech, c.host.SASLStore(), o)
		if err != nil {
			return false, false, c.sasl2Failure(asFailure(err, sasl.CondInvalidMechanism))
		}
		n = sn
	}
	var in []byte
	if req.initial != nil {
		var ok bool
		if in, ok = decodeSASL(req.initial.Text()); !ok {
			return false, false, c.sasl2Failure(&sasl.Failure{Condition: sasl.CondIncorrectEncoding})
		}
	}
	for {
		out, done, err := n.Step(ctx, in)
		if err != nil {
			f := asFailure(err, sasl.CondTemporaryAuthFailure)
			c.saslFailed(f)
			c.authFailed(ctx, n, f)
			return false, false, c.sasl2Failure(f)
		}
		if done {
			c.slowdown(ctx, n.Username())
			return c.sasl2Succeeded(ctx, n, ht, req, out)
		}
		ch := xmlstream.NewElement(nsSASL2, "challenge").AppendText(base64.StdEncoding.EncodeToString(out))
		if err := c.writeRaw(ch.AppendXML(nil, xmlstream.NSClient)); err != nil {
			return false, false, err
		}
		resp, err := c.r.Next()
		if err != nil {
			return false, false, err
		}
		switch {
		case resp.Space == nsSASL2 && resp.Local == "response":
		case resp.Space == nsSASL2 && resp.Local == "abort":
			return false, false, c.sasl2Failure(&sasl.Failure{Condition: sasl.CondAborted})
		default:
			return false, false, &xmlstream.Error{Condition: "policy-violation", Text: "expected a SASL2 response"}
		}
		var ok bool
		if in, ok = decodeSASL(resp.Text()); !ok {
			return false, false, c.sasl2Failure(&sasl.Failure{Condition: sasl.CondIncorrectEncoding})
		}
	}
}

func asFailure(err error, cond string) *sasl.Failure {
	var f *sasl.Failure
	if !errors.As(err, &f) {
		f = &sasl.Failure{Condition: cond, Err: err}
	}
	return f
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// sasl2Succeeded finishes a successful exchange: tokens, resumption or
// Bind 2, then <success/> with everything the client needs to go on.
func (c *conn) sasl2Succeeded(ctx context.Context, n exchange, ht *fast.Exchange, req sasl2Request, additional []byte) (bool, bool, error) {
	user, f := c.admit(n)
	if f != nil {
		return false, false, c.sasl2Failure(f)
	}
	bare := jid.MustParse(user + "@" + c.host.Name())
	var extra []*xmlstream.Element
	if tok := c.fastToken(ctx, ht, req, bare.String()); tok != nil {
		extra = append(extra, tok)
	}
	c.loggedIn(n, user)
	success := func(authz string, more ...*xmlstream.Element) *xmlstream.Element {
		el := xmlstream.NewElement(nsSASL2, "success")
		if len(additional) > 0 {
			el.AppendChild(xmlstream.NewElement(nsSASL2, "additional-data").AppendText(base64.StdEncoding.EncodeToString(additional)))
		}
		el.AppendChild(xmlstream.NewElement(nsSASL2, "authorization-identifier").AppendText(authz))
		for _, x := range append(extra, more...) {
			el.AppendChild(x)
		}
		return el
	}

	if req.resume != nil && c.srv.cfg.SM.Enabled {
		// XEP-0198 inline (XEP-0388): <resumed/> goes in <success/>, and
		// the replay of what the client did not acknowledge follows it.
		c.holdQueue()
		reply, ss := c.smResume(req.resume)
		if ss != nil {
			c.attachSM(ss)
			c.releaseQueue(success(ss.s.JID().String(), reply).AppendXML(nil, xmlstream.NSClient))
			return true, true, nil
		}
		c.releaseQueue(nil)
		// A failed resumption goes on to Bind 2 (or legacy binding) with
		// a new session; <failed/> tells the client why.
		extra = append(extra, reply)
	}
	if req.bind == nil {
		// No restart and no Bind 2: the post-login features, so that
		// the client can bind the RFC 6120 way.
		out := success(bare.String()).AppendXML(nil, xmlstream.NSClient)
		return true, false, c.writeRaw(c.features().AppendXML(out, xmlstream.NSClient))
	}
	return true, true, c.bind2(ctx, req, success)
}

// fastToken handles FAST after a login: invalidation of the token used,
// and a new token when the client asked for one or the one it used is
// past half its life. It returns the <token/> for <success/>, nil for
// none. Failures here cost the client its new token, not its login.
func (c *conn) fastToken(ctx context.Context, ht *fast.Exchange, req sasl2Request, owner string) *xmlstream.Element {
	m := c.fast()
	if m == nil {
		return nil
	}
	mech := req.tokenMech
	if ht != nil {
		v := ht.Verified()
		if req.invalidate {
			if err := m.Invalidate(ctx, v.Token); err != nil {
				c.log().Warn("FAST token not invalidated", "error", err)
			}
			return nil
		}
		if mech == "" && v.RotateDue(time.Now(), m.Lifetime()) {
			mech = ht.Mechanism()
		}
	}
	if mech == "" || req.agent == "" {
		return nil
	}
	if !contains(c.fastMechanisms(c.saslOptions()), mech) {
		c.log().Debug("FAST token request for a mechanism not offered", "mechanism", mech)
		return nil
	}
	token, expires, err := m.Issue(ctx, owner, req.agent, mech)
	if err != nil {
		c.log().Warn("FAST token not issued", "error", err)
		return nil
	}
	return xmlstream.NewElement(fast.NS, "token").
		SetAttr("expiry", expires.Format(time.RFC3339)).SetAttr("token", token)
}

// bind2 binds the resource Bind 2 asked for and runs the inline features.
func (c *conn) bind2(ctx context.Context, req sasl2Request, success func(string, ...*xmlstream.Element) *xmlstream.Element) error {
	full, err := jid.New(c.user, c.host.Name(), bind2Resource(req.bind, c.user, req.agent))
	if err != nil {
		// A tag that makes no valid resource is dropped, not fatal.
		full, _ = jid.New(c.user, c.host.Name(), bind2Resource(nil, c.user, req.agent))
	}
	bound := xmlstream.NewElement(nsBind2, "bound")
	var smEnable *xmlstream.Element
	for _, f := range req.bind.Elements() {
		switch {
		case f.Space == nsSM && f.Local == "enable" && c.srv.cfg.SM.Enabled:
			smEnable = f
		case f.Space == nsCSI && f.Local == "inactive":
			c.clientState(f)
		}
	}
	// The success goes first on the wire, yet SM's <enabled/> in it needs
	// the session: what is routed to the session meanwhile waits.
	c.holdQueue()
	s, replaced := c.srv.cfg.Router.Bind(full, c)
	c.session = s
	var ss *smSession
	if smEnable != nil {
		var reply *xmlstream.Element
		reply, ss = c.enableSM(smEnable)
		bound.AppendChild(reply)
	}
	if carbons := req.bind.Child(nsCarbons, "enable"); carbons != nil && c.srv.cfg.Carbons != nil {
		c.srv.cfg.Carbons.EnableCarbons(s)
	}
	first := success(full.String(), bound).AppendXML(nil, xmlstream.NSClient)
	if ss != nil {
		c.startSMHeld(ss, first)
	} else {
		c.releaseQueue(first)
	}
	c.bound.Store(true)
	if replaced != nil {
		replaced.Close("conflict", "replaced by a new connection for the same resource")
	}
	c.log().Debug("resource bound", "bind2", true)
	return nil
}

// bind2Resource makes the resource: the client's tag, then a part that
// is the same for the same user and user-agent id (a client back from
// sleep replaces its stale session rather than adding one) and random
// without an id.
func bind2Resource(bind *xmlstream.Element, user, agent string) string {
	tag := ""
	if bind != nil {
		if t := bind.Child(nsBind2, "tag"); t != nil {
			tag = strings.TrimSpace(t.Text())
		}
	}
	for len(tag) > maxTag {
		_, size := utf8.DecodeLastRuneInString(tag)
		tag = tag[:len(tag)-size]
	}
	suffix := newID()[:12]
	if agent != "" {
		h := sha256.Sum256([]byte(user + "\x00" + agent))
		suffix = base64.RawURLEncoding.EncodeToString(h[:9])
	}
	if tag == "" {
		return suffix
	}
	return tag + "~" + suffix
}
