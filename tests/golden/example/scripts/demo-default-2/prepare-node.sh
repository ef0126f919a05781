#!/usr/bin/env bash
# Rendered by ccp 0.1.0 for demo-default-2 (worker) of cluster demo.
# Prepares a Kubernetes node. Idempotent: every step checks first and says "changed" or "ok";
# a second run changes nothing. ccp runs it with sudo and records its hash in /etc/ccp/prepared.
set -euo pipefail

say() { printf 'ccp: %s: %s\n' "$1" "$2"; }
export DEBIAN_FRONTEND=noninteractive

# -- swap: the kubelet refuses to run with it
if [ -n "$(swapon --show --noheadings 2>/dev/null)" ]; then
  swapoff --all
  say swap "changed (turned off)"
else
  say swap ok
fi
if grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then
  sed -i -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# ccp: \1/' /etc/fstab
  say fstab "changed (swap entries commented out)"
fi

# -- kernel modules and sysctls for container networking (and Elasticsearch's mmap count)
modules_file=/etc/modules-load.d/ccp-kubernetes.conf
printf 'overlay\nbr_netfilter\n' > "$modules_file.new"
# Judged by the feature, not /proc/modules: a kernel may have them built in (and then has no /proc/modules).
has_feature() {
  case "$1" in
    overlay) grep -qw overlay /proc/filesystems ;;
    br_netfilter) [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] ;;
  esac
}
for module in overlay br_netfilter; do
  if has_feature "$module"; then
    continue
  elif modprobe "$module" && has_feature "$module"; then
    say "module $module" "changed (loaded)"
  else
    say "module $module" "FAILED: not in this kernel and cannot be loaded (containers and Services need it)"; exit 3
  fi
done
if cmp -s "$modules_file.new" "$modules_file"; then rm -f "$modules_file.new"; else mv "$modules_file.new" "$modules_file"; say modules-load changed; fi

sysctl_file=/etc/sysctl.d/90-ccp-kubernetes.conf
cat > "$sysctl_file.new" <<'SYSCTL'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
vm.max_map_count = 262144
SYSCTL
if cmp -s "$sysctl_file.new" "$sysctl_file"; then
  rm -f "$sysctl_file.new"; say sysctl ok
else
  mv "$sysctl_file.new" "$sysctl_file"; sysctl --quiet --system; say sysctl changed
fi
if [ "$(sysctl -n vm.max_map_count)" -lt 262144 ]; then
  say vm.max_map_count "FAILED: $(sysctl -n vm.max_map_count) < 262144 (Elasticsearch would crash-loop)"; exit 3
fi

# -- time: certificates and etcd need a synchronised clock
if [ "$(timedatectl show --property=NTPSynchronized --value 2>/dev/null || echo unknown)" = yes ]; then
  say clock ok
else
  say clock "WARNING: not synchronised by NTP; check timesyncd/chrony"
fi

# -- packages: containerd and the Kubernetes tools pinned to 1.37.1
repo_file=/etc/apt/sources.list.d/ccp-kubernetes.list
# apt reads an armored key named *.asc itself (apt >= 1.4): no gpg needed on the node
keyring=/etc/apt/keyrings/ccp-kubernetes.asc
repo_line="deb [signed-by=$keyring] https://pkgs.k8s.io/core:/stable:/v1.37/deb/ /"
if [ ! -s "$keyring" ] || [ "$(cat "$repo_file" 2>/dev/null)" != "$repo_line" ]; then
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL "https://pkgs.k8s.io/core:/stable:/v1.37/deb/Release.key" -o "$keyring.new"   # on its own line: set -e stops here when it fails
  mv "$keyring.new" "$keyring"
  chmod 0644 "$keyring"
  echo "$repo_line" > "$repo_file"
  apt-get update -qq
  say apt-repository changed
fi
want="1.37.1"
have="$(dpkg-query -W -f='${Version}' kubeadm 2>/dev/null || true)"
# the Debian revision is cut off (1.36.2-1.1 -> 1.36.2; a pre-release 1.35.0~alpha.0-1 -> 1.35.0~alpha.0)
if ! command -v containerd >/dev/null || [ "${have%-*}" != "$want" ]; then
  apt-get install -y -qq --allow-downgrades --allow-change-held-packages containerd "kubeadm=$want-*" "kubelet=$want-*" "kubectl=$want-*" >/dev/null
  apt-mark hold kubeadm kubelet kubectl >/dev/null
  say packages "changed (kubeadm, kubelet, kubectl $want; containerd)"
else
  say packages ok
fi

# -- CNI plugins: the pod networks look in /opt/cni/bin; Debian's containernetworking-plugins puts them in /usr/lib/cni
install -d -m 0755 /opt/cni/bin
linked=0
for plugin in /usr/lib/cni/*; do
  [ -x "$plugin" ] || continue
  if [ ! -e "/opt/cni/bin/$(basename "$plugin")" ]; then ln -s "$plugin" /opt/cni/bin/; linked=$((linked + 1)); fi
done
if [ "$linked" -gt 0 ]; then say cni-plugins "changed ($linked linked into /opt/cni/bin)"; else say cni-plugins ok; fi

# -- containerd with the systemd cgroup driver and the pause image from the bill of materials.
# A node that may not lower oom_score_adj (a container host without CAP_SYS_RESOURCE) gets
# restrict_oom_score_adj, or every container start fails.
restrict=false
if ! (echo -998 > /proc/self/oom_score_adj) 2>/dev/null; then restrict=true; fi
install -d -m 0755 /etc/containerd
containerd config default \
  | sed -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
        -e 's#sandbox_image = ".*"#sandbox_image = "registry.k8s.io/pause:3.10.1"#' \
        -e "s/restrict_oom_score_adj = false/restrict_oom_score_adj = $restrict/" \
  > /etc/containerd/config.toml.new
if cmp -s /etc/containerd/config.toml.new /etc/containerd/config.toml; then
  rm -f /etc/containerd/config.toml.new; say containerd ok
else
  mv /etc/containerd/config.toml.new /etc/containerd/config.toml
  systemctl restart containerd
  say containerd "changed (systemd cgroups)"
fi
systemctl enable --now containerd >/dev/null 2>&1
systemctl enable kubelet >/dev/null 2>&1

install -d -m 0755 "$(dirname "/etc/ccp/prepared")"
echo "05c4706c1fe4c7bc" > "/etc/ccp/prepared"
say prepared "demo-default-2 (script 05c4706c1fe4c7bc)"
