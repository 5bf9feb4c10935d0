package clients

import (
	"strconv"
	"strings"
)

// logLine is one line of koi's log in hclog's text format:
//
//	2026-12-04T15:47:30.872Z [INFO]  koi.c2s: authenticated: remote=127.0.0.1:40000 user=alice@localhost mechanism=SCRAM-SHA-256
//
// Keys may come in any order and values may be quoted (Go syntax).
type logLine struct {
	Level  string // "INFO"
	Logger string // "koi.c2s"
	Msg    string // "authenticated"
	KV     map[string]string
	Raw    string
}

// parseLogLine parses one line; ok is false for lines that are not hclog
// entries (continuation lines, plugin noise).
func parseLogLine(s string) (l logLine, ok bool) {
	l.Raw = s
	i := strings.Index(s, " [")
	if i < 0 {
		return l, false
	}
	rest := s[i+2:]
	j := strings.IndexByte(rest, ']')
	if j < 0 {
		return l, false
	}
	l.Level = rest[:j]
	rest = strings.TrimLeft(rest[j+1:], " ")
	if k := strings.Index(rest, ": "); k >= 0 && !strings.ContainsAny(rest[:k], " =") {
		l.Logger, rest = rest[:k], rest[k+2:]
	}
	// The message ends at the first ": " followed by key=value pairs.
	l.Msg, l.KV = rest, map[string]string{}
	for off := 0; ; {
		k := strings.Index(rest[off:], ": ")
		if k < 0 {
			break
		}
		k += off
		if kv, ok := parseKV(rest[k+2:]); ok {
			l.Msg, l.KV = rest[:k], kv
			break
		}
		off = k + 2
	}
	return l, true
}

// parseKV parses `a=1 b="x y" c=` into a map; ok is false unless the whole
// string is such pairs.
func parseKV(s string) (map[string]string, bool) {
	kv := map[string]string{}
	s = strings.TrimSpace(s)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " \"") {
			return nil, false
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, false
			}
			val, _ = strconv.Unquote(q)
			s = s[len(q):]
		} else if sp := strings.IndexByte(s, ' '); sp >= 0 {
			val, s = s[:sp], s[sp:]
		} else {
			val, s = s, ""
		}
		kv[key] = val
		s = strings.TrimLeft(s, " ")
	}
	return kv, len(kv) > 0
}

// runLog is what koi's log says about one client run.
type runLog struct {
	Mechanism string // from the `authenticated` line; "" when not logged
	Binding   string // channel_binding=
	TLS       string // tls=
	Refused   int    // refused SASL attempts
	Excerpt   []string
}

// isRefusal reports whether the line is a refused login attempt.
func isRefusal(l logLine) bool {
	return strings.Contains(l.Msg, "login refused") || strings.Contains(l.Msg, "authentication failed")
}

// about says whether a log line names the account local@domain (user=,
// jid= or user= with host=), names some other account, or none at all.
func about(l logLine, local, domain string) (mine, other bool) {
	bare := local + "@" + domain
	names := false
	for _, k := range []string{"user", "jid", "account"} {
		v, ok := l.KV[k]
		if !ok || v == "" {
			continue
		}
		names = true
		if b, _, _ := strings.Cut(v, "/"); b == bare {
			return true, false
		}
		if v == local && (l.KV["host"] == "" || l.KV["host"] == domain) {
			return true, false
		}
	}
	return false, names
}

// analyseRun reads the part of koi's log written while one run went on.
// Runs against one koi are sequential, so a c2s line in the window that
// names no account (a SASL failure before the username is known) belongs
// to this run too; a line naming another account (the peer) does not.
func analyseRun(window, local, domain string) runLog {
	var r runLog
	for _, s := range strings.Split(window, "\n") {
		l, ok := parseLogLine(s)
		if !ok {
			continue
		}
		mine, other := about(l, local, domain)
		if other || (!mine && !strings.Contains(l.Logger, "c2s")) {
			continue
		}
		r.Excerpt = append(r.Excerpt, s)
		switch {
		case isRefusal(l):
			r.Refused++
		case mine && l.Msg == "authenticated" && l.Level == "INFO":
			r.Mechanism, r.Binding, r.TLS = l.KV["mechanism"], l.KV["channel_binding"], l.KV["tls"]
		}
	}
	return r
}
