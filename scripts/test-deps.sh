#!/usr/bin/env bash
# test-deps.sh: installs the Debian packages the tests use and builds the
# services they start, before `go test` runs, so that a fresh machine spends
# its install minutes outside the tests' own time limits (a cold Samba
# install inside TestLDAPActiveDirectory took 162 s of its 300).
# Not root: says what is missing and carries on; the tests then install
# nothing and skip (or, under CI=true, fail) naming what they lack.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pkgs=(
  # scripts/ldap: OpenLDAP and the Samba AD domain controller
  slapd samba samba-ad-dc samba-ad-provision winbind krb5-user ldap-utils openssl
  # e2e: Debian's slixmpp, its upload plugin's HTTP client, the browser,
  # the TURN server that checks the credentials koi gives (TestTURNCredentials)
  python3-slixmpp python3-aiohttp chromium coturn
)
"$here/ldap/install.sh" "${pkgs[@]}"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then exit $rc; fi
"$here/ferretdb.sh" >/dev/null
"$here/versitygw.sh" >/dev/null
