package config

import (
	"slices"
	"strconv"
	"strings"
)

// delim separates key segments inside koanf. It cannot be ".", the koanf
// default, because host labels are domain names ("example.com") and plugin
// config keys may contain dots too; and it cannot be "__", because plugin
// config keys may contain that. The ASCII unit separator appears in no
// label, key or environment variable name anyone writes by hand.
const delim = "\x1f"

// kind is the type a schema key accepts.
type kind int

const (
	kString       kind = iota + 1
	kBool              // from the environment: anything strconv.ParseBool takes
	kInt               // from the environment: a decimal integer
	kDuration          // a string for time.ParseDuration, like "5s"
	kList              // a list of strings; from the environment, comma-separated
	kStringOrList      // a string or a list of strings; from the environment, comma-separated
	kAny               // a free-form block handed to a plugin
)

// blockNames lists koi's top-level blocks in the order they are decoded,
// which is also the order their problems are reported in.
func blockNames() []string {
	return []string{"log", "listen", "tls", "plugin", "host", "component", "limits", "stream_management", "server", "archive", "push", "pubsub", "admin", "metrics", "muc", "cluster", "turn", "contact"}
}

// labelled reports whether a top-level block carries a label
// (listen "c2s" { ... }) and may be repeated with different labels.
func labelled(block string) bool {
	return block == "listen" || block == "plugin" || block == "host" || block == "component"
}

// blockKeys returns the keys a top-level block accepts, or false for a name
// that is not a block. It builds a fresh map so that nobody can change the
// schema at run time.
func blockKeys(block string) (map[string]kind, bool) {
	switch block {
	case "log":
		return map[string]kind{"level": kString, "format": kString}, true
	case "listen":
		return map[string]kind{
			"type": kString, "address": kString, "starttls": kString,
			"path": kString, "tls": kBool, "public_url": kString, "origins": kList,
			"keepalive": kString, "keepalive_interval": kDuration, "ping_timeout": kDuration,
		}, true
	case "component":
		return map[string]kind{"secret": kString, "secret_file": kString, "replace": kBool}, true
	case "tls":
		return map[string]kind{"cert_file": kString, "key_file": kString, "min_version": kString, "max_version": kString}, true
	case "plugin":
		return map[string]kind{
			"command": kString, "args": kList, "sha256": kString,
			"config": kAny, "call_timeout": kDuration, "reattach": kAny,
		}, true
	case "host":
		return map[string]kind{
			"auth": kStringOrList, "roster": kString, "shared_roster": kString, "offline": kString, "vcard": kString,
			"private": kString, "archive": kString, "blocklist": kString, "tokens": kString, "pubsub": kString, "token_lifetime": kDuration, "registration": kBool,
			"password_change": kBool, "offline_limit": kInt, "channel_binding": kString,
			"muc": kString, "muc_domain": kString, "admins": kList,
			"upload": kAny,
		}, true
	case "limits":
		return map[string]kind{
			"max_stanza_size": kInt, "max_depth": kInt, "idle_timeout": kDuration,
			"keepalive_interval": kDuration, "auth_failures_per_ip": kInt,
			"auth_failures_per_account": kInt, "auth_failure_window": kDuration,
			"auth_slowdown_max": kDuration, "registrations_per_ip": kInt,
			"registration_window": kDuration, "send_queue": kInt,
			"connections_per_ip": kInt, "logins_per_ip": kInt, "rate_window": kDuration,
			"handshake_concurrency": kInt, "handshake_queue": kInt, "handshake_wait": kDuration,
		}, true
	case "stream_management":
		return map[string]kind{
			"enabled": kBool, "resume_timeout": kDuration, "max_queue": kInt, "request_ack_every": kInt,
		}, true
	case "server":
		return map[string]kind{"shutdown_timeout": kDuration, "data_dir": kString, "pprof": kString}, true
	case "archive":
		return map[string]kind{
			"queue_size": kInt, "batch_size": kInt, "batch_bytes": kInt, "flush_interval": kDuration,
			"max_in_flight": kInt, "block_timeout": kDuration, "journal_dir": kString, "journal_max_size": kInt,
		}, true
	case "admin":
		return map[string]kind{"address": kString, "token": kString, "tls": kBool}, true
	case "metrics":
		return map[string]kind{"address": kString, "path": kString}, true
	case "muc":
		return map[string]kind{
			"enabled": kBool, "room_creation": kString, "admins": kList,
			"max_history": kInt, "max_occupants": kInt, "max_rooms": kInt, "max_rooms_per_user": kInt,
			"join_rate": kInt, "join_window": kDuration, "lock_timeout": kDuration,
			"default_public": kBool, "default_persistent": kBool, "default_members_only": kBool,
			"default_moderated": kBool, "default_whois": kString, "default_allow_pm": kString, "default_history": kInt,
			"default_logging": kBool,
		}, true
	case "cluster":
		return map[string]kind{"nats_url": kString, "node": kString, "lease": kDuration, "name": kString, "outbox_max_size": kInt}, true
	case "pubsub":
		return map[string]kind{
			"service": kBool, "max_items": kInt, "default_max_items": kInt, "max_nodes": kInt, "max_item_size": kInt,
		}, true
	case "contact":
		return map[string]kind{"abuse": kList, "admin": kList, "feedback": kList, "sales": kList, "security": kList, "support": kList}, true
	case "turn":
		return map[string]kind{"host": kString, "port": kInt, "tls_port": kInt, "secret": kString, "secret_file": kString, "ttl": kDuration}, true
	case "push":
		return map[string]kind{
			"enabled": kBool, "include_body": kBool, "include_sender": kBool, "body_placeholder": kString,
			"max_registrations": kInt, "max_errors": kInt, "interval": kDuration,
		}, true
	}
	return nil, false
}

// labelExample shows how a labelled block is written, for error messages.
func labelExample(block string) string {
	switch block {
	case "listen":
		return `listen "c2s" { ... }`
	case "plugin":
		return `plugin "store" { ... }`
	case "component":
		return `component "gateway.example.com" { ... }`
	default:
		return `host "example.com" { ... }`
	}
}

// displayKey renders a key path the way it is written in the file:
// `host "example.com".roster`, `limits.max_stanza_size`.
func displayKey(path []string) string {
	var b strings.Builder
	for i, s := range path {
		switch {
		case i == 0:
			b.WriteString(s)
		case i == 1 && labelled(path[0]):
			b.WriteString(" ")
			b.WriteString(strconv.Quote(s))
		default:
			b.WriteString(".")
			b.WriteString(s)
		}
	}
	return b.String()
}

// suggest returns " (did you mean x?)" when a known key is a likely
// intended spelling of key, and "" otherwise.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	slices.Sort(known)
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestDist && d < len(k) {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

// editDistance is the Levenshtein distance between a and b, in bytes;
// keys are ASCII.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
