package pubsub

import (
	"context"
	"hash/maphash"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// ComponentServer is what the pubsub service needs of the module server
// (modules.Server implements it).
type ComponentServer interface {
	Host(name string) *modules.Host
	AddComponent(domain string, c modules.Component) error
	Route(ctx context.Context, el *xmlstream.Element)
}

// serviceFeatures are the pubsub features of the service (XEP-0060 §10):
// no presence or roster access models, which need an owner's roster.
var serviceFeatures = []string{
	"access-open", "access-whitelist", "auto-create", "config-node", "config-node-max", "create-and-configure",
	"create-nodes", "delete-items", "delete-nodes", "instant-nodes", "item-ids", "last-published",
	"manage-affiliations", "manage-subscriptions", "member-affiliation", "meta-data",
	"modify-affiliations", "multi-items", "outcast-affiliation", "persistent-items", "publish",
	"publish-options", "publisher-affiliation", "purge-nodes", "retract-items",
	"retrieve-affiliations", "retrieve-default", "retrieve-items", "retrieve-subscriptions",
	"rsm", "subscribe",
}

// Service is the publish-subscribe service of one host on its own domain
// (pubsub.<host>): any user of the host may create nodes, which are open
// or whitelisted. It implements modules.Component.
type Service struct {
	domain jid.JID
	host   string
	srv    ComponentServer
	e      *engine
}

// RegisterService serves pubsub.<host> for host, with the nodes in the
// host's pubsub store.
func RegisterService(log hclog.Logger, lim Limits, srv ComponentServer, host string) (*Service, error) {
	d, err := jid.New("", "pubsub."+host, "")
	if err != nil {
		return nil, err
	}
	s := &Service{domain: d, host: host, srv: srv}
	s.e = &engine{
		log: log, lim: lim, now: time.Now, seed: maphash.MakeSeed(),
		store: s.store,
		// Users of the host create nodes; components and other domains
		// do not.
		mayCreate: func(_, who jid.JID) bool { return who.Local() != "" && who.Domain() == host },
		send:      srv.Route,
	}
	if err := srv.AddComponent(d.String(), s); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) store(service jid.JID) Store {
	h := s.srv.Host(s.host)
	if h == nil || !h.PubSub.On || service != s.domain {
		return nil
	}
	return h.PubSub.Backend
}

// Deliver implements modules.Component: requests are answered, answers
// and presence are dropped, messages bounce.
func (s *Service) Deliver(ctx context.Context, el *xmlstream.Element) {
	typ := el.Attr("type")
	from, err := jid.Parse(el.Attr("from"))
	if err != nil {
		return
	}
	switch {
	case el.Local == "iq" && (typ == "get" || typ == "set"):
	case el.Local == "message" && typ != "error":
		s.srv.Route(ctx, stanza.ErrorReply(el, stanza.ErrServiceUnavailable))
		return
	default:
		return
	}
	to, err := jid.Parse(el.Attr("to"))
	payload := el.FirstChild()
	var res *xmlstream.Element
	var serr *stanza.Error
	switch {
	case err != nil || to != s.domain:
		serr = stanza.ErrItemNotFound.WithText("nodes are addressed by the node attribute, not by JID")
	case payload == nil:
		serr = stanza.ErrBadRequest
	case payload.Space == NS || payload.Space == NSOwner:
		res, serr = s.e.handle(ctx, from, s.domain, el, payload)
	case payload.Space == NSDiscoInfo && typ == "get":
		res, serr = s.info(ctx, from, payload.Attr("node"))
	case payload.Space == NSDiscoItems && typ == "get":
		res, serr = s.items(ctx, from, payload.Attr("node"))
	default:
		serr = stanza.ErrServiceUnavailable
	}
	if serr != nil {
		s.srv.Route(ctx, stanza.ErrorReply(el, serr))
		return
	}
	s.srv.Route(ctx, stanza.Result(el, res))
}

func (s *Service) call(ctx context.Context, from jid.JID) *call {
	st := s.store(s.domain)
	if st == nil {
		return nil
	}
	return &call{ctx: ctx, from: from, service: s.domain, st: st}
}

// info is disco#info of the service or of one of its nodes.
func (s *Service) info(ctx context.Context, from jid.JID, node string) (*xmlstream.Element, *stanza.Error) {
	c := s.call(ctx, from)
	if c == nil {
		return nil, stanza.ErrServiceUnavailable
	}
	q := xmlstream.NewElement(NSDiscoInfo, "query")
	if node == "" {
		q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "identity").SetAttr("category", "pubsub").SetAttr("type", "service").SetAttr("name", "Publish-Subscribe"))
		for _, f := range []string{NSDiscoInfo, NSDiscoItems, NS} {
			q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "feature").SetAttr("var", f))
		}
		for _, f := range serviceFeatures {
			q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "feature").SetAttr("var", NS+"#"+f))
		}
		return q, nil
	}
	return s.e.nodeInfo(c, node)
}

// items lists the nodes the asker may see, or a node's item ids.
func (s *Service) items(ctx context.Context, from jid.JID, node string) (*xmlstream.Element, *stanza.Error) {
	c := s.call(ctx, from)
	if c == nil {
		return nil, stanza.ErrServiceUnavailable
	}
	return s.e.discoItems(c, node)
}
