#!/usr/bin/env bash
# install.sh PACKAGE... : installs the Debian packages that are missing, as
# root, without prompts and without starting their services (a system slapd
# on :389 would block Samba, whose LDAP ports are fixed).
# Exit status 3: something is missing and this is not root (callers skip).
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]} (run as root to install them with apt-get)" >&2
  exit 3
fi
if ! command -v apt-get >/dev/null; then
  echo "missing packages: ${missing[*]} (no apt-get on this machine)" >&2
  exit 3
fi
# Keep packages from starting their daemons during the install: the
# standard Debian switch is a policy-rc.d that exits 101. Only a file we
# created ourselves is removed again.
policy=/usr/sbin/policy-rc.d; ours=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; ours=1
fi
cleanup() { [ -n "$ours" ] && rm -f "$policy"; true; }
trap cleanup EXIT
t0=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; }
if ! apt_get install -y --no-install-recommends "${missing[@]}" >/tmp/koi-apt-install.log 2>&1; then
  # A fresh machine may have no package lists yet.
  apt_get update >>/tmp/koi-apt-install.log 2>&1 || true
  if ! apt_get install -y --no-install-recommends "${missing[@]}" >>/tmp/koi-apt-install.log 2>&1; then
    echo "apt-get install ${missing[*]} failed; see /tmp/koi-apt-install.log:" >&2
    tail -n 20 /tmp/koi-apt-install.log >&2
    exit 1
  fi
fi
echo "installed ${missing[*]} in $(( $(date +%s)-t0 )) s" >&2
