# koi for an organisation whose people live in Active Directory.
#
#   make build && bin/koi -config examples/configs/active-directory.hcl
#
# Employees log in to alice@example.org with their Windows password: koi
# checks it against AD (SASL PLAIN, over TLS only; AD keeps no SCRAM keys
# koi could use). Bots and service accounts, which AD should not hold, live
# in SQLite: `bin/koictl -config examples/configs/active-directory.hcl user
# add build-bot@example.org -`. Rosters, offline messages and private data
# are in SQLite too; vCards come from AD, and everyone in the group
# xmpp-users sees everyone else in it as a contact.
#
# Relative paths are relative to this file, those in plugin config blocks
# too (koi runs each plugin in this file's directory). Secrets belong in the
# environment:
#   KOI_PLUGIN__DIRECTORY__CONFIG__BIND_PASSWORD='...'

log { level = "info"  format = "text" }

listen "c2s"     { address = "0.0.0.0:5222"  starttls = "required" }
listen "c2s_tls" { address = "0.0.0.0:5223" }

# Made self-signed on the first start if absent; use your own for clients.
tls { cert_file = "../../data/tls/cert.pem"  key_file = "../../data/tls/key.pem" }

plugin "store" {
  command = "../../bin/plugins/koi-backend-sql"
  config  = { driver = "sqlite"  dsn = "data/koi.db" }
}

plugin "directory" {
  command      = "../../bin/plugins/koi-backend-ldap"
  call_timeout = "8s"   # above the plugin's connect_timeout + timeouts
  config = {
    # Tried in order; the one that answered last is tried first.
    url     = ["ldaps://dc1.example.org:636", "ldaps://dc2.example.org:636"]
    ca_file = "/etc/koi/example-org-ca.pem"   # the CA that signed the DCs' certificates
    # or: url = "ldap://dc1.example.org:389"  start_tls = true

    # A plain domain account is enough to search; it needs no rights.
    base_dn       = "DC=example,DC=org"
    bind_dn       = "EXAMPLE\\svc-koi"          # or svc-koi@example.org, or its DN
    bind_password = "CHANGE-ME"

    # Search the user, then bind as the found DN with the user's password.
    # objectCategory=person leaves out computer accounts (objectClass user too).
    user_filter        = "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))"
    username_attribute = "sAMAccountName"   # AD has no uid, the default
    # Or bind directly as the user principal name: user_dn_template = "{user}@EXAMPLE.ORG"

    # Only members of xmpp-users may log in, through nested groups too
    # (AD's LDAP_MATCHING_RULE_IN_CHAIN). Disabled accounts never log in.
    required_group   = "CN=xmpp-users,CN=Users,DC=example,DC=org"
    group_membership = "ad"

    # Shared roster: members of these groups see each other as contacts,
    # grouped under the group's description (or its cn).
    shared_groups          = ["CN=xmpp-users,CN=Users,DC=example,DC=org"]
    group_name_attribute   = "description"
    contact_name_attribute = "displayName"
    refresh_interval       = "5m"
    page_size              = 500    # AD answers at most 1000 entries a page

    vcard = { fn = ["displayName", "cn"]  photo = "thumbnailPhoto"  orgunit = "department" }

    connect_timeout = "2s"
    timeout         = "3s"
    pool_size       = 4
  }
}

host "example.org" {
  auth          = ["directory", "store"]   # employees from AD, then bots from SQLite
  roster        = "store"                  # each user's own contacts
  shared_roster = "directory"              # plus the AD groups' members, read-only
  offline       = "store"
  vcard         = "directory"              # read-only: vCard changes are refused
  private       = "store"
  registration  = false                    # accounts come from AD (and koictl)
}

server { data_dir = "../../data" }
