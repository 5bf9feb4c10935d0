package config

import (
	"maps"
	"slices"
)

// reattachKeys are the keys of a plugin block's reattach value: the line
// a plugin in the SDK's debug mode prints.
var reattachKeys = []string{"pid", "network", "address", "protocol_version"}

// reattach decodes the plugin block's reattach key, nil when absent or
// wrong (reported). It takes the one-line form the SDK prints,
// reattach = { pid = ..., ... }, and the block form reattach { ... }.
func (d *decoder) reattach(pb *block) *PluginReattach {
	v, ok := pb.get("reattach")
	if !ok {
		return nil
	}
	path := pb.at("reattach")
	// HCL 1 decodes the block form as a list of one object.
	if l, ok := v.([]map[string]any); ok && len(l) == 1 {
		v = l[0]
	}
	if l, ok := v.([]any); ok && len(l) == 1 {
		v = l[0]
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.problem(path, `want the line a plugin in debug mode prints, like reattach = { pid = 4242, network = "unix", address = "/tmp/plugin123", protocol_version = 1 }, got %s`, describe(v))
		return nil
	}
	b := &block{d: d, path: path, m: m}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(reattachKeys, k) {
			d.problem(b.at(k), "unknown key%s", suggest(k, reattachKeys))
		}
	}
	bad := len(d.probs)
	for _, k := range reattachKeys {
		if !b.has(k) {
			d.problem(b.at(k), "missing: copy the whole reattach line the plugin printed")
		}
	}
	r := &PluginReattach{
		Pid:             int(b.integer("pid", 0, true)),
		Network:         b.enum("network", "", "unix", "tcp"),
		Address:         b.nonEmpty("address", ""),
		ProtocolVersion: int(b.integer("protocol_version", 0, true)),
	}
	if len(d.probs) > bad {
		return nil
	}
	return r
}
