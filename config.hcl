# koi configuration. Every key can be overridden from the environment:
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
  muc       = "store"     # persistent group chat rooms (XEP-0045) and their affiliations
  pubsub    = "store"     # PEP (XEP-0163: avatars, bookmarks, OMEMO keys) and pubsub nodes and items
  registration = false    # XEP-0077 in-band registration
  # muc_domain = "conference.localhost"  # the multi-user chat service (XEP-0045); "" for none
  # channel_binding = "prefer"  # SCRAM-*-PLUS: "prefer" | "require" (no login without it) | "off"
  # admins = ["admin@localhost"]  # run the admin commands (XEP-0133) from a client: users, announcements
  # HTTP File Upload (XEP-0363): upload.localhost hands users slots, files go to its own HTTPS
  # listener (the tls block's certificate, or its own: cert_file = "..."  key_file = "..."; tls = false
  # for plain HTTP behind a proxy, with url_base = "https://files.example.com"). quota is per user,
  # 0 = none; expire = "0s" keeps files.
  # upload { listen = "127.0.0.1:5281"  domain = "upload.localhost"  tls = true
  #   max_file_size = 104857600  quota = 1073741824  expire = "720h"
  #   store { type = "dir"  path = "data/upload/upload.localhost" } }
  #   or: store { type = "s3"  endpoint = "https://s3.eu-west-1.amazonaws.com"  bucket = "koi-files"
  #               region = ""  prefix = ""  access_key = "..." }  # KOI_HOST__LOCALHOST__UPLOAD__STORE__SECRET_KEY=...
}

# External components (XEP-0114): gateways and bots (Biboumi, Slidge, ...) that serve a domain of
# their own. Each needs a component block with a shared secret of at least 16 characters (secret,
# secret_file, or KOI_COMPONENT__<DOMAIN>__SECRET for a block in this file). The protocol is plaintext:
# keep the listener on loopback, or set tls = true there for TLS from the first byte.
# listen "component" { address = "127.0.0.1:5347" }
# component "irc.localhost" { secret_file = "irc.secret" }
#   replace = true lets a new connection for the domain take over instead of being refused

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
#          max_in_flight = 64  block_timeout = "2s"  journal_dir = "data/archive-journal"
#          journal_max_size = 1073741824 }
# Push notifications (XEP-0357) to the app servers of phone clients; the app server is a third party,
# so it gets neither the text nor the sender unless you say so. interval collapses bursts.
# push { enabled = true  include_body = false  include_sender = false  body_placeholder = "New message"
#        max_registrations = 5  max_errors = 16  interval = "5s" }
# Who runs this server (XEP-0157), in the disco#info of every host: URIs for each role.
# contact { abuse = ["mailto:abuse@example.com"]  admin = ["xmpp:admin@example.com"]
#   feedback = []  sales = []  security = []  support = ["https://example.com/help"] }
# STUN/TURN for audio and video calls (XEP-0215): the TURN server's name and ports, and the secret
# it shares with koi (coturn: use-auth-secret, static-auth-secret=...), from which users get
# credentials that expire after ttl. Without secret only STUN is advertised.
# turn { host = "turn.example.com"  port = 3478  tls_port = 5349  secret_file = "turn.secret"  ttl = "24h" }
# PEP on every account (XEP-0163: avatars, bookmarks, OMEMO keys) and the pubsub service
# pubsub.<host> (XEP-0060, service = false turns it off); nodes live in each host's pubsub backend
# (key pubsub of the host block), in memory without one. max_item_size is below max_stanza_size.
# pubsub { service = true  max_items = 256  default_max_items = 10  max_nodes = 100
#          max_item_size = 131072 }
# The administration API (JSON over HTTP, core/admin/openapi.yaml; koictl uses it while koi runs)
# and a web page at /admin/ (status, hosts, plugins, live graphs; log in with the token).
# Off unless address is set; give the token through the environment: KOI_ADMIN__TOKEN=...
# admin { address = "127.0.0.1:5280"  token = ""  tls = false }
# Multi-user chat (XEP-0045), one service per host on its muc_domain; a host's muc = "<plugin>"
# keeps its persistent rooms across restarts. room_creation: "all" | "host" | "admins";
# admins own every room. 0 turns a bound off. default_logging: new rooms keep their messages
# in the host's archive (XEP-0313 on rooms) when the host's archive is on.
# muc { enabled = true  room_creation = "all"  admins = []  max_history = 100  max_occupants = 1000
#        max_rooms = 0  max_rooms_per_user = 100  join_rate = 200  join_window = "1m"  lock_timeout = "5m"
#        default_public = true  default_persistent = false  default_members_only = false
#        default_moderated = false  default_whois = "moderators"  default_allow_pm = "anyone"
#        default_history = 20  default_logging = true }
# Prometheus metrics (connections, logins, stanzas, handling time, archive queue, Go runtime) on
# a listener of their own; off unless address is set. examples/grafana has a dashboard.
# metrics { address = "127.0.0.1:9100"  path = "/metrics" }
# A cluster of koi nodes over NATS with JetStream (see README, "Cluster"): every node names the same
# NATS and its own node; the backends must be shared (no SQLite file, no local upload directory).
# cluster { nats_url = "nats://127.0.0.1:4222"  node = "koi1"  lease = "10s"  name = "koi" }
