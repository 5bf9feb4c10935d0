package pubsub

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/xmlstream"
)

// Node configuration (XEP-0060 §8.2, FORM_TYPE pubsub#node_config) is kept
// as the form's values by field var, normalised and complete, which is also
// how a backend stores it (sdk.PubSubNode.Config).
type nodeConfig map[string][]string

// Access models (XEP-0060 §4.5). "authorize" needs an approval workflow
// koi does not have, so it is refused like an unknown model.
const (
	AccessOpen      = "open"
	AccessPresence  = "presence"
	AccessRoster    = "roster"
	AccessWhitelist = "whitelist"
)

// Field vars of the node configuration.
const (
	fAccessModel   = "pubsub#access_model"
	fPublishModel  = "pubsub#publish_model"
	fMaxItems      = "pubsub#max_items"
	fPersistItems  = "pubsub#persist_items"
	fRosterGroups  = "pubsub#roster_groups_allowed"
	fSendLast      = "pubsub#send_last_published_item"
	fDeliverNotify = "pubsub#deliver_notifications"
	fDeliverPay    = "pubsub#deliver_payloads"
	fNotifyRetract = "pubsub#notify_retract"
	fNotifyDelete  = "pubsub#notify_delete"
	fNotifyConfig  = "pubsub#notify_config"
	fItemReply     = "pubsub#itemreply"
	fTitle         = "pubsub#title"
	fDescription   = "pubsub#description"
	fType          = "pubsub#type"
)

// maxText bounds a text field's value (title, description, type).
const maxText = 1024

// fieldSpec describes one configuration field: how it shows in a form and
// how a submitted value is checked and normalised.
type fieldSpec struct {
	v, typ, label string
	options       []string
	// norm checks and normalises the submitted values; lim gives the
	// bounds of max_items.
	norm func(vals []string, lim Limits) ([]string, error)
}

func oneOf(options ...string) func([]string, Limits) ([]string, error) {
	return func(vals []string, _ Limits) ([]string, error) {
		if len(vals) != 1 || !slices.Contains(options, strings.TrimSpace(vals[0])) {
			return nil, fmt.Errorf("want one of %s", strings.Join(options, ", "))
		}
		return []string{strings.TrimSpace(vals[0])}, nil
	}
}

func boolean(vals []string, _ Limits) ([]string, error) {
	if len(vals) != 1 {
		return nil, fmt.Errorf("want a boolean")
	}
	b, ok := parseBool(vals[0])
	if !ok {
		return nil, fmt.Errorf("want a boolean, got %q", vals[0])
	}
	if b {
		return []string{"true"}, nil
	}
	return []string{"false"}, nil
}

func text(vals []string, _ Limits) ([]string, error) {
	switch {
	case len(vals) == 0:
		return []string{""}, nil
	case len(vals) > 1:
		return nil, fmt.Errorf("want one value")
	case len(vals[0]) > maxText:
		return nil, fmt.Errorf("longer than %d bytes", maxText)
	}
	return []string{vals[0]}, nil
}

func maxItems(vals []string, lim Limits) ([]string, error) {
	if len(vals) != 1 {
		return nil, fmt.Errorf("want a number or max")
	}
	s := strings.TrimSpace(vals[0])
	if s == "max" {
		return []string{strconv.Itoa(lim.MaxItems)}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("want a number from 1 or max, got %q", s)
	}
	if n > lim.MaxItems {
		return nil, fmt.Errorf("at most %d", lim.MaxItems)
	}
	return []string{strconv.Itoa(n)}, nil
}

func groups(vals []string, _ Limits) ([]string, error) {
	if len(vals) > 256 {
		return nil, fmt.Errorf("too many groups")
	}
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if len(v) > maxText {
			return nil, fmt.Errorf("a group name longer than %d bytes", maxText)
		}
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// fields are the configuration fields koi supports, in form order.
var fields = []fieldSpec{
	{fTitle, "text-single", "A friendly name for the node", nil, text},
	{fDescription, "text-single", "A description of the node", nil, text},
	{fType, "text-single", "The type of node data, usually the namespace of the payload", nil, text},
	{fAccessModel, "list-single", "Who may subscribe and retrieve items", []string{AccessOpen, AccessPresence, AccessRoster, AccessWhitelist}, oneOf(AccessOpen, AccessPresence, AccessRoster, AccessWhitelist)},
	{fRosterGroups, "list-multi", "Roster groups allowed to subscribe (access model roster)", nil, groups},
	{fPublishModel, "list-single", "Who may publish", []string{"publishers", "subscribers", "open"}, oneOf("publishers", "subscribers", "open")},
	{fMaxItems, "text-single", "Most items to keep", nil, maxItems},
	{fPersistItems, "boolean", "Keep items in storage", nil, boolean},
	{fSendLast, "list-single", "When to send the last published item", []string{"never", "on_sub", "on_sub_and_presence"}, oneOf("never", "on_sub", "on_sub_and_presence")},
	{fDeliverNotify, "boolean", "Deliver event notifications", nil, boolean},
	{fDeliverPay, "boolean", "Deliver payloads with event notifications", nil, boolean},
	{fNotifyRetract, "boolean", "Notify subscribers when items are removed", nil, boolean},
	{fNotifyDelete, "boolean", "Notify subscribers when the node is deleted", nil, boolean},
	{fNotifyConfig, "boolean", "Notify subscribers when the configuration changes", nil, boolean},
	{fItemReply, "list-single", "Whom replies to items go to", []string{"owner", "publisher"}, oneOf("owner", "publisher")},
}

func spec(v string) *fieldSpec {
	for i := range fields {
		if fields[i].v == v {
			return &fields[i]
		}
	}
	return nil
}

// defaultConfig is a new node's configuration: PEP nodes follow XEP-0163
// §4 (presence access, one item, last item on presence), service nodes are
// open and keep more items.
func defaultConfig(pep bool, lim Limits) nodeConfig {
	c := nodeConfig{
		fTitle: {""}, fDescription: {""}, fType: {""},
		fAccessModel: {AccessOpen}, fRosterGroups: {}, fPublishModel: {"publishers"},
		fMaxItems:      {strconv.Itoa(min(lim.DefaultMaxItems, lim.MaxItems))},
		fPersistItems:  {"true"},
		fSendLast:      {"on_sub"},
		fDeliverNotify: {"true"}, fDeliverPay: {"true"},
		fNotifyRetract: {"true"}, fNotifyDelete: {"true"}, fNotifyConfig: {"false"},
		fItemReply: {"owner"},
	}
	if pep {
		c[fAccessModel] = []string{AccessPresence}
		c[fMaxItems] = []string{"1"}
		c[fSendLast] = []string{"on_sub_and_presence"}
	}
	return c
}

// loadConfig completes a stored configuration with the defaults, so that
// fields added to koi later have values; stored values that no longer
// check are replaced by the default too.
func loadConfig(stored map[string][]string, pep bool, lim Limits) nodeConfig {
	c := defaultConfig(pep, lim)
	for v, vals := range stored {
		s := spec(v)
		if s == nil {
			continue
		}
		if n, err := s.norm(vals, lim); err == nil {
			c[v] = n
		}
	}
	return c
}

// configError is a submitted form that cannot be applied; field names the
// offending field.
type configError struct {
	field string
	msg   string
}

func (e *configError) Error() string { return e.field + ": " + e.msg }

// apply returns c changed by the submitted values of f. A field koi does
// not know is ignored (XEP-0004: a form may carry fields of extensions),
// a bad value is an error that changes nothing.
func (c nodeConfig) apply(f *dataform.Form, lim Limits) (nodeConfig, *configError) {
	out := maps.Clone(c)
	for _, v := range f.Order {
		s := spec(v)
		if s == nil {
			continue
		}
		n, err := s.norm(f.Fields[v], lim)
		if err != nil {
			return nil, &configError{v, err.Error()}
		}
		out[v] = n
	}
	return out, nil
}

// unmet returns the first publish-options field (XEP-0060 §7.1.5) whose
// value differs from the node's, or that koi does not know; "" when all
// preconditions hold.
func (c nodeConfig) unmet(f *dataform.Form, lim Limits) string {
	for _, v := range f.Order {
		s := spec(v)
		if s == nil {
			return v
		}
		n, err := s.norm(f.Fields[v], lim)
		if err != nil || !slices.Equal(n, c[v]) {
			return v
		}
	}
	return ""
}

func (c nodeConfig) str(v string) string {
	if vals := c[v]; len(vals) > 0 {
		return vals[0]
	}
	return ""
}

func (c nodeConfig) bool(v string) bool { return c.str(v) == "true" }

func (c nodeConfig) accessModel() string { return c.str(fAccessModel) }

func (c nodeConfig) maxItems() int {
	n, _ := strconv.Atoi(c.str(fMaxItems))
	return n
}

// NSNodeConfig is the FORM_TYPE of node configuration forms.
const NSNodeConfig = "http://jabber.org/protocol/pubsub#node_config"

// xform renders the configuration as a form of type typ ("form" for the
// owner to fill in, "result" for disco#info meta-data).
func (c nodeConfig) xform(typ string) *xmlstream.Element {
	ff := make([]dataform.Field, 0, len(fields))
	for _, s := range fields {
		f := dataform.Field{Var: s.v, Values: c[s.v]}
		if typ == "form" {
			f.Type, f.Label, f.Options = s.typ, s.label, dataform.Choices(s.options...)
		}
		ff = append(ff, f)
	}
	return dataform.Build(typ, NSNodeConfig, "", "", ff)
}
