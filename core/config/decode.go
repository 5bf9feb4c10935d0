package config

import (
	"fmt"
	"maps"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// decoder turns the merged tree into a Config, collecting every problem.
type decoder struct {
	baseDir string            // relative paths are resolved against it; "" keeps them as given
	origin  map[string]string // key path joined by delim -> the KOI_ variable that set it
	probs   Errors
}

func (d *decoder) problem(path []string, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if name, ok := d.origin[strings.Join(path, delim)]; ok {
		msg += " (set by " + name + ")"
	}
	d.probs = append(d.probs, Problem{Key: displayKey(path), Msg: msg})
}

// file resolves a relative path against the config file's directory.
func (d *decoder) file(p string) string {
	if p == "" || d.baseDir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.baseDir, p)
}

func (d *decoder) decode(tree map[string]any, order map[string][]string) *Config {
	for _, k := range slices.Sorted(maps.Keys(tree)) {
		if _, ok := blockKeys(k); !ok {
			d.problem([]string{k}, "unknown key%s", suggest(k, blockNames()))
		}
	}
	c := &Config{}
	c.Log = d.log(tree["log"])
	c.Listeners = d.listeners(tree["listen"], order["listen"])
	// The server block first: its data_dir is where the TLS files go by
	// default.
	c.Server = d.server(tree["server"])
	c.TLS = d.tls(tree["tls"], c.Server.DataDir)
	c.Plugins = d.plugins(tree["plugin"], order["plugin"])
	c.Hosts = d.hosts(tree["host"], order["host"], c.Plugins, c.Server.DataDir)
	c.Components = d.components(tree["component"], order["component"], c.Hosts, c.Listeners)
	d.checkUploads(c)
	c.Limits = d.limits(tree["limits"])
	c.Archive = d.archive(tree["archive"], c.Server.DataDir)
	c.Push = d.push(tree["push"])
	c.PubSub = d.pubsub(tree["pubsub"], c.Limits.MaxStanzaBytes)
	c.Admin = d.admin(tree["admin"])
	c.Metrics = d.metrics(tree["metrics"])
	c.Cluster = d.cluster(tree["cluster"])
	d.clusterBackends(c)
	c.SM = d.streamManagement(tree["stream_management"])
	c.MUC = d.muc(tree["muc"])
	c.TURN = d.turn(tree["turn"])
	c.Contact = d.contact(tree["contact"])
	return c
}

func (d *decoder) log(v any) Log {
	b := d.block([]string{"log"}, v)
	return Log{
		Level:  b.enum("level", "info", "trace", "debug", "info", "warn", "error"),
		Format: b.enum("format", "text", "text", "json"),
	}
}

func (d *decoder) listeners(v any, fileOrder []string) []Listener {
	labels, bodies := d.labels("listen", v, fileOrder)
	if len(labels) == 0 {
		d.problem([]string{"listen"}, "missing: at least one listen block is required, like "+
			`listen "c2s" { address = "127.0.0.1:5222" }`)
		return nil
	}
	var out []Listener
	used := make(map[string]string) // address -> listener label
	for _, label := range labels {
		b := d.block([]string{"listen", label}, bodies[label])
		l := Listener{Name: label}
		if label == "" {
			d.problem(b.path, "label must not be empty")
		}

		if b.has("type") {
			l.Type = b.enum("type", "", "c2s", "c2s_tls", "websocket", "component")
		} else if label == "c2s" || label == "c2s_tls" || label == "websocket" || label == "component" {
			l.Type = label
		} else {
			d.problem(b.at("type"), `missing: the label is none of "c2s", "c2s_tls", "websocket", "component", so set type to one of them`)
		}

		if !b.has("address") {
			d.problem(b.at("address"), "missing: want host:port, like 127.0.0.1:5222")
		} else if a, ok := b.str("address"); ok {
			if err := checkAddress(a); err != "" {
				d.problem(b.at("address"), "%s", err)
			} else {
				l.Address = a
				if prev, dup := used[a]; dup {
					d.problem(b.at("address"), "%s is already used by listen %s", quote(a), quote(prev))
				}
				used[a] = label
			}
		}

		switch {
		case l.Type == "c2s":
			l.StartTLS = b.enum("starttls", "required", "required", "optional", "disabled")
		case b.has("starttls") && l.Type == "c2s_tls":
			d.problem(b.at("starttls"), `only for type "c2s": a c2s_tls listener speaks TLS from the first byte`)
		case b.has("starttls") && l.Type == "websocket":
			d.problem(b.at("starttls"), `only for type "c2s": a websocket listener never offers STARTTLS (RFC 7395); set tls = true for wss`)
		case b.has("starttls") && l.Type == "component":
			d.problem(b.at("starttls"), `only for type "c2s": the component protocol (XEP-0114) has no STARTTLS; set tls = true for TLS from the first byte`)
		}
		if l.Type != "" {
			// Unset keys stay zero: the server applies the defaults. On a
			// WebSocket a whitespace keepalive is a WebSocket ping.
			if b.has("keepalive") {
				l.Keepalive = b.enum("keepalive", "whitespace", "whitespace", "ping", "off")
			}
			l.KeepaliveInterval = b.duration("keepalive_interval", 0, false)
			if b.has("ping_timeout") {
				l.PingTimeout = b.duration("ping_timeout", 30*time.Second, true)
			}
			if b.has("ping_timeout") && l.Keepalive != "ping" {
				d.problem(b.at("ping_timeout"), `only with keepalive = "ping"`)
			}
		}
		switch l.Type {
		case "websocket":
			d.websocket(b, &l)
		case "component":
			l.TLS = b.boolean("tls", false)
		}
		for _, k := range []string{"path", "tls", "public_url", "origins"} {
			switch {
			case !b.has(k) || l.Type == "" || l.Type == "websocket" || (k == "tls" && l.Type == "component"):
			case k == "tls":
				d.problem(b.at(k), `only for types "websocket" and "component"`)
			default:
				d.problem(b.at(k), `only for type "websocket"`)
			}
		}
		out = append(out, l)
	}
	return out
}

// websocket reads the keys of a websocket listener.
func (d *decoder) websocket(b *block, l *Listener) {
	l.Path = b.nonEmpty("path", "/xmpp-websocket")
	if !strings.HasPrefix(l.Path, "/") || strings.ContainsAny(l.Path, "?# ") {
		d.problem(b.at("path"), "want an absolute URL path like %s, got %s", quote("/xmpp-websocket"), quote(l.Path))
		l.Path = "/xmpp-websocket"
	}
	if strings.HasPrefix(l.Path, "/.well-known/") {
		d.problem(b.at("path"), "%s is where host-meta (XEP-0156) is served; choose another path", quote(l.Path))
	}
	l.TLS = b.boolean("tls", false)
	for _, o := range b.list("origins") {
		if msg := checkOrigin(o); msg != "" {
			d.problem(b.at("origins"), "%s", msg)
			continue
		}
		l.Origins = append(l.Origins, o)
	}
	if s, ok := b.str("public_url"); ok && s != "" {
		if msg := checkWebSocketURL(s); msg != "" {
			d.problem(b.at("public_url"), "%s", msg)
		} else {
			l.PublicURL = s
		}
	}
}

// checkOrigin checks an allowed-origin pattern. Browsers send an origin
// as scheme://host[:port]; the pattern is matched against its host[:port]
// with path.Match, as the WebSocket library does. It returns a message,
// or "".
func checkOrigin(o string) string {
	switch {
	case o == "":
		return "an empty origin pattern matches nothing; remove it"
	case strings.Contains(o, "://") || strings.ContainsAny(o, "/?# "):
		return "want a host pattern as in the Origin header without its scheme, like " +
			quote("chat.example.com") + " or " + quote("*.example.com:8443") + ", got " + quote(o)
	}
	if _, err := path.Match(o, ""); err != nil {
		return "bad pattern " + quote(o) + ": " + err.Error()
	}
	return ""
}

// checkWebSocketURL checks an advertised WebSocket URL. It returns a
// message, or "".
func checkWebSocketURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "want a URL like wss://chat.example.com/xmpp-websocket, got " + quote(s)
	case u.Scheme != "ws" && u.Scheme != "wss":
		return "want a ws:// or wss:// URL, got " + quote(s)
	case u.Host == "":
		return "want a URL with a host, like wss://chat.example.com/xmpp-websocket, got " + quote(s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "want a URL without user, query or fragment, got " + quote(s)
	}
	return ""
}

func (d *decoder) tls(v any, dataDir string) TLS {
	b := d.block([]string{"tls"}, v)
	t := TLS{
		CertFile:   d.file(b.nonEmpty("cert_file", filepath.Join(dataDir, "tls", "cert.pem"))),
		KeyFile:    d.file(b.nonEmpty("key_file", filepath.Join(dataDir, "tls", "key.pem"))),
		MinVersion: b.enum("min_version", "1.2", "1.2", "1.3"),
		MaxVersion: b.enum("max_version", "1.3", "1.2", "1.3"),
	}
	// "1.2" < "1.3" as strings too, with only these two values.
	if t.MinVersion > t.MaxVersion {
		d.problem(b.at("min_version"), "%s is above max_version %s", quote(t.MinVersion), quote(t.MaxVersion))
	}
	return t
}

func (d *decoder) plugins(v any, fileOrder []string) map[string]Plugin {
	labels, bodies := d.labels("plugin", v, fileOrder)
	out := make(map[string]Plugin, len(labels))
	for _, label := range labels {
		b := d.block([]string{"plugin", label}, bodies[label])
		p := Plugin{Name: label, Config: map[string]any{}, Dir: d.baseDir}
		if label == "" {
			d.problem(b.path, "label must not be empty")
		}
		p.Reattach = d.reattach(b)
		switch {
		case !b.has("command") && !b.has("reattach"):
			d.problem(b.at("command"), "missing: want the path of the plugin's executable (or reattach, for a plugin in debug mode)")
		case b.has("command"):
			p.Command = d.file(b.nonEmpty("command", ""))
		}
		p.Args = b.list("args")
		if s, ok := b.str("sha256"); ok {
			if !isHex(s) || len(s) != 64 {
				d.problem(b.at("sha256"), "want a SHA-256 digest as 64 hex digits, got %s", quote(s))
			} else {
				p.SHA256 = strings.ToLower(s)
			}
		}
		if c, ok := b.get("config"); ok {
			if m, ok := c.(map[string]any); ok {
				p.Config = m
			} else {
				d.problem(b.at("config"), "want a block, like config = { key = \"value\" }, got %s", describe(c))
			}
		}
		p.CallTimeout = b.duration("call_timeout", 5*time.Second, true)
		out[label] = p
	}
	return out
}

func (d *decoder) hosts(v any, fileOrder []string, plugins map[string]Plugin, dataDir string) []Host {
	labels, bodies := d.labels("host", v, fileOrder)
	if len(labels) == 0 {
		d.problem([]string{"host"}, "missing: at least one host block is required, like "+
			`host "example.com" { auth = "store" }`)
		return nil
	}
	// ref checks that a feature names a plugin block.
	ref := func(path []string, name string) bool {
		if _, ok := plugins[name]; ok {
			return true
		}
		defined := "there are no plugin blocks"
		if len(plugins) > 0 {
			var q []string
			for _, n := range slices.Sorted(maps.Keys(plugins)) {
				q = append(q, quote(n))
			}
			defined = "defined: " + strings.Join(q, ", ")
		}
		d.problem(path, "no plugin %s (%s)", quote(name), defined)
		return false
	}
	var out []Host
	for _, label := range labels {
		b := d.block([]string{"host", label}, bodies[label])
		h := Host{Name: label}
		if err := checkDomain(label); err != "" {
			d.problem(b.path, "not a valid domain name: %s", err)
		}
		auth, authOK := b.stringOrList("auth")
		for _, a := range auth {
			if a == "" {
				d.problem(b.at("auth"), "names an empty plugin")
			} else if ref(b.at("auth"), a) {
				h.Auth = append(h.Auth, a)
			}
		}
		for _, f := range []struct {
			key string
			dst *string
		}{
			{"roster", &h.Roster}, {"offline", &h.Offline}, {"vcard", &h.VCard},
			{"private", &h.Private}, {"archive", &h.Archive}, {"shared_roster", &h.SharedRoster},
			{"blocklist", &h.Blocklist}, {"tokens", &h.Tokens}, {"muc", &h.MUC},
			{"pubsub", &h.PubSub},
		} {
			// An empty string, like an absent key, turns the feature off.
			if s, ok := b.str(f.key); ok && s != "" && ref(b.at(f.key), s) {
				*f.dst = s
			}
		}
		if h.SharedRoster != "" && h.SharedRoster == h.Roster {
			d.problem(b.at("shared_roster"), "names the roster plugin %s; the shared roster is a second, read-only source (a directory)", quote(h.Roster))
		}
		h.MUCDomain = "conference." + label
		if s, ok := b.str("muc_domain"); ok {
			if s != "" {
				if err := checkDomain(s); err != "" {
					d.problem(b.at("muc_domain"), "not a valid domain name: %s", err)
				} else if strings.EqualFold(s, label) {
					d.problem(b.at("muc_domain"), "is the host's own domain; the chat service needs a domain of its own, like %s", quote("conference."+label))
				}
			}
			h.MUCDomain = strings.ToLower(s)
		}
		h.Registration = b.boolean("registration", false)
		h.PasswordChange = b.boolean("password_change", true)
		h.OfflineLimit = int(b.integer("offline_limit", 100, false))
		h.ChannelBinding = b.enum("channel_binding", "prefer", "prefer", "require", "off")
		h.TokenLifetime = b.duration("token_lifetime", DefaultTokenLifetime, true)
		h.Upload = d.upload(b, label, dataDir)
		for _, a := range b.list("admins") {
			if msg := checkBareJID(a); msg != "" {
				d.problem(b.at("admins"), "%s", msg)
				continue
			}
			h.Admins = append(h.Admins, a)
		}
		if h.Tokens != "" && len(h.Auth) == 0 {
			d.problem(b.at("tokens"), "needs auth: a FAST token is issued after a login with the host's auth plugin, and auth is empty")
		}
		if h.Registration && authOK && len(auth) == 0 {
			d.problem(b.at("registration"), "needs auth: registration creates accounts in the host's auth plugin, and auth is empty")
		}
		out = append(out, h)
	}
	return out
}

func (d *decoder) limits(v any) Limits {
	b := d.block([]string{"limits"}, v)
	return Limits{
		MaxStanzaBytes:         b.integer("max_stanza_size", 262144, true),
		MaxDepth:               int(b.integer("max_depth", 64, true)),
		IdleTimeout:            b.duration("idle_timeout", 5*time.Minute, false),
		KeepaliveInterval:      b.duration("keepalive_interval", 60*time.Second, false),
		AuthFailuresPerIP:      int(b.integer("auth_failures_per_ip", 100, false)),
		AuthFailuresPerAccount: int(b.integer("auth_failures_per_account", 5, false)),
		AuthFailureWindow:      b.duration("auth_failure_window", time.Minute, false),
		AuthSlowdownMax:        b.duration("auth_slowdown_max", 5*time.Second, false),
		RegistrationsPerIP:     int(b.integer("registrations_per_ip", 10, false)),
		RegistrationWindow:     b.duration("registration_window", time.Hour, false),
		SendQueue:              int(b.integer("send_queue", 1024, true)),
		ConnectionsPerIP:       int(b.integer("connections_per_ip", 100, false)),
		LoginsPerIP:            int(b.integer("logins_per_ip", 100, false)),
		RateWindow:             b.duration("rate_window", 10*time.Second, true),
		HandshakeConcurrency:   int(b.integer("handshake_concurrency", 0, false)),
		HandshakeQueue:         int(b.integer("handshake_queue", 1000, false)),
		HandshakeWait:          b.duration("handshake_wait", 10*time.Second, true),
	}
}

// maxPushInterval bounds push.interval: a longer wait would hold a
// notification past the point where it is news.
const maxPushInterval = time.Hour

// maxPlaceholder bounds push.body_placeholder, which goes into every
// notification.
const maxPlaceholder = 200

func (d *decoder) push(v any) Push {
	b := d.block([]string{"push"}, v)
	p := Push{
		Enabled:          b.boolean("enabled", true),
		IncludeBody:      b.boolean("include_body", false),
		IncludeSender:    b.boolean("include_sender", false),
		BodyPlaceholder:  "New message",
		MaxRegistrations: int(b.integer("max_registrations", 5, true)),
		MaxErrors:        int(b.integer("max_errors", 16, true)),
		Interval:         b.duration("interval", 5*time.Second, false),
	}
	if s, ok := b.str("body_placeholder"); ok {
		if len(s) > maxPlaceholder {
			d.problem(b.at("body_placeholder"), "too long: at most %d bytes, got %d", maxPlaceholder, len(s))
		} else {
			p.BodyPlaceholder = s
		}
	}
	if p.Interval > maxPushInterval {
		d.problem(b.at("interval"), "at most %v, got %v", maxPushInterval, p.Interval)
		p.Interval = 5 * time.Second
	}
	return p
}

// maxPubSubItems bounds pubsub.max_items: a page of a node's items is
// read at once (sdk.MaxPubSubPage).
const maxPubSubItems = 1000

func (d *decoder) pubsub(v any, maxStanza int64) PubSub {
	b := d.block([]string{"pubsub"}, v)
	p := PubSub{
		Service:         b.boolean("service", true),
		MaxItems:        int(b.integer("max_items", 256, true)),
		DefaultMaxItems: int(b.integer("default_max_items", 10, true)),
		MaxNodes:        int(b.integer("max_nodes", 100, true)),
		MaxItemBytes:    int(b.integer("max_item_size", 131072, true)),
	}
	if p.MaxItems > maxPubSubItems {
		d.problem(b.at("max_items"), "at most %d, got %d", maxPubSubItems, p.MaxItems)
		p.MaxItems = 256
	}
	if p.DefaultMaxItems > p.MaxItems {
		d.problem(b.at("default_max_items"), "at most max_items (%d), got %d", p.MaxItems, p.DefaultMaxItems)
		p.DefaultMaxItems = min(10, p.MaxItems)
	}
	// An item travels in a stanza: one larger than the stanza limit could
	// never be published nor read.
	// The default shrinks with a small stanza limit; a size set outright
	// must fit.
	if maxStanza > 0 && int64(p.MaxItemBytes) >= maxStanza {
		if b.has("max_item_size") {
			d.problem(b.at("max_item_size"), "must be below limits.max_stanza_size (%d), got %d", maxStanza, p.MaxItemBytes)
		}
		p.MaxItemBytes = int(maxStanza / 2)
	}
	return p
}

func (d *decoder) streamManagement(v any) StreamManagement {
	b := d.block([]string{"stream_management"}, v)
	return StreamManagement{
		Enabled:         b.boolean("enabled", true),
		ResumeTimeout:   b.duration("resume_timeout", 300*time.Second, false),
		MaxQueue:        int(b.integer("max_queue", 1024, true)),
		RequestAckEvery: int(b.integer("request_ack_every", 5, false)),
	}
}

func (d *decoder) metrics(v any) Metrics {
	b := d.block([]string{"metrics"}, v)
	m := Metrics{Path: b.nonEmpty("path", "/metrics")}
	if !strings.HasPrefix(m.Path, "/") || strings.ContainsAny(m.Path, "?# ") {
		d.problem(b.at("path"), "want an absolute URL path like %s, got %s", quote("/metrics"), quote(m.Path))
		m.Path = "/metrics"
	}
	if a, ok := b.str("address"); ok && a != "" {
		if err := checkAddress(a); err != "" {
			d.problem(b.at("address"), "%s", err)
		} else {
			m.Address = a
		}
	}
	return m
}

func (d *decoder) server(v any) Server {
	b := d.block([]string{"server"}, v)
	s := Server{
		ShutdownTimeout: b.duration("shutdown_timeout", 10*time.Second, false),
		DataDir:         d.file(b.nonEmpty("data_dir", "data")),
	}
	if p, ok := b.str("pprof"); ok && p != "" {
		if err := checkAddress(p); err != "" {
			d.problem(b.at("pprof"), "%s", err)
		} else {
			s.Pprof = p
		}
	}
	return s
}

// minAdminToken is the shortest admin token accepted: a guessable token
// on an API that deletes accounts is worse than none.
const minAdminToken = 16

func (d *decoder) admin(v any) Admin {
	b := d.block([]string{"admin"}, v)
	a := Admin{TLS: b.boolean("tls", false)}
	addr, _ := b.str("address")
	tok, _ := b.str("token")
	if addr == "" {
		return a
	}
	if err := checkAddress(addr); err != "" {
		d.problem(b.at("address"), "%s", err)
		return a
	}
	if len(tok) < minAdminToken {
		d.problem(b.at("token"), "the admin API needs a token of at least %d characters (got %d); e.g. KOI_ADMIN__TOKEN=$(openssl rand -hex 24)", minAdminToken, len(tok))
		return a
	}
	a.Address, a.Token = addr, tok
	return a
}

// maxBatchBytes keeps a batch well under gRPC's 4 MiB message limit.
const maxBatchBytes = 4 << 20

// minJournalSize is the smallest journal bound that holds a full batch.
const minJournalSize = 1 << 20

func (d *decoder) archive(v any, dataDir string) Archive {
	b := d.block([]string{"archive"}, v)
	a := Archive{
		QueueSize:      int(b.integer("queue_size", 16384, true)),
		BatchSize:      int(b.integer("batch_size", 256, true)),
		BatchBytes:     int(b.integer("batch_bytes", 1<<20, true)),
		FlushInterval:  b.duration("flush_interval", 10*time.Millisecond, true),
		MaxInFlight:    int(b.integer("max_in_flight", 64, true)),
		BlockTimeout:   b.duration("block_timeout", 2*time.Second, true),
		JournalDir:     d.file(b.nonEmpty("journal_dir", "")),
		JournalMaxSize: b.integer("journal_max_size", 1<<30, false),
	}
	if a.JournalDir == "" {
		a.JournalDir = filepath.Join(dataDir, "archive-journal")
	}
	if a.BatchSize > a.QueueSize {
		d.problem(b.at("batch_size"), "must not exceed archive.queue_size (%d), got %d", a.QueueSize, a.BatchSize)
	}
	if a.BatchBytes > maxBatchBytes {
		d.problem(b.at("batch_bytes"), "must not exceed %d (gRPC's message limit is 4 MiB), got %d", maxBatchBytes, a.BatchBytes)
	}
	if a.JournalMaxSize != 0 && a.JournalMaxSize < minJournalSize {
		d.problem(b.at("journal_max_size"), "must be 0 (no journal) or at least %d bytes, got %d", minJournalSize, a.JournalMaxSize)
	}
	return a
}

// labels returns the labels of a labelled block in file order, followed by
// labels only the environment introduced, sorted.
func (d *decoder) labels(block string, v any, fileOrder []string) ([]string, map[string]any) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.problem([]string{block}, "want labelled blocks like %s, got %s", labelExample(block), describe(v))
		return nil, nil
	}
	var out []string
	for _, l := range fileOrder {
		if _, ok := m[l]; ok {
			out = append(out, l)
		}
	}
	for _, l := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out, m
}
