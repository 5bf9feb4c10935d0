# koi with accounts, rosters and message archives behind a web service.
#
#   go run ./examples/rest-backend -db /tmp/rest.db -token CHANGE-ME -hmac-secret CHANGE-ME-TOO &
#   make build && bin/koi -config examples/configs/rest.hcl
#
# The service implements the HTTP auth contract of Prosody's mod_auth_http
# and MongooseIM's ejabberd_auth_http, and koi's JSON contract for rosters
# and archives (plugins/http/openapi.yaml); examples/rest-backend is a
# reference implementation. Offline messages, vCards and private data live
# in SQLite. Secrets belong in the environment:
#   KOI_PLUGIN__API__CONFIG__TOKEN='...'  KOI_PLUGIN__API__CONFIG__HMAC_SECRET='...'

log { level = "info"  format = "text" }

listen "c2s"     { address = "127.0.0.1:5222"  starttls = "required" }
listen "c2s_tls" { address = "127.0.0.1:5223" }

tls { cert_file = "../../data/tls/cert.pem"  key_file = "../../data/tls/key.pem" }

plugin "store" {
  command = "../../bin/plugins/koi-backend-sql"
  config  = { driver = "sqlite"  dsn = "data/koi.db" }
}

plugin "api" {
  command = "../../bin/plugins/koi-backend-http"
  config = {
    base_url    = "http://127.0.0.1:8480"
    features    = ["auth", "roster", "archive"]
    # read_only = ["auth"]          # a service that only checks passwords
    auth_style  = "prosody"         # or "ejabberd"
    token       = "CHANGE-ME"
    hmac_secret = "CHANGE-ME-TOO"
    # ca_file   = "/etc/koi/api-ca.pem"
    timeout     = "2s"
    retries     = 2
    breaker_failures = 5
    breaker_cooldown = "10s"
    archive_full_text = true
    # archive_retract = true       # the service replaces moderated messages with tombstones (openapi.yaml)
    # roster_batch = true          # the service serves POST roster_changes (openapi.yaml)
  }
}

host "localhost" {
  auth    = "api"
  roster  = "api"
  archive = "api"
  offline = "store"
  vcard   = "store"
  private = "store"
  registration = true
}
