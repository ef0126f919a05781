#!/bin/sh
# Rendered by ccp 0.1.0 for demo-lb-2 of cluster demo.
# NGINX's active health check for the API servers (its stream module has none): every 2s, each API
# server's /readyz; the upstream servers NGINX includes (ccp-apiservers.conf, beside nginx.conf) are rewritten
# with the failing ones marked down, and NGINX reloaded, only when that set changes. When every one fails, none is
# marked down (NGINX then tries them all, as without this check). `--all-up` writes the file with none down, once.
# The addresses in ccp-apiservers-held (one a line; ccp writes it while `ccp upgrade` changes that control plane)
# are marked down whatever their /readyz says, so clients leave an API server before its etcd or itself restarts
# (for 30 minutes at most: a list left by a ccp that was killed expires).
set -u
OUT="${CCP_APISERVERS:-/etc/nginx/ccp-apiservers.conf}"
HELD="${CCP_APISERVERS_HELD:-/etc/nginx/ccp-apiservers-held}"
SERVERS="10.10.0.22 10.10.0.23 10.10.0.24"

write() {   # $1: the servers marked down
  tmp="$OUT.tmp.$$"
  {
    echo "# Written by ccp-apiserver-health ($0): the API servers, those whose /readyz fails marked down."
    for s in $SERVERS; do
      case " $1 " in *" $s "*) down=" down" ;; *) down="" ;; esac
      echo "server $s:6443 max_fails=2 fail_timeout=10s$down;"
    done
  } >"$tmp" && mv -f "$tmp" "$OUT"
}

if [ "${1:-}" = "--all-up" ]; then
  write ""
  exit 0
fi
last="unknown"
while :; do
  down="" all=0 failing=0
  held=$(find "$HELD" -mmin -30 -exec cat {} \; 2>/dev/null | tr '\n' ' ' || true)   # a list ccp left behind expires
  for s in $SERVERS; do
    all=$((all + 1))
    case " $held " in *" $s "*) down="$down $s"; failing=$((failing + 1)); continue ;; esac
    curl -ksf --max-time 2 -o /dev/null "https://$s:6443/readyz" || { down="$down $s"; failing=$((failing + 1)); }
  done
  [ "$failing" -eq "$all" ] && down=""
  if [ "$down" != "$last" ]; then
    write "$down"
    echo "API servers marked down:${down:- none}"
    nginx -t -q && nginx -s reload 2>/dev/null
    last="$down"
  fi
  sleep 2
done
