#!/usr/bin/env bash
# `make demo`: the main job for real — a highly available cluster (2 NGINX/keepalived load balancers,
# 3 control planes, 2 workers) on systemd-nspawn machines on this host, installed by `ccp install` from
# the offline bundle `make lab-bundle` makes from ../shared/k8s. Needs root and ~4 GiB of free memory.
# The cluster keeps running afterwards; `make demo-clean` (ccp destroy) removes it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CCP=.venv/bin/ccp
CONFIG=${CCP_DEMO_CONFIG:-examples/local.yaml}
say() { printf '\n[demo] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "make demo creates machines on this host (systemd-nspawn, a bridge, overlay mounts): run it as root" >&2
  exit 3
fi
shared=${CCP_SHARED_K8S:-$ROOT/../shared/k8s}
if [ ! -x "$shared/lab" ]; then
  echo "no Kubernetes build at $shared: make demo installs from the bundle made from it" >&2
  echo "to fix: put ccp's shared/ beside this checkout (or set CCP_SHARED_K8S), or point $CONFIG's offline.bundle at a bundle of your own" >&2
  exit 3
fi
hack/lab-bundle.sh
start=$(date +%s)
say "ccp config validate / plan / install --config $CONFIG"
$CCP config validate --config "$CONFIG"
$CCP plan --config "$CONFIG"
$CCP install --config "$CONFIG" --yes
name=$(.venv/bin/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["metadata"]["name"])' "$CONFIG")
vip=$(.venv/bin/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["spec"]["loadBalancer"]["vip"])' "$CONFIG")
say "kubectl get nodes, through the VIP $vip"
.tools/lab/bin/kubectl --kubeconfig ".ccp/$name/kubeconfig" get nodes -o wide
say "done in $(( $(date +%s) - start ))s. The cluster keeps running:"
cat >&2 <<MSG
  kubectl:   .tools/lab/bin/kubectl --kubeconfig .ccp/$name/kubeconfig get pods -A
  prove it:  $CCP validate --config $CONFIG
  diagnose:  $CCP diagnose --config $CONFIG
  remove it: make demo-clean   (= $CCP destroy --config $CONFIG --yes)
MSG
