package config

import (
	"errors"
	"maps"
	"slices"
	"strings"

	khcl "github.com/knadh/koanf/parsers/hcl"
)

// hclParser is a koanf.Parser that wraps koanf's HCL (v1) parser and
// normalises its output into one nested map:
//
//   - HCL v1 decodes every object as a []map[string]any, while an explicit
//     list ([...]) comes back as []any. A single object becomes a plain map;
//     a block written several times becomes a list of maps.
//   - Labelled blocks (listen "c2s" {}, plugin "store" {}, host "x" {}) come
//     back as a list of {label: [body]} items, even with koanf's
//     flattenSlices. They become a map label -> body, host labels
//     lowercased, and the file order of the labels is kept in order.
//
// Shape problems found on the way (a missing label, a label used twice)
// are collected in probs rather than failing the parse, so that the user
// sees them together with everything else.
type hclParser struct {
	order map[string][]string // labels per labelled block, in file order
	probs Errors
}

func newHCLParser() *hclParser {
	return &hclParser{order: make(map[string][]string)}
}

// Unmarshal implements koanf.Parser.
func (p *hclParser) Unmarshal(b []byte) (map[string]any, error) {
	raw, err := khcl.Parser(false).Unmarshal(b)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(raw))
	for _, key := range slices.Sorted(maps.Keys(raw)) {
		if labelled(key) {
			if blocks := p.labelledBlocks(key, raw[key]); blocks != nil {
				out[key] = blocks
			}
			continue
		}
		out[key] = normalise(raw[key])
	}
	return out, nil
}

// Marshal implements koanf.Parser; koi never writes its config back.
func (p *hclParser) Marshal(map[string]any) ([]byte, error) {
	return nil, errors.New("config: writing HCL is not supported")
}

func (p *hclParser) problem(path []string, msg string) {
	p.probs = append(p.probs, Problem{Key: displayKey(path), Msg: msg})
}

// labelledBlocks turns the parser's [{label: [body]}, ...] into
// {label: body}. It returns nil when no usable block is left.
func (p *hclParser) labelledBlocks(block string, v any) map[string]any {
	items, ok := v.([]map[string]any)
	if !ok {
		p.problem([]string{block}, "want labelled blocks like "+labelExample(block)+", got "+describe(normalise(v)))
		return nil
	}
	out := make(map[string]any)
	for _, item := range items {
		if !isLabelledItem(item) {
			p.problem([]string{block}, "block needs a label, like "+labelExample(block))
			continue
		}
		for _, label := range slices.Sorted(maps.Keys(item)) {
			name := label
			if block == "host" || block == "component" {
				name = strings.ToLower(label)
			}
			if prev, dup := foldFind(out, name); dup {
				msg := "defined twice"
				if prev != name {
					msg += " (labels are case-insensitive: also " + quote(prev) + ")"
				}
				p.problem([]string{block, name}, msg)
				continue
			}
			out[name] = normalise(item[label])
			p.order[block] = append(p.order[block], name)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// isLabelledItem reports whether an item of a labelled block's list has
// the {label: [body]} shape; an unlabelled `host { auth = "x" }` decodes
// to {auth: "x"} instead.
func isLabelledItem(item map[string]any) bool {
	if len(item) == 0 {
		return false
	}
	for _, v := range item {
		if body, ok := v.([]map[string]any); !ok || len(body) != 1 {
			return false
		}
	}
	return true
}

// foldFind returns the key of m equal to key under Unicode case folding.
// Labels are matched that way because environment variables cannot carry
// case, so "Store" and "store" could not be told apart there.
func foldFind(m map[string]any, key string) (string, bool) {
	if _, ok := m[key]; ok {
		return key, true
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if strings.EqualFold(k, key) {
			return k, true
		}
	}
	return "", false
}

// normalise rewrites HCL v1's decoding of objects ([]map[string]any) into
// plain maps, recursively, leaving explicit lists as []any.
func normalise(v any) any {
	switch t := v.(type) {
	case []map[string]any:
		if len(t) == 1 {
			return normaliseMap(t[0])
		}
		l := make([]any, len(t))
		for i, m := range t {
			l[i] = normaliseMap(m)
		}
		return l
	case map[string]any:
		return normaliseMap(t)
	case []any:
		l := make([]any, len(t))
		for i, e := range t {
			l[i] = normalise(e)
		}
		return l
	default:
		return v
	}
}

func normaliseMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = normalise(v)
	}
	return out
}
