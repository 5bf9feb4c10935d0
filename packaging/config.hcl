# koi configuration for a packaged install (packaging/koi.service) or the
# container image (Dockerfile): binaries in /usr/bin and /usr/lib/koi,
# state in /var/lib/koi. Replace "chat.example.org" with your domain (and
# put a real certificate in /var/lib/koi/tls or point tls{} at one); every
# key is documented in the repository's config.hcl and README.
log { level = "info"  format = "json" }

listen "c2s"     { address = "0.0.0.0:5222"  starttls = "required" }
listen "c2s_tls" { address = "0.0.0.0:5223" }

# Made on first run (self-signed) if absent.
tls { cert_file = "/var/lib/koi/tls/cert.pem"  key_file = "/var/lib/koi/tls/key.pem" }

plugin "store" {
  command = "/usr/lib/koi/plugins/koi-backend-sql"
  config  = { driver = "sqlite"  dsn = "/var/lib/koi/koi.db" }
}

host "chat.example.org" {
  auth      = "store"
  roster    = "store"
  offline   = "store"
  vcard     = "store"
  private   = "store"
  blocklist = "store"
  tokens    = "store"
  pubsub    = "store"
  archive   = "store"
  registration = false
}

server { data_dir = "/var/lib/koi" }
