package pubsub

import (
	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Service discovery of nodes, the same on PEP and on the service: a node
// the asker may not see does not exist for it.

// visible loads a node that the requester may see; item-not-found
// otherwise, so that its existence is not revealed.
func (e *engine) visible(c *call, node string) (nodeConfig, *stanza.Error) {
	_, cfg, serr := e.node(c, node)
	if serr != nil {
		return nil, serr
	}
	if e.mayRetrieve(c, node, cfg, c.from) != nil {
		return nil, stanza.ErrItemNotFound
	}
	return cfg, nil
}

// nodeInfo is disco#info on a node: a leaf with its meta-data (XEP-0060
// §5.3, §5.4).
func (e *engine) nodeInfo(c *call, node string) (*xmlstream.Element, *stanza.Error) {
	cfg, serr := e.visible(c, node)
	if serr != nil {
		return nil, serr
	}
	q := xmlstream.NewElement(NSDiscoInfo, "query").SetAttr("node", node)
	q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "identity").SetAttr("category", "pubsub").SetAttr("type", "leaf"))
	q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "feature").SetAttr("var", NS))
	q.AppendChild(metaData(cfg))
	return q, nil
}

// metaData is the node's meta-data form (XEP-0060 §5.4).
func metaData(cfg nodeConfig) *xmlstream.Element {
	ff := []dataform.Field{}
	for _, v := range []string{fTitle, fDescription, fType, fAccessModel, fPublishModel, fMaxItems} {
		ff = append(ff, dataform.Field{Var: v, Values: cfg[v]})
	}
	return dataform.Build("result", NSMetaData, "", "", ff)
}

// discoItems lists the service's nodes the requester may see (node "",
// XEP-0060 §5.2) or the ids of a node's items (§5.5).
func (e *engine) discoItems(c *call, node string) (*xmlstream.Element, *stanza.Error) {
	q := xmlstream.NewElement(NSDiscoItems, "query")
	service := c.service.String()
	if node == "" {
		nodes, err := c.st.ListPubSubNodes(c.ctx, service)
		if err != nil {
			return nil, modules.BackendError(err)
		}
		for _, n := range nodes {
			cfg := loadConfig(n.Config, e.pep, e.lim)
			if e.mayRetrieve(c, n.Node, cfg, c.from) != nil {
				continue
			}
			it := xmlstream.NewElement(NSDiscoItems, "item").SetAttr("jid", service).SetAttr("node", n.Node)
			if t := cfg.str(fTitle); t != "" {
				it.SetAttr("name", t)
			}
			q.AppendChild(it)
		}
		return q, nil
	}
	cfg, serr := e.visible(c, node)
	if serr != nil {
		return nil, serr
	}
	q.SetAttr("node", node)
	if !cfg.bool(fPersistItems) {
		return q, nil
	}
	page, err := c.st.GetPubSubItems(c.ctx, sdk.PubSubItemQuery{Service: service, Node: node, Max: sdk.MaxPubSubPage})
	if err != nil {
		return nil, modules.BackendError(err)
	}
	for _, it := range page.Items {
		q.AppendChild(xmlstream.NewElement(NSDiscoItems, "item").SetAttr("jid", service).SetAttr("name", it.ID))
	}
	return q, nil
}
