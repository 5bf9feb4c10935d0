# koi with accounts in OpenLDAP.
#
#   make build && bin/koi -config examples/configs/openldap.hcl
#
# Users log in with their LDAP password (SASL PLAIN over TLS). The
# directory is searched as a service account for uid={user}; the password
# is then checked by binding as the entry found. Members of the group
# xmpp-users may log in and see each other as contacts; vCards come from
# the inetOrgPerson attributes. Rosters, offline messages and private data
# live in SQLite.
#
# Relative paths are relative to this file, those in plugin config blocks
# too (koi runs each plugin in this file's directory). Secrets belong in the
# environment:
#   KOI_PLUGIN__DIRECTORY__CONFIG__BIND_PASSWORD='...'

log { level = "info"  format = "text" }

listen "c2s"     { address = "0.0.0.0:5222"  starttls = "required" }
listen "c2s_tls" { address = "0.0.0.0:5223" }

tls { cert_file = "../../data/tls/cert.pem"  key_file = "../../data/tls/key.pem" }

plugin "store" {
  command = "../../bin/plugins/koi-backend-sql"
  config  = { driver = "sqlite"  dsn = "data/koi.db" }
}

plugin "directory" {
  command = "../../bin/plugins/koi-backend-ldap"
  config = {
    url       = "ldap://ldap.example.org:389"
    start_tls = true
    ca_file   = "/etc/koi/ldap-ca.pem"

    base_dn       = "dc=example,dc=org"
    bind_dn       = "cn=koi,ou=services,dc=example,dc=org"   # omit both for anonymous searches
    bind_password = "CHANGE-ME"

    user_filter        = "(&(objectClass=inetOrgPerson)(uid={user}))"
    username_attribute = "uid"
    # Or the part of mail before the @:
    #   user_filter = "(&(objectClass=inetOrgPerson)(mail={user}@*))"  username_attribute = "mail"
    # Or bind without searching first:
    #   user_dn_template = "uid={user},ou=people,dc=example,dc=org"

    # "member" follows the groups' member attributes, nested groups
    # included; "memberof" reads the memberof overlay (direct membership).
    required_group   = "cn=xmpp-users,ou=groups,dc=example,dc=org"
    group_membership = "member"

    shared_groups          = ["cn=xmpp-users,ou=groups,dc=example,dc=org", "cn=research,ou=groups,dc=example,dc=org"]
    group_name_attribute   = "description"
    # A contact's name: displayName is optional in inetOrgPerson and often
    # unset, so entries without one show their cn.
    contact_name_attribute = "displayName"   # falls back to cn
    refresh_interval       = "5m"
  }
}

host "example.org" {
  auth          = ["directory", "store"]
  roster        = "store"
  shared_roster = "directory"
  offline       = "store"
  vcard         = "directory"
  private       = "store"
}

server { data_dir = "../../data" }
