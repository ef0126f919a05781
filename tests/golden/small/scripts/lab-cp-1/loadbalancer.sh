#!/usr/bin/env bash
# Rendered by ccp 0.1.0 for lab-cp-1 of cluster lab.
# Installs and (re)starts keepalived (the VIP 10.10.0.10).
# ccp has already put the configuration files in place; this checks them before any restart.
# Idempotent: a service is restarted only when its configuration changed ($1 lists what changed).
set -euo pipefail

say() { printf 'ccp: %s: %s\n' "$1" "$2"; }
export DEBIAN_FRONTEND=noninteractive
changed="${1:-}"

packages=(keepalived)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get install -y -qq "${missing[@]}" >/dev/null
  say packages "changed (${missing[*]})"
else
  say packages ok
fi

keepalived -t -f /etc/keepalived/keepalived.conf
if [[ " $changed " == *" keepalived "* ]] || ! systemctl is-active --quiet keepalived; then
  systemctl enable keepalived >/dev/null 2>&1
  systemctl restart keepalived
  say keepalived "changed (restarted)"
else
  say keepalived ok
fi
