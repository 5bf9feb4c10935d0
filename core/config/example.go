package config

// Example returns the default config.hcl: one host, localhost, served by
// the SQL plugin on SQLite, listening on loopback only. The repository's
// config.hcl is this text.
func Example() string {
	return example
}

const example = `# koi configuration. Every key can be overridden from the environment:
# KOI_<BLOCK>__[<LABEL>__]<KEY>, e.g. KOI_LOG__LEVEL=debug or
# KOI_HOST__LOCALHOST__REGISTRATION=true. Relative paths are relative to this file.

log { level = "info"  format = "text" }   # trace|debug|info|warn|error; text|json

# c2s upgrades with STARTTLS; c2s_tls speaks TLS from the first byte (XEP-0368).
listen "c2s"     { address = "127.0.0.1:5222"  starttls = "required" }  # "optional" | "disabled"
listen "c2s_tls" { address = "127.0.0.1:5223" }
# On c2s and c2s_tls, what a link silent for keepalive_interval gets: keepalive = "whitespace"
# (default) | "ping" (XEP-0199; no answer in ping_timeout = "30s" closes it) | "off";
# keepalive_interval defaults to limits.keepalive_interval.
# RFC 7395 WebSocket for web and JavaScript clients, with XEP-0156 host-meta on the same port;
# tls = true serves wss:// with the certificate below. public_url overrides the advertised URL.
# Web pages from other origins than the listener's own need origins = ["chat.example.com"].
# listen "websocket" { address = "127.0.0.1:5280"  path = "/xmpp-websocket"  tls = false }

tls { cert_file = "data/tls/cert.pem"  key_file = "data/tls/key.pem" }  # made on first run if absent
#   also in tls, with their defaults: min_version = "1.2"  max_version = "1.3"

# One process per plugin block, shared by every host and feature that names it.
plugin "store" {
  command = "bin/plugins/koi-backend-sql"
  # sha256 = "..."                       # optional: refuse a binary that doesn't match
  # reattach = { pid = 4242, network = "unix", address = "/tmp/plugin123", protocol_version = 1 }
  #   debugging only: attach to a plugin started by hand in debug mode (KOI_PLUGIN_DEBUG=1),
  #   the line it prints, instead of starting command; see sdk/README.md
  config  = { driver = "sqlite"  dsn = "data/koi.db" }
}

host "localhost" {
  auth    = "store"       # each feature names a plugin block; omit one to turn it off
  roster  = "store"
  offline = "store"
  vcard   = "store"
  private = "store"
  blocklist = "store"     # XEP-0191 blocking command
  tokens    = "store"     # FAST login tokens (XEP-0484) for SASL2 reconnects; token_lifetime = "504h"
  pubsub    = "store"     # PEP (XEP-0163: avatars, bookmarks, OMEMO keys) and pubsub nodes and items
  registration = false    # XEP-0077 in-band registration
  # channel_binding = "prefer"  # SCRAM-*-PLUS: "prefer" | "require" (no login without it) | "off"
}

# Optional, shown with their defaults:
# limits { max_stanza_size = 262144  max_depth = 64  idle_timeout = "5m"  keepalive_interval = "60s"
#          auth_failures_per_ip = 100  auth_failures_per_account = 5  auth_failure_window = "1m"
#          auth_slowdown_max = "5s"  registrations_per_ip = 10  registration_window = "1h"  send_queue = 1024
#          connections_per_ip = 100  logins_per_ip = 100  rate_window = "10s"
#          handshake_concurrency = 0  handshake_queue = 1000  handshake_wait = "10s" }  # 0: half the CPUs
# XEP-0198 stream management: a session whose connection drops waits resume_timeout for the
# client to resume it; then what it did not acknowledge goes to offline storage.
# stream_management { enabled = true  resume_timeout = "300s"  max_queue = 1024  request_ack_every = 5 }
# server { shutdown_timeout = "10s"  data_dir = "data"  pprof = "" }
# The archive writer of each host (see README, "Message archive"); journal_max_size = 0 turns
# the journal off, and then a sender waits block_timeout for room, then gets resource-constraint.
# archive { queue_size = 16384  batch_size = 256  batch_bytes = 1048576  flush_interval = "10ms"
#          max_in_flight = 16  block_timeout = "2s"  journal_dir = "data/archive-journal"
#          journal_max_size = 1073741824 }
# Push notifications (XEP-0357) to the app servers of phone clients; the app server is a third party,
# so it gets neither the text nor the sender unless you say so. interval collapses bursts.
# push { enabled = true  include_body = false  include_sender = false  body_placeholder = "New message"
#        max_registrations = 5  max_errors = 16  interval = "5s" }
# PEP on every account (XEP-0163: avatars, bookmarks, OMEMO keys) and the pubsub service
# pubsub.<host> (XEP-0060, service = false turns it off); nodes live in each host's pubsub backend
# (key pubsub of the host block), in memory without one. max_item_size is below max_stanza_size.
# pubsub { service = true  max_items = 256  default_max_items = 10  max_nodes = 100
#          max_item_size = 131072 }
# The administration API (JSON over HTTP, core/admin/openapi.yaml; koictl uses it while koi runs).
# Off unless address is set; give the token through the environment: KOI_ADMIN__TOKEN=...
# admin { address = "127.0.0.1:5280"  token = ""  tls = false }
# Prometheus metrics (connections, logins, stanzas, handling time, archive queue, Go runtime) on
# a listener of their own; off unless address is set. examples/grafana has a dashboard.
# metrics { address = "127.0.0.1:9100"  path = "/metrics" }
`
