#!/usr/bin/env bash
# Rendered by ccp 0.1.0 for lab-cp-1 of cluster lab.
# Certificate renewal (ccp-cert-renew.timer: daily at 03:00 on this control plane, 20 minutes after
# the one before it): when the soonest of the certificates kubeadm renews expires in fewer than 30
# days, `kubeadm certs renew all`, then the static pods restart to load them (the same lines as `ccp certs
# renew`). One control plane at a time: each checks at its own time, and none renews while another control
# plane's API server is not ready. What it did goes to the journal (journalctl -u ccp-cert-renew): names and
# dates, never a key. CCP_RENEW_BEFORE_DAYS overrides the threshold (for the service: in /etc/ccp/cert-renew.env);
# a value above the certificates' lifetime forces a renewal.
# Each run first approves the kubelets' serving certificate requests that name only their own node and its
# address (spec.security.certificates.kubeletServing).
set -euo pipefail
umask 077
before_days=${CCP_RENEW_BEFORE_DAYS:-30}
say() { echo "ccp-cert-renew: $*"; }
# The kubelets' serving certificate requests (their rotation too): approved only for a node of cluster.yaml and
# for nothing but its own name and address; any other is named and left pending
sh -c 'list=$(kubectl --kubeconfig /etc/kubernetes/admin.conf get csr -o jsonpath='"'"'{range .items[?(@.spec.signerName=="kubernetes.io/kubelet-serving")]}{.metadata.name}{" "}{.status.conditions[*].type}{"\n"}{end}'"'"') || exit 1; for name in $(printf '"'"'%s\n'"'"' "$list" | awk '"'"'NF == 1 { print $1 }'"'"'); do user=$(kubectl --kubeconfig /etc/kubernetes/admin.conf get csr "$name" -o jsonpath='"'"'{.spec.username}'"'"'); why=; case "$user" in system:node:lab-cp-1) want='"'"'DNS:lab-cp-1 IPAddress:10.10.0.20'"'"' ;; system:node:lab-pool-a-1) want='"'"'DNS:lab-pool-a-1 IPAddress:10.10.0.21'"'"' ;; *) echo "ccp-cert-renew: request $name of $user: not a node of cluster.yaml; not approved" >&2; continue ;; esac; node=${user#system:node:}; kubectl --kubeconfig /etc/kubernetes/admin.conf get csr "$name" -o jsonpath='"'"'{range .spec.groups[*]}{@}{"\n"}{end}'"'"' | grep -qx system:nodes || why="$user is not in the group system:nodes"; usages=$(kubectl --kubeconfig /etc/kubernetes/admin.conf get csr "$name" -o jsonpath='"'"'{range .spec.usages[*]}{@}{"\n"}{end}'"'"'); printf '"'"'%s\n'"'"' "$usages" | grep -qx '"'"'server auth'"'"' || why="it does not ask for server auth"; if printf '"'"'%s\n'"'"' "$usages" | grep -qvx -e '"'"'server auth'"'"' -e '"'"'digital signature'"'"' -e '"'"'key encipherment'"'"'; then why="it asks for the usages $(printf '"'"'%s\n'"'"' "$usages" | tr '"'"'\n'"'"' '"'"','"'"'): only server auth"; fi; text=$(kubectl --kubeconfig /etc/kubernetes/admin.conf get csr "$name" -o jsonpath='"'"'{.spec.request}'"'"' | base64 -d | openssl req -noout -text 2>/dev/null) || why="its request is not a PEM certificate request"; subject=$(printf '"'"'%s\n'"'"' "$text" | sed -n '"'"'s/^ *Subject: *//p'"'"'); [ "$subject" = "O = system:nodes, CN = $user" ] || why="its subject is $subject, not O=system:nodes, CN=$user"; sans=$(printf '"'"'%s\n'"'"' "$text" | grep -A1 '"'"'X509v3 Subject Alternative Name'"'"' | tail -n 1 | tr -d '"'"' '"'"' | tr '"'"','"'"' '"'"' '"'"'); [ -n "$sans" ] || why="it names no DNS name or address"; for san in $sans; do case " $want " in *" $san "*) ;; *) why="it asks for $san: only $want (cluster.yaml)" ;; esac; done; if [ -n "$why" ]; then echo "ccp-cert-renew: request $name of $node not approved: $why" >&2; continue; fi; kubectl --kubeconfig /etc/kubernetes/admin.conf certificate approve "$name" >/dev/null && echo "ccp-cert-renew: approved request $name: the serving certificate of $node"; done; exit 0' || say "the kubelets' serving certificate requests could not be read: none approved now" >&2
# This control plane's lock, held by whatever changes its static pods (ccp too: kubeadm upgrade, certs renew,
# an API server restart): wait for it, then look at the certificates as they are by then
exec 9>>/run/ccp-control-plane.lock
if ! flock -n 9; then
  say "waiting for another change to the static pods of lab-cp-1 to end (/run/ccp-control-plane.lock)"
  flock -w 900 9 || { say "/run/ccp-control-plane.lock stayed held for 900s: nothing done; the next run tries again" >&2; exit 1; }
fi

# "DAYS NAME DATE" of the soonest certificate kubeadm renews (not the CAs, not externally managed ones)
soonest() {
  local now name date ext missing end first="" first_name="" first_date=""
  now=$(date +%s)
  while read -r name date ext missing; do
    if [ "$ext" != false ] || [ "$missing" != false ]; then continue; fi
    end=$(date -d "$date" +%s)
    if [ -z "$first" ] || [ "$end" -lt "$first" ]; then first=$end first_name=$name first_date=$date; fi
  done < <(kubeadm certs check-expiration \
             -o jsonpath='{range .certificates[*]}{.name} {.expirationDate} {.externallyManaged} {.missing}{"\n"}{end}' 2>/dev/null)
  [ -n "$first" ] || return 1
  echo "$(( (first - now) / 86400 )) $first_name $first_date"
}

read -r days name date < <(soonest) || { say "kubeadm lists no certificate here: is lab-cp-1 a control plane?" >&2; exit 1; }
if [ "$days" -ge "$before_days" ]; then
  say "nothing to renew: the soonest, $name, expires $date ($days days left; renewing below $before_days)"
  exit 0
fi
say "renewing: $name expires $date ($days days left, below $before_days)"
out=$(mktemp)
if ! kubeadm certs renew all >"$out" 2>&1; then
  say "kubeadm certs renew all failed; its last lines:" >&2
  tail -n 5 "$out" >&2
  rm -f "$out"
  exit 1
fi
say "kubeadm renewed $(grep -c ' renewed$' "$out" || true) certificates"
rm -f "$out"
say "restarting the static pods: their manifests out of /etc/kubernetes/manifests and back"
sh -c 'mkdir -p /etc/kubernetes/ccp-parked-manifests; for f in /etc/kubernetes/ccp-parked-manifests/*.yaml; do [ -f "$f" ] && mv "$f" /etc/kubernetes/manifests/; done; mv /etc/kubernetes/manifests/*.yaml /etc/kubernetes/ccp-parked-manifests/ && sleep 3 && { running() { sh -c '"'"'if command -v crictl >/dev/null 2>&1; then
  for n in "$@"; do crictl ps --name "^$n\$" -q; done
  exit 0
fi
for n in "$@"; do
  for c in $(ctr -n k8s.io containers ls -q "labels.\"io.kubernetes.container.name\"==$n"); do
    ctr -n k8s.io tasks ls | awk -v c="$c" '"'"'"'"'"'"'"'"'$1 == c && $3 == "RUNNING" { print c }'"'"'"'"'"'"'"'"'
  done
done'"'"' ccp-running "$@"; }; gone=; i=0; while [ $i -lt 120 ]; do i=$((i+1)); [ -z "$(running etcd kube-apiserver kube-controller-manager kube-scheduler)" ] && { gone=1; break; }; if [ $i -gt 5 ]; then api=$(running kube-apiserver); if [ -n "$api" ] && ! curl -ksf --max-time 2 https://127.0.0.1:6443/readyz >/dev/null 2>&1; then for c in $api; do ctr -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true; done; fi; fi; sleep 1; done; [ -n "$gone" ] || echo "static pods still run 120 s after their manifests were moved away" >&2; } && mv /etc/kubernetes/ccp-parked-manifests/*.yaml /etc/kubernetes/manifests/ && rmdir /etc/kubernetes/ccp-parked-manifests' || { say "the static pods did not restart: look at /etc/kubernetes/manifests and /etc/kubernetes/ccp-parked-manifests" >&2; exit 1; }
sh -c 'for i in $(seq 1 60); do curl -ksf --max-time 5 https://127.0.0.1:6443/readyz >/dev/null && exit 0; sleep 5; done; echo '"'"'the API did not answer through 127.0.0.1:6443 within 300s'"'"' >&2; exit 1' || { say "this node's API server is not ready after the restart" >&2; exit 1; }
sh -c 'for i in $(seq 1 60); do curl -ksf --max-time 5 https://10.10.0.10:6443/readyz >/dev/null && exit 0; sleep 5; done; echo '"'"'the API did not answer through 10.10.0.10:6443 within 300s'"'"' >&2; exit 1' || { say "the API does not answer through 10.10.0.10:6443 after the restart" >&2; exit 1; }
read -r days name date < <(soonest) || true
say "renewed; the API answers through 10.10.0.10:6443; the soonest, $name, now expires $date ($days days left)"
