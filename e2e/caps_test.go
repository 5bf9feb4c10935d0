package e2e

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"sort"
	"strings"
	"time"
)

// Entity capabilities (XEP-0115) of the test clients: a client announces
// features in its presence and answers the server's disco#info query.

const (
	nsCaps         = "http://jabber.org/protocol/caps"
	capsIdentity   = "client/pc//koi e2e"
	capsClientNode = "https://koi.example/e2e"
)

// capsVer is the XEP-0115 §5 verification string of the test client's
// identity with features.
func capsVer(features []string) string {
	fs := append([]string(nil), features...)
	sort.Strings(fs)
	s := capsIdentity + "<"
	for _, f := range fs {
		s += f + "<"
	}
	h := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(h[:])
}

// announceCaps makes c answer disco#info with features and sends its
// available presence with their caps, then waits until the server knows
// them: a feature naming the client makes its ver its own, so the server
// asks this client, and a ping after the answer is a round trip behind it.
func (c *client) announceCaps(features ...string) {
	c.t.Helper()
	c.mu.Lock()
	c.features = append([]string{nsDiscoInfo, nsCaps, "urn:koi:e2e:client:" + c.jid}, features...)
	fs := c.features
	c.discoAnswered = make(chan struct{}, 1)
	answered := c.discoAnswered
	c.mu.Unlock()
	c.send("<presence><c xmlns='" + nsCaps + "' hash='sha-1' node='" + capsClientNode + "' ver='" + capsVer(fs) + "'/></presence>")
	select {
	case <-answered:
	case <-time.After(waitTimeout):
		c.t.Fatalf("%s: the server did not ask for the capabilities it was told of", c.jid)
	}
	c.iq("<iq type='get' to='" + domainOf(c.jid) + "'><ping xmlns='urn:xmpp:ping'/></iq>")
}

func domainOf(j string) string {
	if i := strings.IndexByte(j, '@'); i >= 0 {
		j = j[i+1:]
	}
	if i := strings.IndexByte(j, '/'); i >= 0 {
		j = j[:i]
	}
	return j
}

// answerDisco writes the disco#info result for a caps query.
func answerDisco(w interface{ EncodeToken(xml.Token) error }, id, to, node string, features []string) error {
	attr := func(k, v string) xml.Attr { return xml.Attr{Name: xml.Name{Local: k}, Value: v} }
	iq := xml.StartElement{Name: xml.Name{Local: "iq"}, Attr: []xml.Attr{attr("type", "result"), attr("id", id), attr("to", to)}}
	q := xml.StartElement{Name: xml.Name{Space: nsDiscoInfo, Local: "query"}, Attr: []xml.Attr{attr("node", node)}}
	toks := []xml.Token{iq, q}
	ident := xml.StartElement{Name: xml.Name{Local: "identity"}, Attr: []xml.Attr{attr("category", "client"), attr("type", "pc"), attr("name", "koi e2e")}}
	toks = append(toks, ident, ident.End())
	for _, f := range features {
		fe := xml.StartElement{Name: xml.Name{Local: "feature"}, Attr: []xml.Attr{attr("var", f)}}
		toks = append(toks, fe, fe.End())
	}
	toks = append(toks, q.End(), iq.End())
	for _, t := range toks {
		if err := w.EncodeToken(t); err != nil {
			return err
		}
	}
	return nil
}
