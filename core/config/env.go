package config

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

const (
	envPrefix = "KOI_"
	envSep    = "__"
)

// envSetting is one KOI_ variable resolved to a key path and a typed value.
type envSetting struct {
	name  string // the variable, for messages
	path  []string
	value any
}

// resolveEnv turns the KOI_ variables of environ into settings on tree (the
// parsed file). Segments match existing labels and keys case-insensitively,
// so KOI_HOST__EXAMPLE.COM__ROSTER reaches host "example.com" and
// KOI_PLUGIN__STORE__CONFIG__DSN reaches the dsn key of plugin "store"
// however they are spelled in the file. A label must exist in the file;
// plugin config keys that do not exist yet are created lowercased. Values
// are converted to the type the schema wants; in a plugin config block, to
// the type of the value they replace (string when there is none).
func resolveEnv(tree map[string]any, environ []string) ([]envSetting, Errors) {
	var (
		sets  []envSetting
		probs Errors
	)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) || !strings.Contains(name[len(envPrefix):], envSep) {
			continue
		}
		s, p := resolveVar(tree, name, value)
		if p != nil {
			probs = append(probs, *p)
			continue
		}
		sets = append(sets, s)
	}
	return sets, probs
}

func resolveVar(tree map[string]any, name, value string) (envSetting, *Problem) {
	fail := func(msg string) (envSetting, *Problem) {
		return envSetting{}, &Problem{Key: name, Msg: msg}
	}
	segs := strings.Split(name[len(envPrefix):], envSep)
	for _, s := range segs {
		if s == "" || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return fail("malformed name: want KOI_<BLOCK>__<KEY> or KOI_<BLOCK>__<LABEL>__<KEY>")
		}
	}
	unknown := func(path []string, rest []string) (envSetting, *Problem) {
		full := slices.Clone(path)
		for _, s := range rest {
			full = append(full, strings.ToLower(s))
		}
		return fail("unknown key " + displayKey(full))
	}

	block := strings.ToLower(segs[0])
	keys, ok := blockKeys(block)
	if !ok {
		s, p := unknown(nil, segs)
		p.Msg += suggest(block, blockNames())
		return s, p
	}
	path := []string{block}
	rest := segs[1:]
	node := tree[block]
	if labelled(block) {
		if len(rest) < 2 {
			return fail("names a whole " + block + " block; name a key in it, like KOI_" +
				strings.ToUpper(block) + "__<LABEL>__<KEY>")
		}
		// A new block from the environment would be half a block (a
		// listener without a type, a plugin without a command) and fail
		// later under a name the operator did not write; a typo in the
		// label would silently add one.
		labels, _ := node.(map[string]any)
		label, ok := foldFind(labels, rest[0])
		if !ok {
			name := strings.ToLower(rest[0])
			return fail("there is no " + block + " " + quote(name) + " block in the config file; " +
				"an override can only change an existing block" + suggest(name, slices.Collect(maps.Keys(labels))))
		}
		path = append(path, label)
		node = child(node, label)
		rest = rest[1:]
	}
	key := strings.ToLower(rest[0])
	k, ok := keys[key]
	if !ok {
		s, p := unknown(path, rest)
		p.Msg += suggest(key, slices.Collect(maps.Keys(keys)))
		return s, p
	}
	path = append(path, key)
	node = child(node, key)
	rest = rest[1:]

	if k == kAny {
		if len(rest) == 0 {
			return fail("names the whole " + key + " block; name a key in it, like " + name + "__<KEY>")
		}
		for _, s := range rest {
			real := matchKey(node, s)
			path = append(path, real)
			node = child(node, real)
		}
	} else if len(rest) > 0 {
		return unknown(path, rest)
	}

	v, err := convertEnv(k, node, value)
	if err != "" {
		return envSetting{}, &Problem{Key: displayKey(path), Msg: err + " (set by " + name + ")"}
	}
	return envSetting{name: name, path: path, value: v}, nil
}

// convertEnv converts an environment string to the type of kind k. For a
// plugin config value (kAny) it follows the type of old, the value being
// replaced. It returns a message on failure.
func convertEnv(k kind, old any, value string) (any, string) {
	switch k {
	case kBool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return nil, "want true or false, got " + quote(value)
		}
		return b, ""
	case kInt:
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return nil, "want an integer, got " + quote(value)
		}
		return n, ""
	case kList, kStringOrList:
		l := []any{}
		for _, s := range strings.Split(value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				l = append(l, s)
			}
		}
		return l, ""
	case kAny:
		switch old.(type) {
		case bool:
			return convertEnv(kBool, nil, value)
		case int, int64:
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil {
				return nil, "want an integer, got " + quote(value)
			}
			return n, "" // int, like the HCL parser's
		case float64:
			f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				return nil, "want a number, got " + quote(value)
			}
			return f, ""
		}
	}
	// Strings, and durations, which are strings until decoded.
	return value, ""
}

// matchKey returns the key of node (a map) that equals seg ignoring case,
// or seg lowercased when there is none.
func matchKey(node any, seg string) string {
	if m, ok := node.(map[string]any); ok {
		if k, ok := foldFind(m, seg); ok {
			return k
		}
	}
	return strings.ToLower(seg)
}

// child returns node[key] when node is a map, and nil otherwise.
func child(node any, key string) any {
	if m, ok := node.(map[string]any); ok {
		return m[key]
	}
	return nil
}
