#!/usr/bin/env bash
# slapd.sh DIR: a throwaway OpenLDAP slapd on loopback, for the ldap
# plugin's tests (recipe: ../shared/docs/test-services.md, section 1).
#
#   ldap://127.0.0.1:$LDAP_PORT (13389)   ldaps://127.0.0.1:$LDAPS_PORT (13636)
#   suffix dc=example,dc=org; CA certificate DIR/cert.pem (CN/SAN localhost, 127.0.0.1)
#   admin  cn=admin,dc=example,dc=org / adminpw
#   search cn=koi,ou=services,dc=example,dc=org / koipw (the plugin's service account)
#   users  alice/alicepw bob/bobpw carol/carolpw dave/davepw jürgen/jürgenpw
#   groups xmpp-users (alice, bob, jürgen and the group xmpp-admins), xmpp-admins (carol),
#          research (alice, carol)
#   BULK_USERS=N adds bulk0000.. (password bulkpw) in the group cn=bulk, and
#   limits searches to 1000 entries unless paged (as Active Directory does).
#
# Installs slapd and ldap-utils if missing (as root; exit 3 when it cannot).
# Prints "ready ldap=URL ldaps=URL pid=PID" once the data is loaded, then
# stays in the foreground; SIGTERM or SIGINT stops slapd and exits 0.
set -euo pipefail
D=${1:?usage: slapd.sh DIR}; PORT=${LDAP_PORT:-13389}; SPORT=${LDAPS_PORT:-13636}; BULK=${BULK_USERS:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
"$HERE/install.sh" slapd ldap-utils openssl
export PATH=$PATH:/usr/sbin
rm -rf "$D"; mkdir -p "$D/db"
t0=$(date +%s%3N)
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null
limits=
if [ "$BULK" -gt 0 ]; then
  # Active Directory answers at most 1000 entries without paging; so does this.
  limits='limits * size.soft=1000 size.hard=1000 size.prtotal=unlimited'
fi
# bind_anon_dn (and bind_anon_cred, its sibling): a simple bind with a DN and
# an empty password succeeds as an unauthenticated bind (RFC 4513 §5.1.2), as
# some directories are set up; the plugin's empty-password guard is tested
# against that.
cat >"$D/slapd.conf" <<CONF
allow bind_anon_dn bind_anon_cred
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile $D/slapd.pid
TLSCertificateFile $D/cert.pem
TLSCertificateKeyFile $D/key.pem
database mdb
maxsize 104857600
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw $(slappasswd -s adminpw)
directory $D/db
index objectClass,uid,mail,member,memberOf eq
$limits
overlay memberof
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
CONF
slapd -d 0 -f "$D/slapd.conf" -h "ldap://127.0.0.1:$PORT/ ldaps://127.0.0.1:$SPORT/" >"$D/slapd.log" 2>&1 &
pid=$!
stop() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; exit 0; }
trap stop TERM INT
ok=
for _ in $(seq 200); do
  if ldapsearch -x -H "ldap://127.0.0.1:$PORT" -s base -b "" namingContexts >/dev/null 2>&1; then ok=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$ok" ]; then
  echo "slapd did not start; its log (slapd -d stats shows more):" >&2; cat "$D/slapd.log" >&2
  kill "$pid" 2>/dev/null || true; exit 1
fi

# A 2x2 JPEG for jpegPhoto.
PHOTO='/9j/2wCEABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2MBERISGBUYLxoaL2NCOEJjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY//AABEIAAIAAgMBIgACEQEDEQH/xAGiAAABBQEBAQEBAQAAAAAAAAAAAQIDBAUGBwgJCgsQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+gEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoLEQACAQIEBAMEBwUEBAABAncAAQIDEQQFITEGEkFRB2FxEyIygQgUQpGhscEJIzNS8BVictEKFiQ04SXxFxgZGiYnKCkqNTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqCg4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2dri4+Tl5ufo6ery8/T19vf4+fr/2gAMAwEAAhEDEQA/AMuiiiuI+mP/2Q=='
b64() { printf '%s' "$1" | base64 -w0; }
P=ou=people,dc=example,dc=org; G=ou=groups,dc=example,dc=org
# u UID PASSWORD [LDIF lines...]: a person; names are written base64 so
# that non-ASCII ones survive.
u() {
  local id=$1 pw=$2; shift 2
  printf 'dn:: %s\nobjectClass: inetOrgPerson\nuid:: %s\ncn:: %s\nsn:: %s\nuserPassword: %s\n' \
    "$(b64 "uid=$id,$P")" "$(b64 "$id")" "$(b64 "$id")" "$(b64 "$id")" "$(slappasswd -s "$pw")"
  # mail is IA5 (ASCII): others pass their own mail line.
  if ! printf '%s' "$id" | LC_ALL=C grep -q '[^ -~]'; then printf 'mail: %s@example.org\n' "$id"; fi
  for l in "$@"; do printf '%s\n' "$l"; done
  printf '\n'
}
{
  cat <<LDIF
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: cn=koi,ou=services,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: koi
userPassword: $(slappasswd -s koipw)

dn: ou=elsewhere,dc=example,dc=org
objectClass: referral
objectClass: extensibleObject
ou: elsewhere
ref: ldap://127.0.0.1:9/ou=elsewhere,dc=example,dc=org

LDIF
  u alice alicepw 'displayName: Alice Liddell' 'givenName: Alice' 'telephoneNumber: +1 555 0100' \
    'title: Engineer' 'departmentNumber: Research' 'o: Example' "jpegPhoto:: $PHOTO"
  u bob bobpw 'displayName: Bob Builder'
  u carol carolpw
  u dave davepw
  u jürgen jürgenpw 'mail: juergen@example.org' "displayName:: $(b64 'Jürgen Müller')"
  cat <<LDIF
dn: cn=xmpp-admins,$G
objectClass: groupOfNames
cn: xmpp-admins
description: XMPP admins
member: uid=carol,$P

dn: cn=xmpp-users,$G
objectClass: groupOfNames
cn: xmpp-users
description: Everyone
member: uid=alice,$P
member: uid=bob,$P
member:: $(b64 "uid=jürgen,$P")
member: cn=xmpp-admins,$G

dn: cn=research,$G
objectClass: groupOfNames
cn: research
description: Research Team
member: uid=alice,$P
member: uid=carol,$P

LDIF
  if [ "$BULK" -gt 0 ]; then
    bulkpw=$(slappasswd -s bulkpw) # one hash for all: slappasswd costs a process each
    for ((i = 0; i < BULK; i++)); do
      printf 'dn: uid=bulk%04d,%s\nobjectClass: inetOrgPerson\nuid: bulk%04d\ncn: bulk%04d\nsn: bulk\nuserPassword: %s\n\n' $i "$P" $i $i "$bulkpw"
    done
    printf 'dn: cn=bulk,%s\nobjectClass: groupOfNames\ncn: bulk\n' "$G"
    for ((i = 0; i < BULK; i++)); do printf 'member: uid=bulk%04d,%s\n' $i "$P"; done
    printf '\n'
  fi
} >"$D/data.ldif"
if ! ldapadd -x -H "ldap://127.0.0.1:$PORT" -D cn=admin,dc=example,dc=org -w adminpw -f "$D/data.ldif" >"$D/ldapadd.log" 2>&1; then
  echo "loading the test data failed:" >&2; tail -n 20 "$D/ldapadd.log" >&2
  kill "$pid" 2>/dev/null || true; exit 1
fi
echo "ready ldap=ldap://127.0.0.1:$PORT ldaps=ldaps://127.0.0.1:$SPORT pid=$pid ms=$(( $(date +%s%3N)-t0 ))"
# wait returns early when a trapped signal arrives; the trap then runs.
wait "$pid"
echo "slapd exited on its own; its log:" >&2; cat "$D/slapd.log" >&2
exit 1
