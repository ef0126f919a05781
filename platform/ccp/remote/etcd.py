"""etcd on a kubeadm control plane, reached over SSH: etcdctl and etcdutl run inside etcd's own
container (the node need not have them installed) with kubeadm's health-check client certificate.
The backup, the scheduled backup script (rendered), restore and node removal all build their
commands from these.

crictl is used where the node has it; otherwise containerd's own ctr, which every node running
containerd has. kubeadm stopped requiring crictl in 1.31, and a node without it (the lab bundle
has no cri-tools) made `ccp backup` fail with "crictl: not found" on real nodes.
"""

import shlex

# `<RUNNING> NAME...` prints the ids of the running containers whose Kubernetes container name is one of NAME.
_RUNNING = r'''
if command -v crictl >/dev/null 2>&1; then
  for n in "$@"; do crictl ps --name "^$n\$" -q; done
  exit 0
fi
for n in "$@"; do
  for c in $(ctr -n k8s.io containers ls -q "labels.\"io.kubernetes.container.name\"==$n"); do
    ctr -n k8s.io tasks ls | awk -v c="$c" '$1 == c && $3 == "RUNNING" { print c }'
  done
done
'''
RUNNING = f"sh -c {shlex.quote(_RUNNING.strip())} ccp-running"

# `<ETCD> CMD ARGS...` runs CMD inside the running etcd container, exit status and output passed through.
_EXEC = r'''
id=$(%s etcd | head -n 1)
[ -n "$id" ] || { echo "etcd is not running on this node (no running etcd container)" >&2; exit 1; }
if command -v crictl >/dev/null 2>&1; then exec crictl exec "$id" "$@"; fi
exec ctr -n k8s.io tasks exec --exec-id "ccp-$$-$(date +%%s%%N)" "$id" "$@" </dev/null   # ctr passes stdin on; nothing here reads it
''' % RUNNING
ETCD = f"sh -c {shlex.quote(_EXEC.strip())} ccp-etcd"
CERTS = ("--endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
         "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key")
