package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/koi-im/koi/tools/koi-bench/internal/scan"
)

// FAST login (XEP-0484 over SASL2, XEP-0388, with Bind 2, XEP-0386): the
// Dialer gets a token per user with one SCRAM-SHA-256 login, as a client
// does after its user typed the password once, and from then on every
// login is one message and one answer: token proof, resource bound.

// MechFAST is the HT mechanism of the FAST mode.
const MechFAST = "HT-SHA-256-NONE"

const (
	nsSASL2 = "urn:xmpp:sasl:2"
	nsBind2 = "urn:xmpp:bind:0"
	nsFAST  = "urn:xmpp:fast:0"
)

func (d *Dialer) token(user string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tokens[user]
}

func (d *Dialer) setToken(user, tok string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tokens[user] = tok
}

// fastLogin logs in and binds with SASL2: with the user's token, or, the
// first time, with SCRAM-SHA-256 asking for one.
func (c *Conn) fastLogin(user, password, tag string) error {
	offered := false
	if a, ok := scan.Child(c.feat, "authentication"); ok {
		if in, ok := scan.Child(a, "inline"); ok {
			if f, ok := scan.Child(in, "fast"); ok {
				scan.Children(f, "mechanism", func(m []byte) bool {
					offered = offered || scan.Text(m) == MechFAST
					return !offered
				})
			}
		}
	}
	if !offered {
		return fmt.Errorf("the server does not offer FAST %s", MechFAST)
	}
	agent := "<user-agent xmlns='" + nsSASL2 + "' id='koi-bench-" + string(scan.Escape(nil, user)) + "'/>"
	bind := "<bind xmlns='" + nsBind2 + "'><tag>" + string(scan.Escape(nil, tag)) + "</tag></bind>"
	tok := c.d.token(user)
	if tok == "" {
		c.mech = MechSCRAMSHA256
		conv, err := c.d.scramConversation(MechSCRAMSHA256, user, password)
		if err != nil {
			return err
		}
		first, err := conv.Step("")
		if err != nil {
			return fmt.Errorf("SCRAM: %w", err)
		}
		if err := c.write("<authenticate xmlns='" + nsSASL2 + "' mechanism='" + MechSCRAMSHA256 + "'><initial-response>" +
			base64.StdEncoding.EncodeToString([]byte(first)) + "</initial-response>" + agent + bind +
			"<request-token xmlns='" + nsFAST + "' mechanism='" + MechFAST + "'/></authenticate>"); err != nil {
			return err
		}
		for {
			el, err := c.next()
			if err != nil {
				return err
			}
			switch string(scan.Name(el)) {
			case "challenge":
				data, err := base64.StdEncoding.DecodeString(scan.Text(el))
				if err != nil {
					return fmt.Errorf("SASL2: bad base64: %w", err)
				}
				if c.iters == 0 {
					c.iters = scramIterations(data)
				}
				resp, err := conv.Step(string(data))
				if err != nil {
					return fmt.Errorf("SASL2: %w", err)
				}
				if err := c.write("<response xmlns='" + nsSASL2 + "'>" + base64.StdEncoding.EncodeToString([]byte(resp)) + "</response>"); err != nil {
					return err
				}
			case "success":
				return c.fastSuccess(user, el)
			default:
				return fmt.Errorf("SASL2 SCRAM failed: %s", describe(el))
			}
		}
	}
	c.mech = MechFAST
	mac := hmac.New(sha256.New, []byte(tok))
	mac.Write([]byte("Initiator"))
	msg := append([]byte(user+"\x00"), mac.Sum(nil)...)
	if err := c.write("<authenticate xmlns='" + nsSASL2 + "' mechanism='" + MechFAST + "'><initial-response>" +
		base64.StdEncoding.EncodeToString(msg) + "</initial-response>" + agent + bind + "</authenticate>"); err != nil {
		return err
	}
	el, err := c.next()
	if err != nil {
		return err
	}
	if !scan.IsNamed(el, "success") {
		return fmt.Errorf("FAST login failed: %s", describe(el))
	}
	add, _ := scan.Child(el, "additional-data")
	got, err := base64.StdEncoding.DecodeString(scan.Text(add))
	mac = hmac.New(sha256.New, []byte(tok))
	mac.Write([]byte("Responder"))
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("FAST: the server's proof is wrong")
	}
	return c.fastSuccess(user, el)
}

// fastSuccess takes the bound JID and any new token from <success/>.
func (c *Conn) fastSuccess(user string, el []byte) error {
	if _, ok := scan.Child(el, "bound"); !ok {
		return fmt.Errorf("SASL2 success without Bind 2: %s", short(el))
	}
	if id, ok := scan.Child(el, "authorization-identifier"); ok {
		c.jid = scan.Text(id)
	}
	if t, ok := scan.Child(el, "token"); ok {
		if v, ok := scan.Attr(t, "token"); ok {
			c.d.setToken(user, scan.Unescape(v))
		}
	}
	if c.d.token(user) == "" {
		return errors.New("FAST: the server issued no token")
	}
	return nil
}
