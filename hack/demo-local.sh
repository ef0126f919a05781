#!/usr/bin/env bash
# `make demo`: the main job for real — a highly available cluster (2 NGINX/keepalived load balancers,
# 3 control planes, 2 workers) on systemd-nspawn machines on this host, installed by `ccp install` from
# the offline bundle `make lab-bundle` makes from ../shared/k8s — or, where there is none, from upstream
# packages and images (examples/local-upstream.yaml; the nodes reach out through this host). Needs root
# and ~4 GiB of free memory.
# The cluster keeps running afterwards; `make demo-clean` (ccp destroy) removes it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CCP=.venv/bin/ccp
say() { printf '\n[demo] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "make demo creates machines on this host (systemd-nspawn, a bridge, overlay mounts): run it as root" >&2
  exit 3
fi
shared=${CCP_SHARED_K8S:-$ROOT/../shared/k8s}
if [ -n "${CCP_DEMO_CONFIG:-}" ]; then
  CONFIG=$CCP_DEMO_CONFIG
elif [ -x "$shared/lab" ]; then
  CONFIG=examples/local.yaml   # the offline bundle made from ../shared/k8s
  hack/lab-bundle.sh
else
  # No lab build here: upstream packages and images, fetched by the nodes through this host (spec.local.nat),
  # with this host's resolvers as the nodes' DNS.
  say "no Kubernetes build at $shared: installing from upstream packages and images (needs outbound HTTPS)"
  CONFIG=.tools/local-upstream.yaml
  mkdir -p .tools
  .venv/bin/python - "$CONFIG" <<'PY'
import ipaddress, pathlib, sys, yaml
src = pathlib.Path("examples/local-upstream.yaml")
data = yaml.safe_load(src.read_text())
resolvers = []
for conf in ("/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"):   # past systemd-resolved's local stub
    p = pathlib.Path(conf)
    if p.exists():
        resolvers = [w[1] for w in (l.split() for l in p.read_text().splitlines()) if len(w) > 1 and w[0] == "nameserver"
                     and not ipaddress.ip_address(w[1]).is_loopback]
    if resolvers:
        break
if not resolvers:
    sys.exit("make demo: this host has no DNS resolver the nodes could use (only loopback ones in /etc/resolv.conf); "
             "set spec.nodes.network.dns in a copy of examples/local-upstream.yaml and run CCP_DEMO_CONFIG=<it> make demo")
data["spec"]["nodes"]["network"]["dns"] = resolvers[:3]
data["spec"]["ssh"]["privateKeyFile"] = str((src.parent / data["spec"]["ssh"]["privateKeyFile"]).resolve())
pathlib.Path(sys.argv[1]).write_text(yaml.safe_dump(data, sort_keys=False))
PY
fi
start=$(date +%s)
say "ccp config validate / plan / install --config $CONFIG"
$CCP config validate --config "$CONFIG"
$CCP plan --config "$CONFIG"
$CCP install --config "$CONFIG" --yes
name=$(.venv/bin/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["metadata"]["name"])' "$CONFIG")
vip=$(.venv/bin/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["spec"]["loadBalancer"]["vip"])' "$CONFIG")
say "kubectl get nodes, through the VIP $vip"
if [ -x .tools/lab/bin/kubectl ]; then
  .tools/lab/bin/kubectl --kubeconfig ".ccp/$name/kubeconfig" get nodes -o wide
else   # no kubectl on this host: the first control plane's own, whose admin.conf points at the VIP
  cp1=$(.venv/bin/python -c 'import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("phase") == "provision" and e.get("event") == "done":
        nodes = e["outputs"]["nodes"]
print(next(r["address"] for n, r in nodes.items() if r["role"] == "control-plane"))' ".ccp/$name/journal.jsonl")
  key=$(.venv/bin/python -c 'import sys, yaml, pathlib; c = pathlib.Path(sys.argv[1]); k = yaml.safe_load(c.read_text())["spec"]["ssh"]["privateKeyFile"]; print((c.parent / k).resolve())' "$CONFIG")
  ssh -i "$key" -o UserKnownHostsFile=".ccp/$name/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes "ccp@$cp1" \
    sudo kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide
fi
[ -x .tools/lab/bin/kubectl ] && KUBECTL=.tools/lab/bin/kubectl
say "done in $(( $(date +%s) - start ))s. The cluster keeps running:"
cat >&2 <<MSG
  kubectl:   ${KUBECTL:-kubectl} --kubeconfig .ccp/$name/kubeconfig get pods -A
  prove it:  $CCP validate --config $CONFIG
  diagnose:  $CCP diagnose --config $CONFIG
  remove it: make demo-clean   (= $CCP destroy --config $CONFIG --yes)
MSG
