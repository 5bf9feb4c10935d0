# Node 1 of a three-node koi cluster (see README, "Cluster", and
# examples/cluster/README.md). The three files differ only in the node name
# and the listen addresses: every node reads and writes the same PostgreSQL
# database and meets the others on the same NATS (with JetStream).
#
#   make build && bin/koi -config examples/cluster/koi1.hcl
#
# Relative paths are relative to this file.

log { level = "info"  format = "text" }

listen "c2s"     { address = "0.0.0.0:5122"  starttls = "required" }
listen "c2s_tls" { address = "0.0.0.0:5123" }

# Each node may have its own certificate; all must be valid for the hosts.
tls { cert_file = "../../data/koi1/tls/cert.pem"  key_file = "../../data/koi1/tls/key.pem" }

server { data_dir = "../../data/koi1" }

plugin "store" {
  command = "../../bin/plugins/koi-backend-sql"
  config = {
    driver         = "postgres"
    dsn            = "postgres://koi@127.0.0.1:5432/koi?sslmode=disable"
    max_open_conns = 20
  }
}

host "localhost" {
  auth     = "store"
  roster   = "store"
  offline  = "store"
  vcard    = "store"
  private  = "store"
  archive  = "store"
  blocklist = "store"
  muc      = "store"   # persistent chat rooms: any node can take a room over from the store
}

cluster {
  nats_url = "nats://127.0.0.1:4222"
  node     = "koi1"
  lease    = "10s"
}
