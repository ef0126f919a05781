#!/usr/bin/env bash
# Build VMware's vSphere simulator (vcsim) and govc from Debian's govmomi source package,
# and optionally start vcsim. No network beyond Debian's apt archive is needed.
#
#   hack/vcsim.sh build            # -> .tools/bin/vcsim, .tools/bin/govc (idempotent)
#   hack/vcsim.sh start [PORT]     # build if needed, start on 127.0.0.1:PORT (default 8989), wait until it answers
#   hack/vcsim.sh stop
#   hack/vcsim.sh status
#
# Why this way: the -dev package ships the library but leaves out the vcsim/ and govc/ main
# packages; the *source* package has them. We fetch it with a private deb-src list so the
# system's apt sources are never edited.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${CCP_TOOLS_DIR:-$ROOT/.tools}
BIN=$TOOLS/bin
PORT=${2:-${VCSIM_PORT:-8989}}
PIDFILE=$TOOLS/vcsim-$PORT.pid
LOG=$TOOLS/vcsim-$PORT.log

log() { printf '[vcsim.sh] %s\n' "$*" >&2; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then log "need root to apt-get install ${missing[*]}"; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
  if [ -x "$BIN/vcsim" ] && [ -x "$BIN/govc" ]; then log "vcsim and govc already built in $BIN"; return 0; fi
  apt_install golang-go golang-github-vmware-govmomi-dev golang-github-kr-pretty-dev dpkg-dev
  mkdir -p "$TOOLS" "$BIN"
  local work=$TOOLS/build
  rm -rf "$work"; mkdir -p "$work/src" "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
  # A private deb-src list derived from the system's own Debian suites (no hosts hard-coded here).
  local srclist=$work/deb-src.list
  { { grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } | sed 's/^deb /deb-src /'
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk 'BEGIN{RS="";FS="\n"} {uris="";suites="";comps="";signed="";
             for(i=1;i<=NF;i++){split($i,a,": ");
               if(a[1]=="URIs")uris=a[2]; if(a[1]=="Suites")suites=a[2]; if(a[1]=="Components")comps=a[2]; if(a[1]=="Signed-By")signed=a[2]}
             n=split(suites,s," "); for(j=1;j<=n;j++) if(uris!="") printf "deb-src [signed-by=%s] %s %s %s\n", signed, uris, s[j], comps}' "$f"
    done; } | sort -u > "$srclist"
  [ -s "$srclist" ] || { log "could not derive a deb-src list from /etc/apt"; exit 1; }
  local aptopts=(-o "Dir::Etc::SourceList=$srclist" -o "Dir::Etc::SourceParts=/dev/null"
                 -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o "APT::Sandbox::User=root")
  log "fetching the govmomi source package"
  apt-get "${aptopts[@]}" update -qq
  (cd "$work/src" && apt-get "${aptopts[@]}" source -qq golang-github-vmware-govmomi >/dev/null 2>&1 \
     || apt-get "${aptopts[@]}" source --download-only -qq golang-github-vmware-govmomi >/dev/null)
  local srcdir
  srcdir=$(find "$work/src" -maxdepth 1 -mindepth 1 -type d -name 'golang-github-vmware-govmomi*' | head -n1)
  if [ -z "$srcdir" ]; then
    local dsc; dsc=$(ls "$work/src"/*.dsc | head -n1)
    (cd "$work/src" && dpkg-source -x --no-check "$dsc" >/dev/null)
    srcdir=$(find "$work/src" -maxdepth 1 -mindepth 1 -type d -name 'golang-github-vmware-govmomi*' | head -n1)
  fi
  # One GOPATH of our own: a split GOPATH fails to resolve the vendored-by-Debian packages.
  local gopath=$work/gopath
  mkdir -p "$gopath/src"
  cp -a /usr/share/gocode/src/. "$gopath/src/"
  local dest=$gopath/src/github.com/vmware/govmomi
  rm -rf "$dest/vcsim" "$dest/govc"
  cp -a "$srcdir/vcsim" "$dest/vcsim"
  cp -a "$srcdir/govc" "$dest/govc"
  log "compiling vcsim and govc (1-2 minutes)"
  (cd "$gopath" && GO111MODULE=off GOPATH=$gopath GOCACHE=$work/gocache CGO_ENABLED=0 \
      go build -o "$BIN/vcsim" github.com/vmware/govmomi/vcsim)
  (cd "$gopath" && GO111MODULE=off GOPATH=$gopath GOCACHE=$work/gocache CGO_ENABLED=0 \
      go build -o "$BIN/govc" github.com/vmware/govmomi/govc)
  rm -rf "$work"
  log "built $BIN/vcsim and $BIN/govc"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  build
  if running; then log "vcsim already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; return 0; fi
  log "starting vcsim on 127.0.0.1:$PORT (log: $LOG)"
  nohup "$BIN/vcsim" -l "127.0.0.1:$PORT" -api-version 8.0.3.0 -dc 1 -cluster 1 -host 3 -vm 2 >"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then log "vcsim is up: https://127.0.0.1:$PORT/sdk"; return 0; fi
    running || { log "vcsim exited; see $LOG"; tail -n 20 "$LOG" >&2; exit 1; }
    sleep 0.1
  done
  log "vcsim did not answer on port $PORT within 10 s; see $LOG"; exit 1
}

stop() {
  if running; then kill "$(cat "$PIDFILE")"; rm -f "$PIDFILE"; log "stopped"; else log "not running"; fi
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; else echo "not running"; exit 1; fi ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
