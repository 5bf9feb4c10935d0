#!/usr/bin/env bash
# samba-ad.sh DIR: a throwaway Samba Active Directory domain controller on
# 127.0.0.1, for the ldap plugin's tests (recipe: ../shared/docs/test-services.md,
# section 2). Needs root. Samba's ports are fixed: LDAP 389, LDAPS 636, global
# catalog 3268/3269, Kerberos 88/464; so one instance per machine.
#
#   realm EXAMPLE.ORG, domain EXAMPLE, base DC=example,DC=org
#   CA certificate DIR/tls-cert.pem (SAN dc1.example.org, localhost, 127.0.0.1)
#   Administrator/Adm1nPassw0rd!  (binds: Administrator@example.org or EXAMPLE\Administrator)
#   users  alice/AlicePw1! (CN=Alice Liddell, with title, department, phone, mail,
#          thumbnailPhoto)  bob/BobPw1!x  carol/CarolPw1!  dave/DavePw1!x (disabled)
#          jörg/JoergPw1!  svc-koi/SvcKoiPw1! (koi's service account)  staff0000..staff1099 (no password)
#   groups xmpp-users (alice, dave, jörg and the group xmpp-admins), xmpp-admins (carol),
#          research "Research Team" (alice, carol), all-staff (the 1100 staff users)
#
# Provisioning takes several seconds, so the provisioned (never started)
# domain is kept in $SAMBA_AD_CACHE (default /tmp/koi-samba-ad-cache), keyed by
# this script, the Samba version and DIR (Samba's files hold absolute paths),
# and copied to DIR on later runs.
#
# Installs the packages if missing (exit 3 when it cannot), exit 4 when one
# of the ports is taken. Prints "ready ldaps=ldaps://127.0.0.1:636 pid=PID ..."
# when an LDAPS bind works, then stays in the foreground; SIGTERM or SIGINT
# stops Samba and exits 0.
set -euo pipefail
D=${1:?usage: samba-ad.sh DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
REALM=EXAMPLE.ORG DOMAIN=EXAMPLE BASE=DC=example,DC=org
if [ "$(id -u)" -ne 0 ]; then
  echo "a Samba AD domain controller needs root" >&2; exit 3
fi
"$HERE/install.sh" samba samba-ad-dc samba-ad-provision winbind krb5-user ldap-utils openssl
export PATH=$PATH:/usr/sbin
for p in 389 636 88 464 3268 3269; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "127.0.0.1:$p is taken; Samba's AD ports (389 636 88 464 3268 3269) cannot be moved" >&2; exit 4
  fi
done
C="$D/etc/smb.conf"
key=$( { cat "$0"; samba -V; printf '%s' "$D"; } | sha256sum | cut -c1-16)
CACHE_ROOT=${SAMBA_AD_CACHE:-/tmp/koi-samba-ad-cache}; CACHE="$CACHE_ROOT/$key"
t0=$(date +%s%3N)
rm -rf "$D"
if [ -f "$CACHE/.complete" ]; then
  cp -a "$CACHE" "$D"; rm -f "$D/.complete"
  how="restored from $CACHE"
else
  mkdir -p "$D"
  samba-tool domain provision --targetdir="$D" --realm=$REALM --domain=$DOMAIN \
    --server-role=dc --dns-backend=NONE --use-rfc2307 --host-name=dc1 \
    --adminpass='Adm1nPassw0rd!' \
    --option="interfaces=127.0.0.1" --option="bind interfaces only=yes" \
    --option="server services=ldap, kdc" \
    --option="log file=$D/log.%m" \
    --option="pid directory=$D" \
    --option="ncalrpc dir=$D/ncalrpc" \
    --option="winbindd socket directory=$D/winbindd" \
    --option="ntp signd socket directory=$D/ntp_signd" \
    --option="tls certfile=$D/tls-cert.pem" --option="tls keyfile=$D/tls-key.pem" --option="tls cafile=" \
    >"$D/provision.log" 2>&1 || { echo "samba-tool domain provision failed:" >&2; tail -n 20 "$D/provision.log" >&2; exit 1; }
  mkdir -p "$D/cache"
  # Cached for a long time, hence the long validity.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=dc1.example.org \
    -addext "subjectAltName=DNS:dc1.example.org,DNS:localhost,IP:127.0.0.1" \
    -keyout "$D/tls-key.pem" -out "$D/tls-cert.pem" 2>/dev/null
  chmod 600 "$D/tls-key.pem" # Samba refuses a key file other users can read
  # The data, offline and in one process (samba-tool costs ~0.25 s a call).
  # samba-tool's interpreter, not whatever python3 is first on PATH.
  /usr/bin/python3 - "$C" >"$D/data.log" 2>&1 <<'PY' || { echo "loading the test data failed:" >&2; cat "$D/data.log" >&2; exit 1; }
import base64, sys
import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
base = str(db.domain_dn())
photo = base64.b64decode(
    "/9j/2wCEABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2MBERISGBUYLxoaL2NCOEJj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY//AABEIAAIAAgMBIgACEQEDEQH/xAGiAAABBQEBAQEBAQAAAAAAAAAA"
    "AQIDBAUGBwgJCgsQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNE"
    "RUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk"
    "5ebn6Onq8fLz9PX29/j5+gEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoLEQACAQIEBAMEBwUEBAABAncAAQIDEQQFITEGEkFRB2FxEyIygQgUQpGh"
    "scEJIzNS8BVictEKFiQ04SXxFxgZGiYnKCkqNTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqCg4SFhoeIiYqSk5SVlpeYmZqio6Sl"
    "pqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2dri4+Tl5ufo6ery8/T19vf4+fr/2gAMAwEAAhEDEQA/AMuiiiuI+mP/2Q==")

db.newuser("alice", "AlicePw1!", givenname="Alice", surname="Liddell", mailaddress="alice@example.org",
           jobtitle="Engineer", department="Research", company="Example", telephonenumber="+1 555 0100")
for name, pw in [("bob", "BobPw1!x"), ("carol", "CarolPw1!"), ("dave", "DavePw1!x"), ("jörg", "JoergPw1!"),
                 ("svc-koi", "SvcKoiPw1!")]:
    db.newuser(name, pw)
for name in ["Administrator", "alice", "bob", "carol", "dave", "jörg", "svc-koi"]:
    # A cached domain outlives the default 42-day password age.
    db.setexpiry("(sAMAccountName=%s)" % name, 0, no_expiry_req=True)
db.disable_account("(sAMAccountName=dave)")
res = db.search(base, ldb.SCOPE_SUBTREE, "(sAMAccountName=alice)", ["dn"])
m = ldb.Message(res[0].dn)
m["thumbnailPhoto"] = ldb.MessageElement(photo, ldb.FLAG_MOD_REPLACE, "thumbnailPhoto")
db.modify(m)

db.newgroup("xmpp-users")
db.newgroup("xmpp-admins")
db.newgroup("research", description="Research Team")
db.newgroup("all-staff")
db.add_remove_group_members("xmpp-users", ["alice", "dave", "jörg", "xmpp-admins"])
db.add_remove_group_members("xmpp-admins", ["carol"])
db.add_remove_group_members("research", ["alice", "carol"])

# Bulk users for paged searches: no password, so PASSWD_NOTREQD (0x20)
# with NORMAL_ACCOUNT (0x200); not disabled.
db.transaction_start()
staff = []
for i in range(1100):
    dn = "CN=staff%04d,CN=Users,%s" % (i, base)
    db.add({"dn": dn, "objectClass": "user", "sAMAccountName": "staff%04d" % i, "userAccountControl": "544"})
    staff.append(dn)
db.transaction_commit()
res = db.search(base, ldb.SCOPE_SUBTREE, "(sAMAccountName=all-staff)", ["dn"])
m = ldb.Message(res[0].dn)
m["member"] = ldb.MessageElement(staff, ldb.FLAG_MOD_ADD, "member")
db.modify(m)
PY
  # Publish atomically: a concurrent or interrupted run never sees half a cache.
  mkdir -p "$CACHE_ROOT"; tmp=$(mktemp -d "$CACHE_ROOT/.tmp.XXXXXX")
  cp -a "$D/." "$tmp/"; touch "$tmp/.complete"
  rm -rf "$CACHE"; mv "$tmp" "$CACHE"
  # Domains cached by earlier versions of this script are of no more use.
  find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf {} +
  how="provisioned (cold) and cached in $CACHE"
fi
t1=$(date +%s%3N)
samba -s "$C" -F -M single >"$D/samba.out" 2>&1 &
pid=$!
stop() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; exit 0; }
trap stop TERM INT
ok=
for _ in $(seq 1 300); do
  if LDAPTLS_CACERT="$D/tls-cert.pem" ldapsearch -x -H ldaps://127.0.0.1:636 -D alice@example.org -w 'AlicePw1!' \
    -b "$BASE" -s base dn >/dev/null 2>&1; then ok=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ok" ]; then
  echo "samba did not answer an LDAPS bind; its output and log:" >&2
  cat "$D/samba.out" >&2; tail -n 30 "$D"/log.samba 2>/dev/null >&2 || true
  kill "$pid" 2>/dev/null || true; exit 1
fi
t2=$(date +%s%3N)
echo "ready ldaps=ldaps://127.0.0.1:636 ldap=ldap://127.0.0.1:389 pid=$pid setup_ms=$((t1-t0)) start_ms=$((t2-t1)) $how"
wait "$pid"
echo "samba exited on its own; its output:" >&2; cat "$D/samba.out" >&2
exit 1
