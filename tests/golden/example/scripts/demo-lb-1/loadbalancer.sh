#!/usr/bin/env bash
# Rendered by ccp 0.1.0 for demo-lb-1 of cluster demo.
# Installs and (re)starts NGINX (stream proxy for the API) and keepalived (the VIP 10.10.0.10).
# ccp has already put the configuration files in place; this checks them before any restart.
# Idempotent: a service is restarted only when its configuration changed ($1 lists what changed).
set -euo pipefail

say() { printf 'ccp: %s: %s\n' "$1" "$2"; }
export DEBIAN_FRONTEND=noninteractive
changed="${1:-}"

packages=(keepalived nginx libnginx-mod-stream)
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

# the API servers NGINX includes: all up at first, and whenever their set changed (the health check's script)
if [ ! -f /etc/nginx/ccp-apiservers.conf ] || [[ " $changed " == *" ccp-apiserver-health "* ]]; then
  /etc/nginx/ccp-apiserver-health.sh --all-up
fi
nginx -t -q
if [[ " $changed " == *" nginx "* ]] || ! systemctl is-active --quiet nginx; then
  systemctl enable nginx >/dev/null 2>&1
  systemctl restart nginx
  say nginx "changed (restarted)"
else
  say nginx ok
fi

if [[ " $changed " == *" ccp-apiserver-health "* ]] || ! systemctl is-active --quiet ccp-apiserver-health; then
  systemctl daemon-reload
  systemctl enable ccp-apiserver-health >/dev/null 2>&1
  systemctl restart ccp-apiserver-health
  say ccp-apiserver-health "changed (restarted)"
else
  say ccp-apiserver-health ok
fi

keepalived -t -f /etc/keepalived/keepalived.conf
if [[ " $changed " == *" keepalived "* ]] || ! systemctl is-active --quiet keepalived; then
  systemctl enable keepalived >/dev/null 2>&1
  systemctl restart keepalived
  say keepalived "changed (restarted)"
else
  say keepalived ok
fi
