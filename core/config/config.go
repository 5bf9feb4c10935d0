// Package config loads and validates koi's config.hcl.
//
// The file is HCL (v1, read through koanf). Its shape is the contract in
// koi's design sketch (architecture.md, "The config"): log, listen "label",
// tls, plugin "label", host "domain", and the optional limits and server
// blocks. Every problem in a file is reported at once, each naming its key
// the way the file writes it, like `host "localhost".roster: no plugin "stor"`.
//
// # Environment
//
// Every key can be overridden by an environment variable named KOI_, then
// the path to the key with segments joined by a double underscore:
//
//	KOI_LOG__LEVEL=debug
//	KOI_TLS__CERT_FILE=/etc/koi/cert.pem
//	KOI_LISTEN__C2S__ADDRESS=0.0.0.0:5222
//	KOI_PLUGIN__STORE__CONFIG__DSN=/var/lib/koi.db
//	KOI_HOST__EXAMPLE.COM__REGISTRATION=true
//	KOI_LIMITS__MAX_STANZA_SIZE=65536
//
// Segments match blocks, labels and keys ignoring case, so a host label
// keeps its dots (there is no way to spell a dot as a separator). A label
// must name a block of the file: an override changes a block, it does not
// create one. Values are converted to the
// type of their key: booleans as strconv.ParseBool reads them, integers in
// decimal, durations like "5s", and lists (host auth, plugin args) as
// comma-separated strings, where an empty value gives an empty list. In a
// plugin's config block a value takes the type of the value it replaces,
// or stays a string.
//
// Every variable that starts with KOI_ and contains "__" after that prefix
// belongs to this package: one that names no key of the schema is reported
// like a typo in the file (KOI_LOG__LEVL: unknown key log.levl). KOI_
// variables without "__" are left alone for other uses. Relative paths set
// from the environment are resolved like those in the file.
package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// Config is koi's validated configuration.
type Config struct {
	Log       Log
	Listeners []Listener // in file order
	TLS       TLS
	Plugins   map[string]Plugin // by label
	Hosts     []Host            // in file order
	Limits    Limits
	SM        StreamManagement // block stream_management
	Server    Server
	Archive   Archive
	Push      Push
	PubSub    PubSub
	Admin     Admin
	Metrics   Metrics
	Cluster   Cluster

	// Components are the external components (XEP-0114) allowed to
	// connect to a component listener (blocks component "domain"), in
	// file order.
	Components []Component
	MUC        MUC
	TURN       TURN
	Contact    Contact
}

// Log configures the server's log (block log).
type Log struct {
	Level  string // trace, debug, info (default), warn or error
	Format string // text (default) or json
}

// Listener is a client listener (block listen "label").
type Listener struct {
	Name string // the label
	// Type is "c2s" (plain TCP upgraded with STARTTLS), "c2s_tls" (TLS
	// from the first byte, XEP-0368), "websocket" (RFC 7395 over HTTP,
	// with XEP-0156 host-meta) or "component" (XEP-0114 external
	// components). It defaults to the label when the label is one of those.
	Type     string
	Address  string // host:port; required
	StartTLS string // for c2s: "required" (default), "optional" or "disabled"; "" otherwise
	// Keepalive (key keepalive, every type) is what is sent on a link
	// silent for KeepaliveInterval: "whitespace" (the default, also
	// ""), "ping" (XEP-0199, closing with connection-timeout after
	// PingTimeout without an answer) or "off".
	Keepalive         string
	KeepaliveInterval time.Duration // key keepalive_interval; 0: limits.keepalive_interval
	PingTimeout       time.Duration // key ping_timeout, only with keepalive = "ping"; 0: the default, 30s

	// TLS (key tls, websocket and component) serves https/wss on a
	// websocket listener, and TLS from the first byte on a component
	// listener, with the tls block's certificate; default false.
	TLS bool

	// The keys of a websocket listener; zero for the others.
	Path string // key path: where the WebSocket endpoint is served, default "/xmpp-websocket"
	// PublicURL (key public_url) is the WebSocket URL that host-meta
	// advertises, for a listener behind a proxy ("wss://chat.example.com/ws").
	// "" builds it from the request's Host, the TLS setting and Path.
	PublicURL string
	// Origins (key origins) are the web origins, besides the listener's
	// own, whose pages may open the WebSocket: host patterns as browsers
	// send them in Origin ("chat.example.com", "*.example.com",
	// "localhost:8080"). Empty: same origin only.
	Origins []string
}

// TLS names the server's certificate (block tls).
type TLS struct {
	CertFile   string // default data/tls/cert.pem
	KeyFile    string // default data/tls/key.pem
	MinVersion string // "1.2" (default) or "1.3"
	MaxVersion string // "1.3" (default) or "1.2"; not below MinVersion
}

// Plugin is a backend plugin process (block plugin "label").
type Plugin struct {
	Name    string // the label
	Command string // path of the executable; required
	Args    []string
	SHA256  string // optional, 64 lowercase hex digits: refuse a binary that does not match
	// Config is the plugin's config block, any shape, passed to the plugin
	// as JSON. Never nil.
	Config      map[string]any
	CallTimeout time.Duration // key call_timeout, default 5s
	// Dir is the working directory the plugin runs in: the config file's
	// directory, so that relative paths in Config (a SQLite dsn, a CA
	// file) are relative to the config file like koi's own. "" (Parse)
	// leaves it koi's working directory. Not a key of the block.
	Dir string
	// Reattach, when set (key reattach), makes koi attach to a plugin
	// process already running in the SDK's debug mode instead of starting
	// Command; Command, Args and SHA256 are then unused.
	Reattach *PluginReattach
}

// PluginReattach is where a plugin started by hand in debug mode listens:
// the line such a plugin prints, reattach = { pid = 4242, network = "unix",
// address = "/tmp/plugin123", protocol_version = 1 }.
type PluginReattach struct {
	Pid             int
	Network         string // "unix" or "tcp"
	Address         string // socket path, or host:port for tcp
	ProtocolVersion int
}

// DefaultTokenLifetime is how long a FAST token works unless a host's
// token_lifetime says otherwise: 21 days, Prosody's default.
const DefaultTokenLifetime = 21 * 24 * time.Hour

// Host is a virtual host (block host "domain"). A feature names the plugin
// that serves it; "" turns the feature off for the host.
type Host struct {
	Name                                     string   // the label, lowercased
	Auth                                     []string // plugins asked in order; auth = "store" or ["directory", "store"]
	Roster, Offline, VCard, Private, Archive string
	Blocklist                                string // XEP-0191 blocking command
	// PubSub names the plugin that stores publish-subscribe nodes and
	// items: PEP on the host's accounts (XEP-0163) and its pubsub service
	// (XEP-0060); "" turns both off.
	PubSub string
	// Tokens names the plugin that stores FAST login tokens (XEP-0484);
	// "" turns SASL2's FAST off for the host (SASL2 and Bind 2 stay).
	Tokens string
	// TokenLifetime is key token_lifetime: how long a FAST token works
	// after it is issued, default 504h (21 days, as Prosody).
	TokenLifetime  time.Duration
	SharedRoster   string // key shared_roster: a read-only roster (a directory's groups) merged into each user's
	Registration   bool   // XEP-0077 in-band registration, default false
	PasswordChange bool   // key password_change, default true
	OfflineLimit   int    // key offline_limit: messages kept per user, default 100
	// MUC (key muc) names the plugin that keeps the host's persistent
	// chat rooms and their affiliations; "" keeps them in memory only,
	// until a restart.
	MUC string
	// MUCDomain (key muc_domain) is the domain of the host's multi-user
	// chat service, default "conference.<host>"; "" gives the host none.
	// Ignored when the muc block turns the service off.
	MUCDomain string
	// ChannelBinding is key channel_binding: "prefer" (default) offers the
	// SCRAM -PLUS mechanisms next to the others, "require" offers only them
	// (a client that cannot bind cannot log in), "off" never binds.
	ChannelBinding string
	Upload         *Upload // block upload: HTTP File Upload (XEP-0363); nil: off
	// Admins (key admins) are the bare JIDs that run the service
	// administration commands (XEP-0133) on the host from their clients.
	Admins []string
}

// MinComponentSecret is the shortest component secret accepted: the
// handshake (XEP-0114) is a SHA-1 of the stream id and the secret, sent in
// the clear on a plain listener, so a short secret falls to an offline
// guess from one captured handshake.
const MinComponentSecret = 16

// Component is an external component (block component "domain"): a
// gateway or bot that connects to a component listener and serves the
// domain.
type Component struct {
	Name string // the label, lowercased: the component's domain
	// Secret is the shared secret of the handshake, from key secret or
	// read from the file named by key secret_file (trailing newline
	// dropped); at least MinComponentSecret characters.
	Secret string
	// Replace (key replace, default false) lets a new connection for a
	// connected domain take over, closing the old one with <conflict/>;
	// otherwise the new one is refused and the old one keeps serving.
	Replace bool
}

// Limits protects the server from clients (optional block limits). Zero
// turns off a timeout, the keepalive and the auth failure limits.
type Limits struct {
	MaxStanzaBytes         int64         // key max_stanza_size, default 262144
	MaxDepth               int           // key max_depth: XML nesting, default 64
	IdleTimeout            time.Duration // key idle_timeout, default 5m
	KeepaliveInterval      time.Duration // key keepalive_interval: whitespace ping, default 60s
	AuthFailuresPerIP      int           // key auth_failures_per_ip: wrong credentials per source address and window, default 100
	AuthFailuresPerAccount int           // key auth_failures_per_account: per account and source address, default 5
	AuthFailureWindow      time.Duration // key auth_failure_window, default 1m
	AuthSlowdownMax        time.Duration // key auth_slowdown_max: delay cap for an account failing from many addresses, default 5s
	RegistrationsPerIP     int           // key registrations_per_ip: in-band registrations per source address and window, default 10
	RegistrationWindow     time.Duration // key registration_window, default 1h
	SendQueue              int           // key send_queue: stanzas queued per session, default 1024
	// ConnectionsPerIP (key connections_per_ip, default 100) is how many
	// TCP connections one source address may open per RateWindow on a c2s
	// or c2s_tls listener; 0 turns it off. Loopback is not exempt.
	ConnectionsPerIP int
	// LoginsPerIP (key logins_per_ip, default 100) is how many SASL
	// attempts, right or wrong, one source address may start per
	// RateWindow; 0 turns it off.
	LoginsPerIP int
	RateWindow  time.Duration // key rate_window: the window of both rates, default 10s
	// HandshakeConcurrency (key handshake_concurrency) is how many TLS
	// handshakes and SASL verifications run at once; 0 (default) means
	// half the CPUs koi may use, at least 1.
	HandshakeConcurrency int
	HandshakeQueue       int           // key handshake_queue: how many may wait for one, default 1000
	HandshakeWait        time.Duration // key handshake_wait: the longest one may wait, default 10s
}

// StreamManagement configures XEP-0198 (optional block stream_management).
type StreamManagement struct {
	Enabled bool // key enabled, default true
	// ResumeTimeout (key resume_timeout, default 300s) is how long a
	// session whose connection dropped is kept for a resumption; "0s"
	// offers acknowledgements without resumption.
	ResumeTimeout time.Duration
	// MaxQueue (key max_queue, default 1024, like limits.send_queue) bounds
	// the stanzas kept unacknowledged per session.
	MaxQueue int
	// RequestAckEvery (key request_ack_every, default 5) sends <r/> after
	// that many stanzas; 0 never asks.
	RequestAckEvery int
}

// Cluster joins koi nodes over NATS (optional block cluster); off unless
// nats_url is set, and then every node needs a distinct node name.
type Cluster struct {
	NATSURL string        // key nats_url: "nats://host:4222" (several comma-separated)
	Node    string        // key node: this node's name, [A-Za-z0-9_-], default the host name
	Lease   time.Duration // key lease: how long a silent node counts as alive, default 10s
	// Name (key name, default "koi") keeps clusters that share one NATS
	// apart: it prefixes the subjects and the registry bucket.
	Name string
	// OutboxMaxSize (key outbox_max_size, bytes, default 64 MiB) bounds
	// the stanzas this node forwarded to one other node and that node has
	// not acknowledged yet; beyond it they are handled as undelivered
	// (offline storage) at once, not when the node's lease runs out.
	OutboxMaxSize int64
}

// On reports whether the cluster block turns clustering on.
func (c Cluster) On() bool { return c.NATSURL != "" }

// Metrics is the Prometheus endpoint (optional block metrics), off unless
// an address is set: it tells anyone who can reach it how busy the
// server is.
type Metrics struct {
	Address string // key address: host:port to serve on; "" = off
	Path    string // key path: default "/metrics"
}

// Server holds process-wide settings (optional block server).
type Server struct {
	ShutdownTimeout time.Duration // key shutdown_timeout, default 10s
	DataDir         string        // key data_dir, default "data"
	Pprof           string        // host:port to serve net/http/pprof on; "" = off
}

// Archive tunes the writer that each host with an archive runs (optional
// block archive): a bounded queue in memory, sent to the plugin in batches,
// and a journal on disk for the batches the plugin cannot take.
type Archive struct {
	QueueSize     int           // key queue_size: messages held in memory, default 16384
	BatchSize     int           // key batch_size: messages per batch, default 256; at most queue_size
	BatchBytes    int           // key batch_bytes: bytes per batch, default 1048576 (1 MiB), at most 4194304
	FlushInterval time.Duration // key flush_interval: longest wait for a batch to fill, default 10ms
	MaxInFlight   int           // key max_in_flight: batches awaiting acknowledgement, default 64
	BlockTimeout  time.Duration // key block_timeout: a sender's wait for room before resource-constraint, default 2s
	// JournalDir (key journal_dir) holds one journal file per host,
	// default DATA_DIR/archive-journal.
	JournalDir string
	// JournalMaxSize (key journal_max_size) bounds each host's journal in
	// bytes, default 1073741824 (1 GiB); 0 turns the journal off.
	JournalMaxSize int64
}

// Admin configures the administration API (optional block admin; see
// core/admin). It is off unless address is set.
type Admin struct {
	// Address (key address) is host:port of the API's listener; "" = off.
	// Anyone who can reach it and knows the token administers koi: keep it
	// on loopback or a management network.
	Address string
	// Token (key token) is the bearer token every call must carry, at
	// least 16 characters; set it from the environment (KOI_ADMIN__TOKEN)
	// rather than in the file.
	Token string
	// TLS (key tls) serves https with the tls block's certificate.
	TLS bool
}

// Push configures push notifications, XEP-0357 (optional block push). The
// app server that relays a notification to a phone is a third party, so by
// default it learns only that there is a new message.
type Push struct {
	Enabled bool // key enabled, default true
	// IncludeBody (key include_body) sends the message's text, default false.
	IncludeBody bool
	// IncludeSender (key include_sender) sends the sender's JID, default false.
	IncludeSender bool
	// BodyPlaceholder (key body_placeholder) is sent as the body of a
	// message with one while include_body is false, default "New message":
	// iOS apps show a notification only for a push with a body. "" sends none.
	BodyPlaceholder  string
	MaxRegistrations int           // key max_registrations: per account, default 5; the oldest goes when one more is enabled
	MaxErrors        int           // key max_errors: error replies in a row before a registration is dropped, default 16
	Interval         time.Duration // key interval: at most one notification per registration this often, default 5s; 0 sends each
}

// MUC configures multi-user chat, XEP-0045 (optional block muc): one
// service per host, on the host's muc_domain. On by default, as in
// ejabberd: clients look for a conference service and users expect to
// create rooms.
type MUC struct {
	Enabled bool // key enabled, default true
	// RoomCreation (key room_creation) is who may create rooms: "all"
	// (default: any user of this server), "host" (users of the service's
	// own host) or "admins" (only those in Admins).
	RoomCreation string
	// Admins (key admins) are bare JIDs that own every room: they enter,
	// configure and destroy any room.
	Admins          []string
	MaxHistory      int           // key max_history: the most messages a room may give newcomers, default 100
	MaxOccupants    int           // key max_occupants: per room, default 1000; 0: no bound
	MaxRooms        int           // key max_rooms: per service, default 0 (no bound)
	MaxRoomsPerUser int           // key max_rooms_per_user: rooms a user created that still exist, default 100; 0: no bound
	JoinRate        int           // key join_rate: rooms one user may enter per join_window, default 200 (a client rejoining its bookmarked rooms at every reconnect stays well under it); 0: no bound
	JoinWindow      time.Duration // key join_window, default 1m
	LockTimeout     time.Duration // key lock_timeout: a new room waits this long for its configuration, default 5m; 0: until configured
	Defaults        MUCRoomDefaults
}

// MUCRoomDefaults is the configuration of new rooms (keys default_* of the
// muc block); owners change it with the room configuration form.
type MUCRoomDefaults struct {
	Public      bool   // key default_public: listed in the room list, default true
	Persistent  bool   // key default_persistent: kept when empty, default false
	MembersOnly bool   // key default_members_only, default false
	Moderated   bool   // key default_moderated: only occupants with voice speak, default false
	WhoIs       string // key default_whois: who sees real JIDs, "moderators" (default) or "anyone"
	AllowPM     string // key default_allow_pm: "anyone" (default), "participants", "moderators" or "none"
	History     int    // key default_history: messages a newcomer gets, default 20; at most max_history
	// Logging (key default_logging, default true, as Prosody's
	// muc_log_by_default) keeps the room's messages in the host's archive
	// (XEP-0313 on rooms) when the host's archive is on.
	Logging bool
}

// PubSub configures PEP on every account (XEP-0163) and the pubsub
// service (XEP-0060) (optional block pubsub). Nodes are stored by each
// host's pubsub backend, in memory for a host without one.
type PubSub struct {
	// Service (key service, default true) serves pubsub.<host> for each
	// host; PEP is always on.
	Service         bool
	MaxItems        int // key max_items: the largest pubsub#max_items of a node ("max"), default 256
	DefaultMaxItems int // key default_max_items: max_items of a new node of the service, default 10 (PEP nodes: 1)
	MaxNodes        int // key max_nodes: PEP nodes per account, and service nodes a user may own, default 100
	MaxItemBytes    int // key max_item_size: bytes of one item's payload, default 131072
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key names the key as the file writes it, like `host "example.com".roster`,
	// `plugin "store".command` or `limits.max_stanza_size`; or the
	// environment variable whose name is wrong.
	Key string
	Msg string
}

// Errors is every problem found in a configuration.
type Errors []Problem

// Error returns one line per problem: "<key>: <msg>".
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		if p.Key == "" {
			lines[i] = p.Msg
		} else {
			lines[i] = p.Key + ": " + p.Msg
		}
	}
	return strings.Join(lines, "\n")
}

// Load reads the config file at path, applies the KOI_ variables of
// environ (in the form of os.Environ) and validates the result. Relative
// paths in it (plugin commands, TLS files, data_dir) are resolved against
// the file's directory. When the file parses but is wrong, the error is an
// Errors with every problem; an unreadable file or an HCL syntax error
// gives a plain error.
func Load(path string, environ []string) (*Config, error) {
	src, err := file.Provider(path).ReadBytes()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := load(src, filepath.Dir(path), environ)
	if err != nil {
		if _, ok := err.(Errors); !ok {
			err = fmt.Errorf("config %s: %w", path, err)
		}
		return nil, err
	}
	return cfg, nil
}

// Parse is Load for a config held in memory; relative paths stay as given.
func Parse(src []byte, environ []string) (*Config, error) {
	cfg, err := load(src, "", environ)
	if err != nil {
		if _, ok := err.(Errors); !ok {
			err = fmt.Errorf("config: %w", err)
		}
		return nil, err
	}
	return cfg, nil
}

// load returns an Errors for a config with problems, and another error when
// src is not HCL.
func load(src []byte, baseDir string, environ []string) (*Config, error) {
	parser := newHCLParser()
	k := koanf.NewWithConf(koanf.Conf{Delim: delim})
	if err := k.Load(bytesProvider(src), parser); err != nil {
		return nil, err
	}
	probs := parser.probs

	sets, envProbs := resolveEnv(k.Raw(), environ)
	probs = append(probs, envProbs...)
	origin := make(map[string]string, len(sets))
	for _, s := range sets {
		key := strings.Join(s.path, delim)
		if err := k.Set(key, s.value); err != nil {
			return nil, fmt.Errorf("apply %s: %w", s.name, err)
		}
		origin[key] = s.name
	}

	d := &decoder{baseDir: baseDir, origin: origin}
	cfg := d.decode(k.Raw(), parser.order)
	probs = append(probs, d.probs...)
	if len(probs) > 0 {
		return nil, probs
	}
	return cfg, nil
}

// bytesProvider is a koanf.Provider for a config already in memory.
type bytesProvider []byte

func (b bytesProvider) ReadBytes() ([]byte, error) { return b, nil }

func (b bytesProvider) Read() (map[string]any, error) {
	return nil, errors.New("config: bytesProvider needs a parser")
}
