#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs to run ccp's demo and tests:
# Debian packages, a virtualenv with ccp and its test extras, and vcsim built from source.
# Idempotent: a second run only checks.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf '[setup] %s\n' "$*" >&2; }

PY=${PYTHON:-python3}
missing=()
command -v ssh-keygen >/dev/null || missing+=(openssh-client)   # the demo key; SSH tests later
command -v make >/dev/null || missing+=(make)
command -v sudo >/dev/null || missing+=(sudo)               # ccp runs node commands with sudo; the SSH tests do too
command -v ip >/dev/null || missing+=(iproute2)           # keepalived -t runs in a network namespace of the tests
command -v shellcheck >/dev/null || missing+=(shellcheck)   # rendered scripts are checked
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)             # nginx -t on the rendered load-balancer config
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
[ -x /usr/sbin/keepalived ] || missing+=(keepalived)        # keepalived -t on the rendered VRRP config
"$PY" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
# The appliance (ccp appliance build, tests/appliance): a Debian root filesystem, a bootable disk,
# the VMDK, the OVF environment ISO, and QEMU to boot it.
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
# provisioner: local (make demo, tests/local): systemd-nspawn machines on this host
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v sfdisk >/dev/null || missing+=(fdisk)
command -v extlinux >/dev/null || missing+=(extlinux)
[ -e /usr/lib/syslinux/mbr/mbr.bin ] || missing+=(syslinux-common)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v xorriso >/dev/null || missing+=(xorriso)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}"
    log "installing them needs root: run this as root (or: sudo apt-get install ${missing[*]}), then run it again"
    exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  # nginx and keepalived are needed as config checkers only: their services must not start here.
  blocker=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && blocker=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$blocker" ] && rm -f /usr/sbin/policy-rc.d
fi
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.ccp-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements/test.lock -nt "$stamp" ]; then
  log "installing ccp and its test extras into .venv (versions from requirements/test.lock)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -c requirements/test.lock -e '.[test]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -c 'import ccp, typer, pydantic, jinja2, hcl2, hypothesis, pexpect, xmlschema' || { log "the Python install failed"; exit 1; }
  touch "$stamp"
fi

hack/vcsim.sh build

if [ ! -f .tools/demo-ssh/id_ed25519 ]; then
  mkdir -p .tools/demo-ssh
  ssh-keygen -q -t ed25519 -N '' -C ccp-demo -f .tools/demo-ssh/id_ed25519
fi
log "ready: .venv/bin/ccp, .tools/bin/vcsim, .tools/bin/govc"
