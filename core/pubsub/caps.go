package pubsub

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
)

// Entity capabilities (XEP-0115): a client's presence carries a hash of
// its disco#info (ver); the features behind a ver are asked once, checked
// against the hash and shared by every session that announces the same
// ver. PEP reads the "+notify" features (XEP-0163 §4.3) from here.

// NSCaps is entity capabilities.
const NSCaps = "http://jabber.org/protocol/caps"

// NSDiscoInfo is service discovery information (XEP-0030).
const NSDiscoInfo = "http://jabber.org/protocol/disco#info"

// capsLimits bound the cache: verified vers kept, and how long a disco
// query for a ver is waited for before it may be asked again.
const (
	maxVers       = 10000
	queryTimeout  = 30 * time.Second
	maxQueryNodes = 1024 // bytes of a caps node#ver
)

// features is the feature set of one disco#info answer.
type features map[string]bool

// Caps is the capabilities cache shared by all sessions. Safe for
// concurrent use.
type Caps struct {
	mu       sync.Mutex
	vers     map[string]features // verified: by hash algorithm + ver
	sessions map[jid.JID]*sessionCaps
	queries  map[string]*capsQuery // by IQ id
	asking   map[string]string     // ver key -> IQ id of the query in flight
	now      func() time.Time
}

// sessionCaps is what one session announced.
type sessionCaps struct {
	key  string   // hash algorithm and ver; "" for legacy caps
	feat features // nil until known
}

// capsQuery is a disco#info query waiting for its answer.
type capsQuery struct {
	key, algo, ver, node string
	to                   jid.JID
	at                   time.Time
}

// NewCaps returns an empty cache.
func NewCaps() *Caps {
	return &Caps{
		vers: map[string]features{}, sessions: map[jid.JID]*sessionCaps{},
		queries: map[string]*capsQuery{}, asking: map[string]string{}, now: time.Now,
	}
}

// capsHashes are the hash functions of XEP-0115 §5 by IANA name.
var capsHashes = map[string]func() hash.Hash{
	"sha-1": sha1.New, "sha-224": sha256.New224, "sha-256": sha256.New,
	"sha-384": sha512.New384, "sha-512": sha512.New,
}

// Query is a disco#info request the cache wants sent: to the session that
// announced an unknown ver, with id to match its answer.
type Query struct {
	ID   string
	To   jid.JID
	Node string // node#ver
}

// Presence records the caps of a session's available presence. It returns
// the session's features when they are known and new for the session
// (changed is then true), or the query to send when they are not.
// A presence without <c/> keeps what the session announced before
// (XEP-0115 §8.4: clients may leave it out of later presence).
func (c *Caps) Presence(full jid.JID, p *xmlstream.Element) (feat map[string]bool, changed bool, q *Query) {
	ce := p.Child(NSCaps, "c")
	if ce == nil {
		return nil, false, nil
	}
	algo, ver, node := ce.Attr("hash"), ce.Attr("ver"), ce.Attr("node")
	if ver == "" || node == "" || len(node)+len(ver) > maxQueryNodes {
		return nil, false, nil
	}
	key := ""
	if capsHashes[algo] != nil {
		key = algo + " " + ver
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[full]
	if s != nil && key != "" && s.key == key {
		return nil, false, nil
	}
	s = &sessionCaps{key: key}
	c.sessions[full] = s
	if f := c.vers[key]; key != "" && f != nil {
		s.feat = f
		return f, true, nil
	}
	if key != "" {
		if id, ok := c.asking[key]; ok && c.now().Sub(c.queries[id].at) < queryTimeout {
			return nil, false, nil // the answer serves this session too
		}
	}
	c.expire()
	id := "caps-" + newID()
	c.queries[id] = &capsQuery{key: key, algo: algo, ver: ver, node: node, to: full, at: c.now()}
	if key != "" {
		c.asking[key] = id
	}
	return nil, false, &Query{ID: id, To: full, Node: node + "#" + ver}
}

// expire drops queries never answered.
func (c *Caps) expire() {
	for id, q := range c.queries {
		if c.now().Sub(q.at) > queryTimeout {
			delete(c.queries, id)
			if c.asking[q.key] == id {
				delete(c.asking, q.key)
			}
		}
	}
}

// Answer takes an IQ answer addressed to the server. It reports whether
// the answer was to one of the cache's queries and, if so, the sessions
// whose features it made known, with those features.
func (c *Caps) Answer(el *xmlstream.Element) (handled bool, sessions []jid.JID, feat map[string]bool) {
	id := el.Attr("id")
	if !strings.HasPrefix(id, "caps-") {
		return false, nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queries[id]
	if q == nil {
		return false, nil, nil
	}
	from, err := jid.Parse(el.Attr("from"))
	if err != nil || from != q.to {
		return false, nil, nil
	}
	delete(c.queries, id)
	if c.asking[q.key] == id {
		delete(c.asking, q.key)
	}
	info := el.Child(NSDiscoInfo, "query")
	if el.Attr("type") != "result" || info == nil {
		return true, nil, nil
	}
	f := features{}
	for _, fe := range info.Elements() {
		if fe.Space == NSDiscoInfo && fe.Local == "feature" {
			f[fe.Attr("var")] = true
		}
	}
	verified := q.key != "" && verifyCaps(q.algo, q.ver, info)
	if verified {
		if len(c.vers) >= maxVers {
			for k := range c.vers { // drop an arbitrary one: a bounded cache, not an LRU
				delete(c.vers, k)
				break
			}
		}
		c.vers[q.key] = f
		for j, s := range c.sessions {
			if s.key == q.key && s.feat == nil {
				s.feat = f
				sessions = append(sessions, j)
			}
		}
		return true, sessions, f
	}
	// Legacy caps or a hash that does not match: the answer is the
	// session's own, never shared.
	if s := c.sessions[q.to]; s != nil && s.key == q.key {
		s.feat = f
		return true, []jid.JID{q.to}, f
	}
	return true, nil, nil
}

// Wants reports whether the session announced feature.
func (c *Caps) Wants(full jid.JID, feature string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[full]
	return s != nil && s.feat[feature]
}

// Forget drops a session that went unavailable.
func (c *Caps) Forget(full jid.JID) {
	c.mu.Lock()
	delete(c.sessions, full)
	c.mu.Unlock()
}

// verifyCaps computes the verification string of a disco#info answer
// (XEP-0115 §5.1) and checks it against ver. An answer with duplicate
// identities or features, or a malformed extension form, fails (§5.4).
func verifyCaps(algo, ver string, info *xmlstream.Element) bool {
	var ids, feats []string
	type field struct{ v, s string }
	type xform struct {
		typ    string
		fields []field
	}
	var forms []xform
	for _, el := range info.Elements() {
		switch {
		case el.Space == NSDiscoInfo && el.Local == "identity":
			ids = append(ids, el.Attr("category")+"/"+el.Attr("type")+"/"+el.AttrNS(xmlstream.NSXML, "lang")+"/"+el.Attr("name"))
		case el.Space == NSDiscoInfo && el.Local == "feature":
			feats = append(feats, el.Attr("var"))
		case el.Space == NSData && el.Local == "x":
			var f xform
			formType := 0
			for _, fe := range el.Elements() {
				if fe.Space != NSData || fe.Local != "field" {
					continue
				}
				var vals []string
				for _, v := range fe.Elements() {
					if v.Space == NSData && v.Local == "value" {
						vals = append(vals, v.Text())
					}
				}
				if fe.Attr("var") == "FORM_TYPE" {
					if fe.Attr("type") != "hidden" || len(vals) != 1 {
						return false
					}
					formType++
					f.typ = vals[0]
					continue
				}
				sort.Strings(vals)
				s := fe.Attr("var") + "<"
				for _, v := range vals {
					s += v + "<"
				}
				f.fields = append(f.fields, field{fe.Attr("var"), s})
			}
			if formType == 0 {
				continue // a form without FORM_TYPE is ignored (§5.4)
			}
			if formType > 1 {
				return false
			}
			forms = append(forms, f)
		}
	}
	sort.Strings(ids)
	sort.Strings(feats)
	if len(slices.Compact(slices.Clone(ids))) != len(ids) || len(slices.Compact(slices.Clone(feats))) != len(feats) {
		return false
	}
	sort.Slice(forms, func(i, j int) bool { return forms[i].typ < forms[j].typ })
	var b strings.Builder
	for _, s := range ids {
		b.WriteString(s + "<")
	}
	for _, s := range feats {
		b.WriteString(s + "<")
	}
	for i, f := range forms {
		if i > 0 && forms[i-1].typ == f.typ {
			return false
		}
		b.WriteString(f.typ + "<")
		sort.Slice(f.fields, func(i, j int) bool { return f.fields[i].v < f.fields[j].v })
		for _, fl := range f.fields {
			b.WriteString(fl.s)
		}
	}
	h := capsHashes[algo]()
	h.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)) == ver
}
