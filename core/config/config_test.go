package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// contractSample is the config in docs/architecture.md ("The config
// (contract)"), verbatim.
const contractSample = `log { level = "info"  format = "text" }          # or "json"

listen "c2s"     { address = "127.0.0.1:5222"  starttls = "required" }  # "optional" | "disabled"
listen "c2s_tls" { address = "127.0.0.1:5223" }                          # direct TLS, XEP-0368

tls { cert_file = "data/tls/cert.pem"  key_file = "data/tls/key.pem" }  # made on first run if absent

plugin "store" {
  command = "bin/plugins/koi-backend-sql"
  # sha256 = "…"                                  # optional: refuse a binary that doesn't match
  config  = { driver = "sqlite"  dsn = "data/koi.db" }
}
plugin "directory" {
  command = "bin/plugins/koi-backend-ldap"
  config  = { url = "ldaps://dc1.corp.example:636"  base_dn = "dc=corp,dc=example"
              bind_dn = "cn=koi,ou=svc,dc=corp,dc=example"  bind_password = "…"
              user_filter = "(&(objectClass=user)(sAMAccountName={user}))" }
}

host "localhost" {
  auth    = "store"          # each feature names a plugin block
  roster  = "store"
  offline = "store"
  vcard   = "store"
  private = "store"
  blocklist = "store"
  archive = "store"          # omit a feature to turn it off for this host
  registration = false       # XEP-0077
}
`

func defaultSM() StreamManagement {
	return StreamManagement{Enabled: true, ResumeTimeout: 300 * time.Second, MaxQueue: 1024, RequestAckEvery: 5}
}

// stream_management: defaults, the keys read, and each bad value named.
func TestStreamManagement(t *testing.T) {
	base := base + `host "localhost" { auth = "store" }` + "\n"
	got, err := Parse([]byte(base+`stream_management { enabled = false  resume_timeout = "0s"  max_queue = 50  request_ack_every = 0 }`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (StreamManagement{MaxQueue: 50}); got.SM != want {
		t.Fatalf("got %+v, want %+v", got.SM, want)
	}
	for _, tc := range []struct{ body, want string }{
		{`max_queue = 0`, "stream_management.max_queue: must be greater than 0"},
		{`resume_timeout = "-1s"`, `stream_management.resume_timeout: must not be negative`},
		{`resume_timeout = 300`, `stream_management.resume_timeout: want a duration string`},
		{`request_ack_every = -1`, "stream_management.request_ack_every: must not be negative"},
		{`enabled = "yes"`, "stream_management.enabled: want true or false"},
		{`resume = "5m"`, "stream_management.resume: unknown key"},
	} {
		_, err := Parse([]byte(base+"stream_management { "+tc.body+" }"), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.body, err, tc.want)
		}
	}
}

func defaultLimits() Limits {
	return Limits{
		MaxStanzaBytes: 262144, MaxDepth: 64, IdleTimeout: 5 * time.Minute,
		KeepaliveInterval: time.Minute, AuthFailuresPerIP: 100, AuthFailuresPerAccount: 5,
		AuthFailureWindow: time.Minute, AuthSlowdownMax: 5 * time.Second, RegistrationsPerIP: 10, RegistrationWindow: time.Hour,
		SendQueue: 1024, ConnectionsPerIP: 100, LoginsPerIP: 100, RateWindow: 10 * time.Second,
		HandshakeQueue: 1000, HandshakeWait: 10 * time.Second,
	}
}

func defaultArchive() Archive {
	return Archive{
		QueueSize: 16384, BatchSize: 256, BatchBytes: 1 << 20, FlushInterval: 10 * time.Millisecond,
		MaxInFlight: 64, BlockTimeout: 2 * time.Second, JournalDir: "data/archive-journal", JournalMaxSize: 1 << 30,
	}
}

func defaultPush() Push {
	return Push{Enabled: true, BodyPlaceholder: "New message", MaxRegistrations: 5, MaxErrors: 16, Interval: 5 * time.Second}
}

func defaultMUC() MUC {
	return MUC{
		Enabled: true, RoomCreation: "all", MaxHistory: 100, MaxOccupants: 1000, MaxRoomsPerUser: 100,
		JoinRate: 200, JoinWindow: time.Minute, LockTimeout: 5 * time.Minute,
		Defaults: MUCRoomDefaults{Public: true, WhoIs: "moderators", AllowPM: "anyone", History: 20, Logging: true},
	}
}

func defaultPubSub() PubSub {
	return PubSub{Service: true, MaxItems: 256, DefaultMaxItems: 10, MaxNodes: 100, MaxItemBytes: 131072}
}

func defaultServer() Server {
	return Server{ShutdownTimeout: 10 * time.Second, DataDir: "data"}
}

func TestContractSample(t *testing.T) {
	got, err := Parse([]byte(contractSample), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Config{
		Log: Log{Level: "info", Format: "text"},
		Listeners: []Listener{
			{Name: "c2s", Type: "c2s", Address: "127.0.0.1:5222", StartTLS: "required"},
			{Name: "c2s_tls", Type: "c2s_tls", Address: "127.0.0.1:5223"},
		},
		TLS: TLS{CertFile: "data/tls/cert.pem", KeyFile: "data/tls/key.pem", MinVersion: "1.2", MaxVersion: "1.3"},
		Plugins: map[string]Plugin{
			"store": {
				Name: "store", Command: "bin/plugins/koi-backend-sql",
				Config:      map[string]any{"driver": "sqlite", "dsn": "data/koi.db"},
				CallTimeout: 5 * time.Second,
			},
			"directory": {
				Name: "directory", Command: "bin/plugins/koi-backend-ldap",
				Config: map[string]any{
					"url": "ldaps://dc1.corp.example:636", "base_dn": "dc=corp,dc=example",
					"bind_dn": "cn=koi,ou=svc,dc=corp,dc=example", "bind_password": "…",
					"user_filter": "(&(objectClass=user)(sAMAccountName={user}))",
				},
				CallTimeout: 5 * time.Second,
			},
		},
		Hosts: []Host{{
			Name: "localhost", Auth: []string{"store"}, Roster: "store", Offline: "store",
			VCard: "store", Private: "store", Archive: "store", Blocklist: "store", PasswordChange: true, OfflineLimit: 100, ChannelBinding: "prefer",
			TokenLifetime: DefaultTokenLifetime, MUCDomain: "conference.localhost",
		}},
		Limits:  defaultLimits(),
		SM:      defaultSM(),
		Server:  defaultServer(),
		Archive: defaultArchive(),
		Push:    defaultPush(),
		PubSub:  defaultPubSub(),
		Metrics: Metrics{Path: "/metrics"},
		MUC:     defaultMUC(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%#v\nwant\n%#v", got, want)
	}
}

func exampleConfig() *Config {
	return &Config{
		Log: Log{Level: "info", Format: "text"},
		Listeners: []Listener{
			{Name: "c2s", Type: "c2s", Address: "127.0.0.1:5222", StartTLS: "required"},
			{Name: "c2s_tls", Type: "c2s_tls", Address: "127.0.0.1:5223"},
		},
		TLS: TLS{CertFile: "data/tls/cert.pem", KeyFile: "data/tls/key.pem", MinVersion: "1.2", MaxVersion: "1.3"},
		Plugins: map[string]Plugin{"store": {
			Name: "store", Command: "bin/plugins/koi-backend-sql",
			Config:      map[string]any{"driver": "sqlite", "dsn": "data/koi.db"},
			CallTimeout: 5 * time.Second,
		}},
		Hosts: []Host{{
			Name: "localhost", Auth: []string{"store"}, Roster: "store", Offline: "store",
			VCard: "store", Private: "store", Blocklist: "store", Tokens: "store", MUC: "store", PubSub: "store", PasswordChange: true, OfflineLimit: 100, ChannelBinding: "prefer",
			TokenLifetime: DefaultTokenLifetime, MUCDomain: "conference.localhost",
		}},
		Limits:  defaultLimits(),
		SM:      defaultSM(),
		Server:  defaultServer(),
		Archive: defaultArchive(),
		Push:    defaultPush(),
		PubSub:  defaultPubSub(),
		Metrics: Metrics{Path: "/metrics"},
		MUC:     defaultMUC(),
	}
}

func TestExample(t *testing.T) {
	got, err := Parse([]byte(Example()), nil)
	if err != nil {
		t.Fatalf("Parse(Example()): %v", err)
	}
	if want := exampleConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%#v\nwant\n%#v", got, want)
	}
}

// The example documents the limits and server defaults in comments; they
// must be what the decoder uses.
func TestExampleCommentedDefaults(t *testing.T) {
	var lines []string
	for _, l := range strings.Split(Example(), "\n") {
		for _, p := range []string{"# limits {", "#          ", "# server {", "# archive {", "# push {", "#        ", "# stream_management {", "# muc {", "# pubsub {"} {
			if strings.HasPrefix(l, p) {
				l = strings.TrimPrefix(l, "#")
			}
		}
		lines = append(lines, l)
	}
	src := strings.Join(lines, "\n")
	if !strings.Contains(src, "\n limits {") || !strings.Contains(src, "\n server {") || !strings.Contains(src, "\n push {") || !strings.Contains(src, "\n stream_management {") || !strings.Contains(src, "\n muc {") {
		t.Fatalf("example no longer shows limits and server:\n%s", src)
	}
	got, err := Parse([]byte(src), nil)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, src)
	}
	if want := exampleConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%#v\nwant\n%#v", got, want)
	}
}

// The repository's config.hcl is Example(), and Load resolves its relative
// paths against its directory.
func TestRepoConfigFile(t *testing.T) {
	path := filepath.Join("..", "..", "config.hcl")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != Example() {
		t.Errorf("%s differs from Example(); regenerate it", path)
	}
	got, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	root := filepath.Join("..", "..")
	if want := filepath.Join(root, "bin/plugins/koi-backend-sql"); got.Plugins["store"].Command != want {
		t.Errorf("command = %q, want %q", got.Plugins["store"].Command, want)
	}
	if want := filepath.Join(root, "data/tls/cert.pem"); got.TLS.CertFile != want {
		t.Errorf("cert_file = %q, want %q", got.TLS.CertFile, want)
	}
}

func TestLoadPaths(t *testing.T) {
	dir := t.TempDir()
	src := `
listen "c2s" { address = "127.0.0.1:5222" }
tls { cert_file = "/etc/koi/cert.pem" }
plugin "store" { command = "plugins/sql"  config = { dsn = "data/koi.db" } }
host "localhost" { auth = "store" }
server { data_dir = "var" }
`
	path := filepath.Join(dir, "koi.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path, []string{"KOI_TLS__KEY_FILE=keys/key.pem"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"command", got.Plugins["store"].Command, filepath.Join(dir, "plugins/sql")},
		{"cert_file (absolute)", got.TLS.CertFile, "/etc/koi/cert.pem"},
		{"key_file (from env)", got.TLS.KeyFile, filepath.Join(dir, "keys/key.pem")},
		{"data_dir", got.Server.DataDir, filepath.Join(dir, "var")},
		// A plugin's config is the plugin's business: passed as written,
		// and the plugin runs in the config file's directory, where a
		// relative path in it then resolves.
		{"plugin config", got.Plugins["store"].Config["dsn"].(string), "data/koi.db"},
		{"plugin dir", got.Plugins["store"].Dir, dir},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}

	// Parse keeps paths as given.
	p, err := Parse([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Plugins["store"].Command != "plugins/sql" || p.Server.DataDir != "var" {
		t.Errorf("Parse resolved paths: %q %q", p.Plugins["store"].Command, p.Server.DataDir)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "missing.hcl"), nil)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.hcl") {
		t.Errorf("missing file: got %v", err)
	}
	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("log {\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, nil); err == nil || !strings.HasPrefix(err.Error(), "config "+bad+": At 2:") {
		t.Errorf("syntax error: got %v", err)
	}
	// Problems come back as Errors, not wrapped, so callers can list them.
	wrong := filepath.Join(dir, "wrong.hcl")
	if err := os.WriteFile(wrong, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(wrong, nil); err == nil || err.Error() != "host: missing: at least one host block is required, like host \"example.com\" { auth = \"store\" }" {
		t.Errorf("problems: got %v", err)
	}
	for _, src := range []string{
		`log { level = "info" `,
		`listen "c2s" { address = }`,
		`host "x" { auth = ["a", }`,
		"\x00",
		// HCL v1 cannot decode a labelled and an unlabelled block of one name.
		`host "a" {}` + "\n" + `host { auth = "store" }`,
	} {
		_, err := Parse([]byte(src), nil)
		var errs Errors
		if err == nil || errors.As(err, &errs) || !strings.HasPrefix(err.Error(), "config: ") {
			t.Errorf("Parse(%q) = %v, want a syntax error", src, err)
		}
	}
}

// base is a valid config the problem cases add to.
const base = `
listen "c2s" { address = "127.0.0.1:5222" }
plugin "store" { command = "bin/plugins/koi-backend-sql" }
`

func TestProblems(t *testing.T) {
	host := `host "localhost" { auth = "store" }` + "\n"
	tests := []struct {
		name string
		src  string
		env  []string
		want []string // "<key>: <start of msg>", in order
	}{
		{"typo in host", base + `host "localhost" { auth = "store"  roser = "store" }`, nil,
			[]string{`host "localhost".roser: unknown key (did you mean roster?)`}},
		{"tokens names no plugin", base + `host "localhost" { auth = "store"  tokens = "nope" }`, nil,
			[]string{`host "localhost".tokens: no plugin "nope"`}},
		{"tokens without auth", base + `host "localhost" { tokens = "store" }`, nil,
			[]string{`host "localhost".tokens: needs auth`}},
		{"token lifetime zero", base + `host "localhost" { auth = "store"  token_lifetime = "0s" }`, nil,
			[]string{`host "localhost".token_lifetime:`}},
		{"token lifetime not a duration", base + `host "localhost" { auth = "store"  token_lifetime = "21d" }`, nil,
			[]string{`host "localhost".token_lifetime: want a duration`}},
		{"muc names no plugin", base + `host "localhost" { auth = "store"  muc = "nope" }`, nil,
			[]string{`host "localhost".muc: no plugin "nope"`}},
		{"blocklist names no plugin", base + `host "localhost" { auth = "store"  blocklist = "nope" }`, nil,
			[]string{`host "localhost".blocklist: no plugin "nope"`}},
		{"muc domain is the host", base + `host "localhost" { auth = "store"  muc_domain = "localhost" }`, nil,
			[]string{`host "localhost".muc_domain: is the host's own domain`}},
		{"muc domain not a domain", base + `host "localhost" { auth = "store"  muc_domain = "con ference" }`, nil,
			[]string{`host "localhost".muc_domain: not a valid domain name`}},
		{"muc admin not a bare JID", base + host + `muc { admins = ["admin@localhost/pc", "localhost"] }`, nil,
			[]string{`muc.admins: want bare JIDs`, `muc.admins: want bare JIDs`}},
		{"muc room creation unknown", base + host + `muc { room_creation = "everyone" }`, nil,
			[]string{`muc.room_creation: want one of "all", "host", "admins"`}},
		{"muc history over max", base + host + `muc { max_history = 10  default_history = 20 }`, nil,
			[]string{`muc.default_history: must not exceed muc.max_history (10), got 20`}},
		{"muc whois unknown", base + host + `muc { default_whois = "nobody" }`, nil,
			[]string{`muc.default_whois: want one of "moderators", "anyone"`}},
		{"muc join window zero", base + host + `muc { join_window = "0s" }`, nil,
			[]string{`muc.join_window:`}},
		{"pubsub names no plugin", base + `host "localhost" { auth = "store"  pubsub = "nope" }`, nil,
			[]string{`host "localhost".pubsub: no plugin "nope"`}},
		{"pubsub not a string", base + `host "localhost" { auth = "store"  pubsub = true }`, nil,
			[]string{`host "localhost".pubsub: want a string, got bool true`}},
		{"metrics address not host:port", base + host + `metrics { address = "9100" }`, nil,
			[]string{`metrics.address:`}},
		{"metrics path relative", base + host + `metrics { address = "127.0.0.1:9100"  path = "metrics" }`, nil,
			[]string{`metrics.path: want an absolute URL path`}},
		{"unknown key in metrics", base + host + `metrics { listen = "127.0.0.1:9100" }`, nil,
			[]string{`metrics.listen: unknown key`}},
		{"unknown block", base + host + `hosts "x" {}`, nil,
			[]string{`hosts: unknown key (did you mean host?)`}},
		{"unknown key in log", base + host + `log { levle = "info" }`, nil,
			[]string{`log.levle: unknown key (did you mean level?)`}},
		{"unknown key in limits", base + host + `limits { max_stanzas = 1 }`, nil,
			[]string{`limits.max_stanzas: unknown key`}},
		{"unknown key in plugin", base + host + `plugin "x" { command = "x"  confg = {} }`, nil,
			[]string{`plugin "x".confg: unknown key (did you mean config?)`}},
		{"unknown key in listen", base + host + `listen "c2s_tls" { address = ":5223"  starttsl = "x" }`, nil,
			[]string{`listen "c2s_tls".starttsl: unknown key (did you mean starttls?)`}},

		{"level not a string", base + host + `log { level = 5 }`, nil,
			[]string{`log.level: want a string, got integer 5`}},
		{"bool as string", base + `host "localhost" { auth = "store"  registration = "yes" }`, nil,
			[]string{`host "localhost".registration: want true or false, got string "yes"`}},
		{"int as string", base + `host "localhost" { offline_limit = "100" }`, nil,
			[]string{`host "localhost".offline_limit: want an integer, got string "100"`}},
		{"int as float", base + host + `limits { max_stanza_size = 1.5 }`, nil,
			[]string{`limits.max_stanza_size: want an integer, got number 1.5`}},
		{"duration as number", base + host + `limits { idle_timeout = 5 }`, nil,
			[]string{`limits.idle_timeout: want a duration string like "5s", got integer 5`}},
		{"bad duration", base + host + `server { shutdown_timeout = "ten seconds" }`, nil,
			[]string{`server.shutdown_timeout: want a duration like "5s" or "1m30s", got "ten seconds"`}},
		{"auth not a string", base + `host "localhost" { auth = 5 }`, nil,
			[]string{`host "localhost".auth: want a string or a list of strings, got integer 5`}},
		{"auth list item", base + `host "localhost" { auth = ["store", true] }`, nil,
			[]string{`host "localhost".auth: item 2: want a string, got bool true`}},
		{"args not a list", host + `listen "c2s" { address = ":5222" } plugin "store" { command = "x"  args = "-v" }`, nil,
			[]string{`plugin "store".args: want a list of strings like ["-v"], got string "-v"`}},
		{"config not a block", host + `listen "c2s" { address = ":5222" } plugin "store" { command = "x"  config = "dsn" }`, nil,
			[]string{`plugin "store".config: want a block`}},
		{"block as string", base + host + `log = "debug"`, nil,
			[]string{`log: want a block, got string "debug"`}},
		{"block twice", base + host + `tls {} tls {}`, nil,
			[]string{`tls: want one block, got a list (is the block written twice?)`}},
		{"host not a block", base + `host = "localhost"`, nil,
			[]string{`host: want labelled blocks like host "example.com" { ... }, got string "localhost"`,
				`host: missing: at least one host block is required`}},
		{"host without label", base + `host { auth = "store" }`, nil,
			[]string{`host: block needs a label, like host "example.com" { ... }`,
				`host: missing: at least one host block is required`}},
		{"host twice", base + host + `host "LocalHost" { roster = "store" }`, nil,
			[]string{`host "localhost": defined twice`}},
		{"plugin twice, case-insensitively", base + host + `plugin "Store" { command = "x" }`, nil,
			[]string{`plugin "Store": defined twice (labels are case-insensitive: also "store")`}},

		{"no listener", `plugin "store" { command = "x" }` + host, nil,
			[]string{`listen: missing: at least one listen block is required`}},
		{"no host", base, nil,
			[]string{`host: missing: at least one host block is required`}},
		{"no plugin command", base + host + `plugin "dir" { args = [] }`, nil,
			[]string{`plugin "dir".command: missing: want the path of the plugin's executable (or reattach, for a plugin in debug mode)`}},
		{"empty plugin command", base + host + `plugin "dir" { command = "" }`, nil,
			[]string{`plugin "dir".command: must not be empty`}},
		{"listener without type", base + host + `listen "public" { address = ":5269" }`, nil,
			[]string{`listen "public".type: missing: the label is none of "c2s", "c2s_tls", "websocket"`}},
		{"listener bad type", base + host + `listen "public" { type = "s2s"  address = ":5269" }`, nil,
			[]string{`listen "public".type: want one of "c2s", "c2s_tls", "websocket", "component", got "s2s"`}},
		{"websocket with starttls", base + host + `listen "websocket" { address = ":5280"  starttls = "required" }`, nil,
			[]string{`listen "websocket".starttls: only for type "c2s": a websocket listener never offers STARTTLS`}},
		{"websocket relative path", base + host + `listen "websocket" { address = ":5280"  path = "xmpp" }`, nil,
			[]string{`listen "websocket".path: want an absolute URL path like "/xmpp-websocket", got "xmpp"`}},
		{"websocket path on host-meta", base + host + `listen "websocket" { address = ":5280"  path = "/.well-known/x" }`, nil,
			[]string{`listen "websocket".path: "/.well-known/x" is where host-meta (XEP-0156) is served`}},
		{"websocket tls not a bool", base + host + `listen "websocket" { address = ":5280"  tls = "yes" }`, nil,
			[]string{`listen "websocket".tls: want true or false`}},
		{"websocket public_url scheme", base + host + `listen "websocket" { address = ":5280"  public_url = "https://chat.example.com/ws" }`, nil,
			[]string{`listen "websocket".public_url: want a ws:// or wss:// URL, got "https://chat.example.com/ws"`}},
		{"websocket public_url without host", base + host + `listen "websocket" { address = ":5280"  public_url = "wss:///ws" }`, nil,
			[]string{`listen "websocket".public_url: want a URL with a host`}},
		{"websocket origins", base + host + `listen "websocket" { address = ":5280"  origins = ["https://chat.example.com", "[a-", ""] }`, nil,
			[]string{`listen "websocket".origins: want a host pattern as in the Origin header without its scheme, like "chat.example.com"`,
				`listen "websocket".origins: bad pattern "[a-": syntax error in pattern`,
				`listen "websocket".origins: an empty origin pattern matches nothing`}},
		{"origins on c2s", base + host + `listen "other" { type = "c2s"  address = ":5225"  origins = ["x"] }`, nil,
			[]string{`listen "other".origins: only for type "websocket"`}},
		{"path on c2s", base + host + `listen "c2s_tls" { address = ":5223"  path = "/ws" }`, nil,
			[]string{`listen "c2s_tls".path: only for type "websocket"`}},
		{"tls on c2s", base + host + `listen "x" { type = "c2s"  address = ":5224"  tls = true }`, nil,
			[]string{`listen "x".tls: only for types "websocket" and "component"`}},
		{"listener without address", base + host + `listen "c2s_tls" {}`, nil,
			[]string{`listen "c2s_tls".address: missing: want host:port`}},
		{"listener bad address", base + host + `listen "c2s_tls" { address = "localhost" }`, nil,
			[]string{`listen "c2s_tls".address: want host:port, like 127.0.0.1:5222, got "localhost"`}},
		{"listener bad port", base + host + `listen "c2s_tls" { address = "127.0.0.1:70000" }`, nil,
			[]string{`listen "c2s_tls".address: want a port from 1 to 65535, got "127.0.0.1:70000"`}},
		{"bad starttls", base + host + `listen "x" { type = "c2s"  address = ":1"  starttls = "maybe" }`, nil,
			[]string{`listen "x".starttls: want one of "required", "optional", "disabled", got "maybe"`}},
		{"starttls on c2s_tls", base + host + `listen "c2s_tls" { address = ":5223"  starttls = "required" }`, nil,
			[]string{`listen "c2s_tls".starttls: only for type "c2s"`}},
		{"duplicate address", base + host + `listen "c2s_tls" { address = "127.0.0.1:5222" }`, nil,
			[]string{`listen "c2s_tls".address: "127.0.0.1:5222" is already used by listen "c2s"`}},

		{"feature names a missing plugin", base + `host "localhost" { auth = "store"  roster = "stor" }`, nil,
			[]string{`host "localhost".roster: no plugin "stor" (defined: "store")`}},
		{"auth names a missing plugin", base + `plugin "directory" { command = "x" }` +
			`host "localhost" { auth = ["directory", "ldap"] }`, nil,
			[]string{`host "localhost".auth: no plugin "ldap" (defined: "directory", "store")`}},
		{"no plugins at all", `listen "c2s" { address = ":5222" }` + `host "localhost" { archive = "store" }`, nil,
			[]string{`host "localhost".archive: no plugin "store" (there are no plugin blocks)`}},
		{"feature case differs", base + `host "localhost" { auth = "Store" }`, nil,
			[]string{`host "localhost".auth: no plugin "Store" (defined: "store")`}},

		{"host with underscore", base + `host "bad_name" {}`, nil,
			[]string{`host "bad_name": not a valid domain name`}},
		{"host with space", base + `host "exa mple.com" {}`, nil,
			[]string{`host "exa mple.com": not a valid domain name`}},
		{"host with empty label", base + `host "a..b" {}`, nil,
			[]string{`host "a..b": not a valid domain name`}},
		{"host with hyphen", base + `host "-x.example" {}`, nil,
			[]string{`host "-x.example": not a valid domain name`}},
		{"host with trailing dot", base + `host "example.com." {}`, nil,
			[]string{`host "example.com.": not a valid domain name: remove the trailing dot`}},
		{"host empty", base + `host "" {}`, nil,
			[]string{`host "": not a valid domain name: empty`}},
		{"host label too long", base + `host "` + strings.Repeat("a", 64) + `.example" {}`, nil,
			[]string{`host "` + strings.Repeat("a", 64) + `.example": not a valid domain name`}},

		{"sha256 short", base + host + `plugin "x" { command = "x"  sha256 = "abc" }`, nil,
			[]string{`plugin "x".sha256: want a SHA-256 digest as 64 hex digits, got "abc"`}},
		{"sha256 not hex", base + host + `plugin "x" { command = "x"  sha256 = "` + strings.Repeat("g", 64) + `" }`, nil,
			[]string{`plugin "x".sha256: want a SHA-256 digest as 64 hex digits`}},

		{"bad log level", base + host + `log { level = "verbose" }`, nil,
			[]string{`log.level: want one of "trace", "debug", "info", "warn", "error", got "verbose"`}},
		{"bad log format", base + host + `log { format = "xml" }`, nil,
			[]string{`log.format: want one of "text", "json", got "xml"`}},
		{"bad tls version", base + host + `tls { min_version = "1.1" }`, nil,
			[]string{`tls.min_version: want one of "1.2", "1.3", got "1.1"`}},
		{"bad tls max version", base + host + `tls { max_version = "1.4" }`, nil,
			[]string{`tls.max_version: want one of "1.2", "1.3", got "1.4"`}},
		{"tls min above max", base + host + `tls { min_version = "1.3"  max_version = "1.2" }`, nil,
			[]string{`tls.min_version: "1.3" is above max_version "1.2"`}},
		{"bad channel binding", base + `host "localhost" { auth = "store"  channel_binding = "always" }`, nil,
			[]string{`host "localhost".channel_binding: want one of "prefer", "require", "off", got "always"`}},
		{"bad channel binding from env", base + host, []string{"KOI_HOST__LOCALHOST__CHANNEL_BINDING=yes"},
			[]string{`host "localhost".channel_binding: want one of "prefer", "require", "off", got "yes" (set by KOI_HOST__LOCALHOST__CHANNEL_BINDING)`}},
		{"empty cert file", base + host + `tls { cert_file = "" }`, nil,
			[]string{`tls.cert_file: must not be empty`}},
		{"bad keepalive", base + host + `listen "c2s_tls" { address = "127.0.0.1:5299"  keepalive = "tcp" }`, nil,
			[]string{`listen "c2s_tls".keepalive: want one of "whitespace", "ping", "off", got "tcp"`}},
		{"ping timeout without ping", base + host + `listen "c2s_tls" { address = "127.0.0.1:5299"  ping_timeout = "5s" }`, nil,
			[]string{`listen "c2s_tls".ping_timeout: only with keepalive = "ping"`}},
		{"zero ping timeout", base + host + `listen "c2s_tls" { address = "127.0.0.1:5299"  keepalive = "ping"  ping_timeout = "0s" }`, nil,
			[]string{`listen "c2s_tls".ping_timeout: must be greater than 0`}},
		{"bad pprof", base + host + `server { pprof = "6060" }`, nil,
			[]string{`server.pprof: want host:port`}},

		{"admin: no token", base + host + `admin { address = "127.0.0.1:5280" }`, nil,
			[]string{`admin.token: the admin API needs a token of at least 16 characters (got 0); e.g. KOI_ADMIN__TOKEN=$(openssl rand -hex 24)`}},
		{"admin: short token from env", base + host + `admin { address = "127.0.0.1:5280" }`, []string{"KOI_ADMIN__TOKEN=abc"},
			[]string{`admin.token: the admin API needs a token of at least 16 characters (got 3); e.g. KOI_ADMIN__TOKEN=$(openssl rand -hex 24) (set by KOI_ADMIN__TOKEN)`}},
		{"admin: bad address", base + host + `admin { address = "5280"  token = "0123456789abcdef" }`, nil,
			[]string{`admin.address: want host:port`}},
		{"admin: typo", base + host + `admin { adress = "127.0.0.1:5280" }`, nil,
			[]string{`admin.adress: unknown key (did you mean address?)`}},
		{"push: zero registrations", base + host + `push { max_registrations = 0 }`, nil,
			[]string{`push.max_registrations: must be greater than 0`}},
		{"push: negative errors", base + host + `push { max_errors = -1 }`, nil,
			[]string{`push.max_errors: must not be negative, got -1`}},
		{"push: interval too long", base + host + `push { interval = "2h" }`, nil,
			[]string{`push.interval: at most 1h0m0s, got 2h0m0s`}},
		{"push: body as string", base + host + `push { include_body = "yes" }`, nil,
			[]string{`push.include_body: want true or false, got string "yes"`}},
		{"contact: an address without its scheme", base + host + `contact { abuse = ["abuse@example.com"] }`, nil,
			[]string{`contact.abuse: want URIs like "mailto:abuse@example.com", got "abuse@example.com" (an address wants its scheme: "mailto:abuse@example.com" or "xmpp:abuse@example.com")`}},
		{"contact: unknown role", base + host + `contact { abuze = ["mailto:a@example.com"] }`, nil,
			[]string{`contact.abuze: unknown key (did you mean abuse?)`}},
		{"turn: no host", base + host + `turn { secret = "0123456789abcdef" }`, nil,
			[]string{`turn.host: missing: the TURN server's name, like host = "turn.example.com"`}},
		{"turn: host with a port", base + host + `turn { host = "turn.example.com:3478" }`, nil,
			[]string{`turn.host: want a DNS name or an IP address, without a scheme or a port (those are port and tls_port), got "turn.example.com:3478"`}},
		{"turn: short secret", base + host + `turn { host = "turn.example.com"  secret = "short" }`, nil,
			[]string{`turn.secret: too short: want at least 16 characters (got 5), e.g. $(openssl rand -hex 24), and the same as coturn's static-auth-secret`}},
		{"turn: turns without a secret", base + host + `turn { host = "turn.example.com"  tls_port = 5349 }`, nil,
			[]string{`turn.tls_port: turns needs credentials: set secret (coturn's static-auth-secret) too`}},
		{"turn: port out of range", base + host + `turn { host = "turn.example.com"  port = 70000 }`, nil,
			[]string{`turn.port: want a port number up to 65535, got 70000`}},
		{"turn: ttl too long", base + host + `turn { host = "turn.example.com"  ttl = "1000h" }`, nil,
			[]string{`turn.ttl: at most 720h0m0s, got 1000h0m0s`}},
		{"push: typo", base + host + `push { include_bdy = true }`, nil,
			[]string{`push.include_bdy: unknown key (did you mean include_body?)`}},
		{"push: placeholder too long", base + host + `push { body_placeholder = "` + strings.Repeat("x", 201) + `" }`, nil,
			[]string{`push.body_placeholder: too long: at most 200 bytes, got 201`}},
		{"negative stanza size", base + host + `limits { max_stanza_size = -1 }`, nil,
			[]string{`limits.max_stanza_size: must not be negative, got -1`}},
		{"zero depth", base + host + `limits { max_depth = 0 }`, nil,
			[]string{`limits.max_depth: must be greater than 0`}},
		{"archive batch larger than the queue", base + host + `archive { queue_size = 100  batch_size = 200 }`, nil,
			[]string{`archive.batch_size: must not exceed archive.queue_size (100), got 200`}},
		{"archive batch bytes over gRPC's limit", base + host + `archive { batch_bytes = 8388608 }`, nil,
			[]string{`archive.batch_bytes: must not exceed 4194304 (gRPC's message limit is 4 MiB), got 8388608`}},
		{"archive journal too small", base + host + `archive { journal_max_size = 1000 }`, nil,
			[]string{`archive.journal_max_size: must be 0 (no journal) or at least 1048576 bytes, got 1000`}},
		{"archive zero in flight", base + host + `archive { max_in_flight = 0  flush_interval = "0s" }`, nil,
			[]string{`archive.flush_interval: must be greater than 0`, `archive.max_in_flight: must be greater than 0`}},
		{"archive empty journal dir", base + host + `archive { journal_dir = "" }`, nil,
			[]string{`archive.journal_dir: must not be empty`}},
		{"negative auth failures", base + host + `limits { auth_failures_per_ip = -5 }`, nil,
			[]string{`limits.auth_failures_per_ip: must not be negative, got -5`}},
		{"negative duration", base + host + `limits { keepalive_interval = "-1s" }`, nil,
			[]string{`limits.keepalive_interval: must not be negative, got "-1s"`}},
		{"negative connection rate", base + host + `limits { connections_per_ip = -1 }`, nil,
			[]string{`limits.connections_per_ip: must not be negative, got -1`}},
		{"zero rate window", base + host + `limits { rate_window = "0s" }`, nil,
			[]string{`limits.rate_window: must be greater than 0`}},
		{"negative handshake concurrency", base + host + `limits { handshake_concurrency = -2 }`, nil,
			[]string{`limits.handshake_concurrency: must not be negative, got -2`}},
		{"zero call timeout", base + host + `plugin "x" { command = "x"  call_timeout = "0s" }`, nil,
			[]string{`plugin "x".call_timeout: must be greater than 0`}},
		{"negative offline limit", base + `host "localhost" { offline_limit = -1 }`, nil,
			[]string{`host "localhost".offline_limit: must not be negative, got -1`}},

		{"registration without auth", base + `host "localhost" { registration = true }`, nil,
			[]string{`host "localhost".registration: needs auth`}},
		{"registration with empty auth", base + `host "localhost" { auth = []  registration = true }`, nil,
			[]string{`host "localhost".registration: needs auth`}},

		// Problems coming from the environment.
		{"env unknown key", base + host, []string{"KOI_LOG__LEVL=debug"},
			[]string{`KOI_LOG__LEVL: unknown key log.levl (did you mean level?)`}},
		{"env unknown block", base + host, []string{"KOI_LOGS__LEVEL=debug"},
			[]string{`KOI_LOGS__LEVEL: unknown key logs.level (did you mean log?)`}},
		{"env unknown host key", base + host, []string{"KOI_HOST__LOCALHOST__ROSER=store"},
			[]string{`KOI_HOST__LOCALHOST__ROSER: unknown key host "localhost".roser (did you mean roster?)`}},
		{"env below a value", base + host, []string{"KOI_LOG__LEVEL__X=debug"},
			[]string{`KOI_LOG__LEVEL__X: unknown key log.level.x`}},
		{"env whole labelled block", base + host, []string{"KOI_HOST__LOCALHOST=x"},
			[]string{`KOI_HOST__LOCALHOST: names a whole host block`}},
		{"env whole plugin config", base + host, []string{"KOI_PLUGIN__STORE__CONFIG=x"},
			[]string{`KOI_PLUGIN__STORE__CONFIG: names the whole config block`}},
		{"env empty segment", base + host, []string{"KOI_LOG____LEVEL=debug"},
			[]string{`KOI_LOG____LEVEL: malformed name`}},
		{"env bad value", base + host, []string{"KOI_LOG__LEVEL=verbose"},
			[]string{`log.level: want one of "trace", "debug", "info", "warn", "error", got "verbose" (set by KOI_LOG__LEVEL)`}},
		{"env bad bool", base + host, []string{"KOI_HOST__LOCALHOST__REGISTRATION=maybe"},
			[]string{`host "localhost".registration: want true or false, got "maybe" (set by KOI_HOST__LOCALHOST__REGISTRATION)`}},
		{"env bad int", base + host, []string{"KOI_LIMITS__MAX_DEPTH=deep"},
			[]string{`limits.max_depth: want an integer, got "deep" (set by KOI_LIMITS__MAX_DEPTH)`}},
		{"env negative int", base + host, []string{"KOI_LIMITS__SEND_QUEUE=-3"},
			[]string{`limits.send_queue: must not be negative, got -3 (set by KOI_LIMITS__SEND_QUEUE)`}},
		{"env missing plugin", base + host, []string{"KOI_HOST__LOCALHOST__ROSTER=nope"},
			[]string{`host "localhost".roster: no plugin "nope" (defined: "store") (set by KOI_HOST__LOCALHOST__ROSTER)`}},
		{"env plugin config type", base + host + `plugin "x" { command = "x"  config = { pool = 4 } }`,
			[]string{"KOI_PLUGIN__X__CONFIG__POOL=many"},
			[]string{`plugin "x".config.pool: want an integer, got "many" (set by KOI_PLUGIN__X__CONFIG__POOL)`}},
		{"env no such listener", base + host, []string{"KOI_LISTEN__NOPE__ADDRESS=127.0.0.1:5222"},
			[]string{`KOI_LISTEN__NOPE__ADDRESS: there is no listen "nope" block in the config file; an override can only change an existing block`}},
		{"reattach not a block", base + host + `plugin "dbg" { reattach = "4242" }`, nil,
			[]string{`plugin "dbg".reattach: want the line a plugin in debug mode prints, like reattach = { pid = 4242, network = "unix", address = "/tmp/plugin123", protocol_version = 1 }, got string "4242"`}},
		{"reattach incomplete and wrong", base + host + `plugin "dbg" { reattach = { pid = -1, network = "udp", prot = 1 } }`, nil,
			[]string{`plugin "dbg".reattach.prot: unknown key`,
				`plugin "dbg".reattach.address: missing: copy the whole reattach line the plugin printed`,
				`plugin "dbg".reattach.protocol_version: missing: copy the whole reattach line the plugin printed`,
				`plugin "dbg".reattach.pid: must not be negative, got -1`,
				`plugin "dbg".reattach.network: want one of "unix", "tcp", got "udp"`}},
		{"reattach empty address", base + host + `plugin "dbg" { reattach = { pid = 7, network = "unix", address = "", protocol_version = 0 } }`, nil,
			[]string{`plugin "dbg".reattach.address: must not be empty`,
				`plugin "dbg".reattach.protocol_version: must be greater than 0`}},
		{"env listener label typo", base + host, []string{"KOI_LISTEN__C2X__ADDRESS=127.0.0.1:5222"},
			[]string{`KOI_LISTEN__C2X__ADDRESS: there is no listen "c2x" block in the config file; an override can only change an existing block (did you mean c2s?)`}},
		{"env no such host", base + host, []string{"KOI_HOST__NEW.EXAMPLE__AUTH=store"},
			[]string{`KOI_HOST__NEW.EXAMPLE__AUTH: there is no host "new.example" block in the config file; an override can only change an existing block`}},
		{"env no such plugin", base + host, []string{"KOI_PLUGIN__DIRECTORY__CONFIG__URL=ldaps://x"},
			[]string{`KOI_PLUGIN__DIRECTORY__CONFIG__URL: there is no plugin "directory" block in the config file; an override can only change an existing block`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.src), tt.env)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v, %v; want Errors", cfg, err)
			}
			if cfg != nil {
				t.Errorf("got a config along with errors")
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, p := range errs {
				if line := p.Key + ": " + p.Msg; !strings.HasPrefix(line, tt.want[i]) {
					t.Errorf("problem %d:\n got %s\nwant %s…", i, line, tt.want[i])
				}
			}
		})
	}
}

// The checks above must not reject what they are meant to allow.
func TestAccepted(t *testing.T) {
	host := `host "localhost" { auth = "store" }` + "\n"
	tests := []struct {
		name  string
		src   string
		check func(*Config) (got, want any)
	}{
		{"metrics on", base + host + `metrics { address = "127.0.0.1:9100" }`,
			func(c *Config) (any, any) { return c.Metrics, Metrics{Address: "127.0.0.1:9100", Path: "/metrics"} }},
		{"plugin config any shape",
			base + host + `plugin "x" { command = "x"  config = {
				anything = { goes = [1, "two", { three = 3.5 }] }
				"dotted.key" = true
				servers = [{ url = "a" }]
				block { a = 1 }
				block { a = 2 }
			} }`,
			func(c *Config) (any, any) {
				return c.Plugins["x"].Config, map[string]any{
					"anything":   map[string]any{"goes": []any{1, "two", map[string]any{"three": 3.5}}},
					"dotted.key": true,
					// An explicit one-element list of objects stays a list...
					"servers": []any{map[string]any{"url": "a"}},
					// ...and a repeated block becomes one.
					"block": []any{map[string]any{"a": 1}, map[string]any{"a": 2}},
				}
			}},
		{"empty plugin config is not nil", base + host, func(c *Config) (any, any) {
			return c.Plugins["store"].Config, map[string]any{}
		}},
		{"auth list in order", base + `plugin "directory" { command = "y" }` +
			`host "example.com" { auth = ["directory", "store"]  registration = true }`,
			func(c *Config) (any, any) { return c.Hosts[0].Auth, []string{"directory", "store"} }},
		{"tokens", base + `host "localhost" { auth = "store"  tokens = "store"  token_lifetime = "48h" }`,
			func(c *Config) (any, any) {
				return [2]any{c.Hosts[0].Tokens, c.Hosts[0].TokenLifetime}, [2]any{"store", 48 * time.Hour}
			}},
		{"token lifetime default", base + `host "localhost" { auth = "store" }`,
			func(c *Config) (any, any) { return c.Hosts[0].TokenLifetime, 21 * 24 * time.Hour }},
		{"muc", base + `host "localhost" { auth = "store"  muc = "store" }`,
			func(c *Config) (any, any) { return c.Hosts[0].MUC, "store" }},
		{"muc empty is off", base + `host "localhost" { auth = "store"  muc = "" }`,
			func(c *Config) (any, any) { return c.Hosts[0].MUC, "" }},
		{"blocklist", base + `host "localhost" { auth = "store"  blocklist = "store" }`,
			func(c *Config) (any, any) { return c.Hosts[0].Blocklist, "store" }},
		{"blocklist empty is off", base + `host "localhost" { auth = "store"  blocklist = "" }`,
			func(c *Config) (any, any) { return c.Hosts[0].Blocklist, "" }},
		{"pubsub", base + `host "localhost" { auth = "store"  pubsub = "store" }`,
			func(c *Config) (any, any) { return c.Hosts[0].PubSub, "store" }},
		{"pubsub empty is off", base + `host "localhost" { auth = "store"  pubsub = "" }`,
			func(c *Config) (any, any) { return c.Hosts[0].PubSub, "" }},
		{"host name lowercased", base + `host "Example.COM" { auth = "store" }`,
			func(c *Config) (any, any) { return c.Hosts[0].Name, "example.com" }},
		{"idn host", base + `host "bücher.example" {}`,
			func(c *Config) (any, any) { return c.Hosts[0].Name, "bücher.example" }},
		{"ipv4 host", base + `host "192.0.2.1" {}`,
			func(c *Config) (any, any) { return c.Hosts[0].Name, "192.0.2.1" }},
		{"hosts and listeners keep file order", `
			plugin "store" { command = "x" }
			listen "z" { type = "c2s_tls"  address = ":3" }
			listen "c2s" { address = ":1" }
			listen "a" { type = "c2s"  address = ":2"  starttls = "Optional" }
			host "zeta.example" {}
			host "alpha.example" {}
			host "mid.example" {}`,
			func(c *Config) (any, any) {
				var names []string
				for _, l := range c.Listeners {
					names = append(names, l.Name+"/"+l.Type+"/"+l.StartTLS)
				}
				for _, h := range c.Hosts {
					names = append(names, h.Name)
				}
				return names, []string{"z/c2s_tls/", "c2s/c2s/required", "a/c2s/optional",
					"zeta.example", "alpha.example", "mid.example"}
			}},
		{"channel binding per host", base + `host "a.example" { channel_binding = "require" }
			host "b.example" { channel_binding = "Off" }  host "c.example" {}`,
			func(c *Config) (any, any) {
				return []string{c.Hosts[0].ChannelBinding, c.Hosts[1].ChannelBinding, c.Hosts[2].ChannelBinding},
					[]string{"require", "off", "prefer"}
			}},
		{"tls versions", base + host + `tls { min_version = "1.2"  max_version = "1.2" }`,
			func(c *Config) (any, any) {
				return []string{c.TLS.MinVersion, c.TLS.MaxVersion}, []string{"1.2", "1.2"}
			}},
		{"tls 1.3 only", base + host + `tls { min_version = "1.3" }`,
			func(c *Config) (any, any) {
				return []string{c.TLS.MinVersion, c.TLS.MaxVersion}, []string{"1.3", "1.3"}
			}},
		{"feature set to empty is off", base + `host "localhost" { auth = "store"  roster = "" }`,
			func(c *Config) (any, any) { return c.Hosts[0].Roster, "" }},
		{"sha256 lowercased, args, timeout", base + host + `plugin "x" {
				command = "x"  args = ["-v", "--x=1"]  call_timeout = "250ms"
				sha256 = "` + strings.Repeat("AB", 32) + `" }`,
			func(c *Config) (any, any) {
				p := c.Plugins["x"]
				return []any{p.SHA256, p.Args, p.CallTimeout},
					[]any{strings.Repeat("ab", 32), []string{"-v", "--x=1"}, 250 * time.Millisecond}
			}},
		{"limits and server", base + host + `
			limits { max_stanza_size = 65536  max_depth = 32  idle_timeout = "0s"  keepalive_interval = "30s"
			         auth_failures_per_ip = 0  auth_failures_per_account = 3  auth_failure_window = "5m"
			         auth_slowdown_max = "0s"  registrations_per_ip = 2  registration_window = "24h"  send_queue = 10
			         connections_per_ip = 0  logins_per_ip = 7  rate_window = "1m"
			         handshake_concurrency = 3  handshake_queue = 0  handshake_wait = "2s" }
			server { shutdown_timeout = "1m"  data_dir = "/var/lib/koi"  pprof = "127.0.0.1:6060" }`,
			func(c *Config) (any, any) {
				return []any{c.Limits, c.Server}, []any{
					Limits{65536, 32, 0, 30 * time.Second, 0, 3, 5 * time.Minute, 0, 2, 24 * time.Hour, 10, 0, 7, time.Minute, 3, 0, 2 * time.Second},
					Server{time.Minute, "/var/lib/koi", "127.0.0.1:6060"},
				}
			}},
		{"websocket defaults", base + host + `listen "websocket" { address = "127.0.0.1:5280" }`,
			func(c *Config) (any, any) {
				return c.Listeners[1], Listener{Name: "websocket", Type: "websocket", Address: "127.0.0.1:5280", Path: "/xmpp-websocket"}
			}},
		{"websocket all keys", base + host + `listen "web" { type = "websocket"  address = ":443"  path = "/ws"  tls = true
				public_url = "wss://chat.example.com/xmpp/ws"  origins = ["chat.example.com", "*.example.org:8443"] }`,
			func(c *Config) (any, any) {
				return c.Listeners[1], Listener{Name: "web", Type: "websocket", Address: ":443", Path: "/ws", TLS: true,
					PublicURL: "wss://chat.example.com/xmpp/ws", Origins: []string{"chat.example.com", "*.example.org:8443"}}
			}},
		{"reattach line instead of command",
			base + host + `plugin "dbg" { reattach = { pid = 4242, network = "unix", address = "/tmp/plugin123", protocol_version = 1 } }`,
			func(c *Config) (any, any) {
				p := c.Plugins["dbg"]
				return []any{p.Command, *p.Reattach}, []any{"", PluginReattach{Pid: 4242, Network: "unix", Address: "/tmp/plugin123", ProtocolVersion: 1}}
			}},
		{"reattach block beside command",
			base + host + `plugin "dbg" {
				command = "x"
				reattach {
					pid = 9
					network = "tcp"
					address = "127.0.0.1:1234"
					protocol_version = 1
				}
			}`,
			func(c *Config) (any, any) {
				return *c.Plugins["dbg"].Reattach, PluginReattach{Pid: 9, Network: "tcp", Address: "127.0.0.1:1234", ProtocolVersion: 1}
			}},
		{"tls files default to data_dir", base + host + `server { data_dir = "/var/lib/koi" }`,
			func(c *Config) (any, any) {
				return []string{c.TLS.CertFile, c.TLS.KeyFile}, []string{"/var/lib/koi/tls/cert.pem", "/var/lib/koi/tls/key.pem"}
			}},
		{"host options", base + `host "localhost" { auth = "store"  registration = true
				password_change = false  offline_limit = 0 }`,
			func(c *Config) (any, any) {
				h := c.Hosts[0]
				return []any{h.Registration, h.PasswordChange, h.OfflineLimit}, []any{true, false, 0}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.src), nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got, want := tt.check(cfg); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %#v\nwant %#v", got, want)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	src := `
log { level = "info" }
listen "c2s" { address = "127.0.0.1:5222" }
plugin "Store" { command = "bin/sql"  config = { driver = "sqlite"  dsn = "data/koi.db"  pool = 4  wal = true  ratio = 0.5 } }
plugin "directory" { command = "bin/ldap" }
host "localhost" { auth = "Store" }
host "example.com" { auth = "Store"  roster = "Store" }
`
	tests := []struct {
		name  string
		env   []string
		check func(*Config) (got, want any)
	}{
		{"log level", []string{"KOI_LOG__LEVEL=debug"},
			func(c *Config) (any, any) { return c.Log.Level, "debug" }},
		{"key of an absent block", []string{"KOI_TLS__CERT_FILE=/x.pem", "KOI_LIMITS__MAX_STANZA_SIZE=65536"},
			func(c *Config) (any, any) {
				return []any{c.TLS.CertFile, c.Limits.MaxStanzaBytes}, []any{"/x.pem", int64(65536)}
			}},
		{"listener address", []string{"KOI_LISTEN__C2S__ADDRESS=0.0.0.0:5222"},
			func(c *Config) (any, any) {
				return c.Listeners, []Listener{{Name: "c2s", Type: "c2s", Address: "0.0.0.0:5222", StartTLS: "required"}}
			}},
		{"plugin config, label matched ignoring case", []string{"KOI_PLUGIN__STORE__CONFIG__DSN=/var/lib/koi.db"},
			func(c *Config) (any, any) {
				return c.Plugins["Store"].Config, map[string]any{
					"driver": "sqlite", "dsn": "/var/lib/koi.db", "pool": 4, "wal": true, "ratio": 0.5}
			}},
		{"plugin config keeps value types", []string{
			"KOI_PLUGIN__STORE__CONFIG__POOL=8", "KOI_PLUGIN__STORE__CONFIG__WAL=false",
			"KOI_PLUGIN__STORE__CONFIG__RATIO=0.25", "KOI_PLUGIN__STORE__CONFIG__NEW_KEY=7"},
			func(c *Config) (any, any) {
				return c.Plugins["Store"].Config, map[string]any{
					"driver": "sqlite", "dsn": "data/koi.db", "pool": 8, "wal": false, "ratio": 0.25,
					"new_key": "7"}
			}},
		{"dotted host", []string{"KOI_HOST__EXAMPLE.COM__REGISTRATION=true"},
			func(c *Config) (any, any) {
				return []bool{c.Hosts[0].Registration, c.Hosts[1].Registration}, []bool{false, true}
			}},
		{"auth list", []string{"KOI_HOST__EXAMPLE.COM__AUTH=directory, Store"},
			func(c *Config) (any, any) { return c.Hosts[1].Auth, []string{"directory", "Store"} }},
		{"feature turned off", []string{"KOI_HOST__EXAMPLE.COM__ROSTER="},
			func(c *Config) (any, any) { return c.Hosts[1].Roster, "" }},
		{"push block from the environment", []string{"KOI_PUSH__INCLUDE_BODY=true", "KOI_PUSH__INTERVAL=0s", "KOI_PUSH__BODY_PLACEHOLDER="},
			func(c *Config) (any, any) {
				p := defaultPush()
				p.IncludeBody, p.Interval, p.BodyPlaceholder = true, 0, ""
				return c.Push, p
			}},
		{"contact from the environment", []string{"KOI_CONTACT__ADMIN=xmpp:admin@example.com, mailto:admin@example.com"},
			func(c *Config) (any, any) {
				return c.Contact, Contact{"admin": {"xmpp:admin@example.com", "mailto:admin@example.com"}}
			}},
		{"turn from the environment", []string{"KOI_TURN__HOST=turn.example.com", "KOI_TURN__SECRET=0123456789abcdef", "KOI_TURN__TLS_PORT=5349"},
			func(c *Config) (any, any) {
				return c.TURN, TURN{Host: "turn.example.com", Port: DefaultTURNPort, TLSPort: 5349, Secret: "0123456789abcdef", TTL: DefaultTURNTTL}
			}},
		{"muc from the environment", []string{"KOI_MUC__ENABLED=false", "KOI_MUC__ADMINS=a@localhost, b@example.com", "KOI_HOST__EXAMPLE.COM__MUC_DOMAIN=", "KOI_HOST__LOCALHOST__MUC_DOMAIN=chat.localhost"},
			func(c *Config) (any, any) {
				return []any{c.MUC.Enabled, c.MUC.Admins, c.Hosts[0].MUCDomain, c.Hosts[1].MUCDomain},
					[]any{false, []string{"a@localhost", "b@example.com"}, "chat.localhost", ""}
			}},
		{"durations and args", []string{"KOI_LIMITS__IDLE_TIMEOUT=90s", "KOI_PLUGIN__DIRECTORY__ARGS=-v,--debug"},
			func(c *Config) (any, any) {
				return []any{c.Limits.IdleTimeout, c.Plugins["directory"].Args},
					[]any{90 * time.Second, []string{"-v", "--debug"}}
			}},
		{"last assignment wins", []string{"KOI_LOG__LEVEL=debug", "KOI_LOG__LEVEL=warn"},
			func(c *Config) (any, any) { return c.Log.Level, "warn" }},
		{"variables that are not ours", []string{
			"KOI_VERSION=3", "koi_log__level=debug", "PATH=/bin", "KOI_", "NOEQUALS", "XKOI_LOG__LEVEL=debug"},
			func(c *Config) (any, any) { return c.Log.Level, "info" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(src), tt.env)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got, want := tt.check(cfg); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %#v\nwant %#v", got, want)
			}
		})
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	src := `
log { level = "loud"  format = "json" }
listen "c2s" { address = "127.0.0.1:5222"  starttls = "sometimes" }
listen "c2s_tls" { address = "127.0.0.1:5222" }
plugin "store" { sha256 = "123" }
host "localhost" { auth = "store"  roser = "store"  vcard = "stor" }
host "bad_host" { registration = true }
limits { send_queue = -1 }
`
	_, err := Parse([]byte(src), []string{"KOI_LOG__LEVL=debug"})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	want := []string{
		`KOI_LOG__LEVL: unknown key log.levl (did you mean level?)`,
		`log.level: want one of "trace", "debug", "info", "warn", "error", got "loud"`,
		`listen "c2s".starttls: want one of "required", "optional", "disabled", got "sometimes"`,
		`listen "c2s_tls".address: "127.0.0.1:5222" is already used by listen "c2s"`,
		`plugin "store".command: missing: want the path of the plugin's executable (or reattach, for a plugin in debug mode)`,
		`plugin "store".sha256: want a SHA-256 digest as 64 hex digits, got "123"`,
		`host "localhost".roser: unknown key (did you mean roster?)`,
		`host "localhost".vcard: no plugin "stor" (defined: "store")`,
		`host "bad_host": not a valid domain name: label "bad_host" has "_"; use letters, digits and hyphens`,
		`host "bad_host".registration: needs auth: registration creates accounts in the host's auth plugin, and auth is empty`,
		`limits.send_queue: must not be negative, got -1`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got\n%s\n\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(contractSample), "KOI_HOST__LOCALHOST__ROSTER=directory")
	f.Add([]byte(Example()), "KOI_PLUGIN__STORE__CONFIG__DSN__X=1")
	f.Add([]byte(base+`host "a" "b" { c { d = [1, {e = 2}] } }`), "KOI_LISTEN__C2S=1")
	f.Fuzz(func(t *testing.T, src []byte, env string) {
		cfg, err := Parse(src, strings.Split(env, "\n"))
		if (cfg == nil) == (err == nil) {
			t.Fatalf("got config %v and error %v", cfg, err)
		}
	})
}

// TestAdmin: the admin API is off by default and on with an address and a
// token, which may come from the environment.
func TestAdmin(t *testing.T) {
	src := base + `host "localhost" { auth = "store" }` + "\n"
	c, err := Parse([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin != (Admin{}) {
		t.Fatalf("no admin block: %+v, %v", c.Admin, err)
	}
	c, err = Parse([]byte(src+`admin { address = "127.0.0.1:5280"  tls = true }`), []string{"KOI_ADMIN__TOKEN=0123456789abcdef0123"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Admin{Address: "127.0.0.1:5280", Token: "0123456789abcdef0123", TLS: true}); c.Admin != want {
		t.Errorf("admin %+v, want %+v", c.Admin, want)
	}
}

// sdk/README.md's plugin block for reattach mode is valid config.
func TestSDKReadmeReattachBlock(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "sdk", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, part := range strings.Split(string(readme), "```hcl\n")[1:] {
		part, _, _ = strings.Cut(part, "```")
		if strings.Contains(part, "plugin \"store\"") && strings.Contains(part, "reattach") {
			block = part
		}
	}
	if block == "" {
		t.Fatal("sdk/README.md shows no plugin block with reattach")
	}
	cfg, err := Parse([]byte(`listen "c2s" { address = "127.0.0.1:5222" }`+"\n"+block+"\n"+`host "localhost" { auth = "store" }`), nil)
	if err != nil {
		t.Fatalf("README block: %v\n%s", err, block)
	}
	want := PluginReattach{Pid: 4242, Network: "unix", Address: "/tmp/plugin123", ProtocolVersion: 1}
	if r := cfg.Plugins["store"].Reattach; r == nil || *r != want {
		t.Errorf("README block reattach = %+v, want %+v", r, want)
	}
}

func TestPubSubBlock(t *testing.T) {
	base := contractSample
	c, err := Parse([]byte(base+`
pubsub { service = false  max_items = 50  default_max_items = 5  max_nodes = 7  max_item_size = 1000 }`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (PubSub{MaxItems: 50, DefaultMaxItems: 5, MaxNodes: 7, MaxItemBytes: 1000}); c.PubSub != want {
		t.Errorf("got %+v", c.PubSub)
	}
	for _, c := range []struct{ body, key string }{
		{`max_items = 5000`, "pubsub.max_items"},
		{`max_items = 5  default_max_items = 6`, "pubsub.default_max_items"},
		{`max_item_size = 300000`, "pubsub.max_item_size"},
		{`max_nodes = 0`, "pubsub.max_nodes"},
		{`max_nodez = 3`, "pubsub.max_nodez"},
	} {
		_, err := Parse([]byte(base+"\npubsub { "+c.body+" }"), nil)
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: error %v, want one naming %s", c.body, err, c.key)
		}
	}
	// A small stanza limit shrinks the default item size.
	c, err = Parse([]byte(base+"\nlimits { max_stanza_size = 65536 }"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.PubSub.MaxItemBytes != 32768 {
		t.Errorf("max_item_size with a 64 KiB stanza limit: %d", c.PubSub.MaxItemBytes)
	}
}
