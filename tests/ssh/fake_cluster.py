"""FakeCluster: one recording SSH server per node (asyncssh, each on its own loopback address) and a
small model of what kubeadm and the scripts would change on real machines. It is a fake: it runs no
command, it answers the commands ccp sends from that model, and records them all with timings so
tests can check order, batching and idempotency. Uploads land in a per-node SFTP chroot."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import yaml

from ccp.remote import kubelet_serving

from tests.conftest import example_data, write_config
from tests.ssh.fake_apiserver import ApiServersFake
from tests.ssh.servers import _Loop

MUTATING = ("enable --now", "disable --now", "member remove", "kubeadm reset", "mv -f /tmp/ccp-", "bash /var/lib/ccp/", "kubeadm init", "kubeadm join", "kubeadm token create",
            "upload-certs", "certificate-key", "kubeadm certs renew", "ccp-parked-manifests", "kubeadm upgrade", "bash -s")
ADMIN_CONF = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "kubernetes", "cluster": {"server": "https://10.0.0.1:6443",
                                                             "certificate-authority-data": "Q0EtREFUQQ=="}}],
              "users": [{"name": "kubernetes-admin", "user": {"client-certificate-data": "Q0VSVC1EQVRB",
                                                             "client-key-data": "S0VZLURBVEEtU0VDUkVU"}}],
              "contexts": [{"name": "kubernetes-admin@kubernetes", "context": {"cluster": "kubernetes", "user": "kubernetes-admin"}}],
              "current-context": "kubernetes-admin@kubernetes"}
TOKEN = "abcdef.0123456789abcdef"
CERT_KEY = "c" * 64


LOCKED = re.compile(r"flock -w \d+ -E 75 /run/ccp-control-plane.lock sh -c (.*)", re.S)
HURRIED = re.compile(r"was=\$\(cksum < \S+ 2>/dev/null\); (.*?) & k=\$!; .*; wait \$k", re.S)   # static_pods.hurried


def unwrap(command: str) -> tuple[str, list[str], bool, bool]:
    """'sudo -n -- sh -c SCRIPT' or 'sh -c SCRIPT' -> (script without the secret reads, secret names, whether it
    runs under the control plane's lock: static_pods.locked, whose flock wrapper is taken off too, and whether
    its API server restart is hurried: static_pods.hurried, taken off as well)."""
    parts = shlex.split(command)
    script = parts[-1]
    names = re.findall(r"IFS= read -r (\w+); export \1; ", script)
    script = re.sub(r"IFS= read -r \w+; export \w+; ", "", script)
    m = LOCKED.fullmatch(script)
    if m:
        (script,) = shlex.split(m.group(1))
    h = HURRIED.fullmatch(script)
    if h:
        script = h.group(1)
    return script, names, bool(m), bool(h)


@dataclass
class Record:
    node: str
    script: str
    start: float
    end: float
    secrets: dict = field(default_factory=dict)
    locked: bool = False     # run under the control plane's lock (static_pods.locked)
    hurried: bool = False    # its API server restart hurried (static_pods.hurried)


class FakeCluster:
    def __init__(self, names: list[str], addresses: dict[str, str], port: int, authorized_key: Path, root: Path,
                 fail: dict[str, str] | None = None, join_seconds: float = 0.3):
        self.names, self.addresses, self.port = names, addresses, port
        self.authorized_key, self.root = authorized_key, root
        self.fail = fail or {}
        self.lb_health = False     # the load balancers run ccp-apiserver-health (lb_hold can hold an API server out)
        self.join_seconds = join_seconds
        self.files: dict[str, dict[str, str]] = {n: {} for n in names}
        self.modes: dict[str, dict[str, str]] = {n: {} for n in names}   # octal mode each upload was given
        self.apiserver_files: set[str] = set()   # files the cluster's kube-apiserver flags name (kubeadm-config)
        self.prepared: dict[str, str] = {}
        self.lb_ok: set[str] = set()
        self.initialized = False
        self.members: set[str] = set()
        self.admin_conf: set[str] = set()     # nodes holding /etc/kubernetes/admin.conf
        self.etcd: set[str] = set()           # etcd members (kubeadm names them after their nodes)
        self.etcd_unhealthy = False
        self.etcd_sick: set[str] = set()          # members that answer the health check as unhealthy
        self.timers: dict[str, set[str]] = {}      # systemd timer unit (ccp-etcd-backup, ccp-cert-renew) -> nodes enabled on
        self.renew_failed: set[str] = set()        # control planes whose last ccp-cert-renew run failed
        self.planted_modes: dict[str, dict[str, str]] = {}   # node -> {path: "MODE OWNER"} on top of kubeadm's files
        self.sudo_refused: set[str] = set()        # nodes whose sudo refuses diagnose's hardening script
        self.parked: dict[str, list[str]] = {}      # node -> manifests moved aside by ccp restore
        self.api_down: set[str] = set()             # nodes whose own API server does not answer /readyz
        self.restored: dict[str, list[str]] = {}    # node -> the etcdutl argv it ran
        self.restore_markers: set[str] = set()
        self.restore_fail: set[str] = set()         # nodes whose next restore fails once
        self.events: list[tuple[str, str]] = []     # (node, what) in order, for restore
        self.records: list[Record] = []
        self.unknown: list[tuple[str, str]] = []
        self.renewed: list[str] = []
        self.restarted: list[str] = []
        self.api_down_after_renew: set[str] = set()
        self.upgraded: dict[str, list[str]] = {}
        self.serving: set[str] = set()                # kubelets holding a serving certificate the CA signed
        self.serving_ask: dict[str, dict] = {}        # node -> what its kubelet's request asks for besides (request())
        self.csr_approved: list[str] = []
        self.kubelet_off: set[str] = set()            # kubelets whose config says serverTLSBootstrap: false
        self.kubelet_cm = {"serverTLSBootstrap": True}   # kubeadm's kubelet-config ConfigMap, its kubelet key
        self.snapshot = b""
        self.damage_snapshot = False
        self.upgrade_fail: dict[str, str] = {}
        self.upgrade_delay: dict[str, float] = {}     # node -> seconds its `bash -s kubeadm` takes (time to signal ccp)
        self.upgraded_file: Path | None = None        # `upgraded` kept there too, for a ccp in a process of its own
        self.host_keys = {n: asyncssh.generate_private_key("ssh-ed25519") for n in names}
        self.apis = ApiServersFake(self)               # the control planes' API servers and what etcd stores
        self._servers = []

    # -------------------------------------------------- servers
    def start(self) -> "FakeCluster":
        async def go():
            for name in self.names:
                chroot = self.root / name
                (chroot / "tmp").mkdir(parents=True, exist_ok=True)
                server = await asyncssh.create_server(
                    asyncssh.SSHServer, self.addresses[name], self.port, server_host_keys=[self.host_keys[name]],
                    authorized_client_keys=str(self.authorized_key),
                    process_factory=lambda p, n=name: self.handle(n, p),
                    sftp_factory=lambda chan, c=chroot: asyncssh.SFTPServer(chan, chroot=str(c)), encoding="utf-8")
                self._servers.append(server)
        _Loop.get().run(go())
        return self

    def down(self, node: str) -> None:
        """The node stops answering SSH, as a machine that was killed."""
        async def go():
            server = self._servers[self.names.index(node)]
            server.close()
            await server.wait_closed()
        _Loop.get().run(go())

    def stop(self) -> None:
        async def go():
            for s in self._servers:
                s.close()
                await s.wait_closed()
        _Loop.get().run(go())

    # -------------------------------------------------- the model
    async def handle(self, node: str, process) -> None:
        script, secret_names, locked, hurried = unwrap(process.command)
        stdin = await process.stdin.read()   # ccp always ends stdin; a script may arrive on it (bash -s)
        secrets = dict(zip(secret_names, stdin.splitlines()))
        self.stdin = stdin
        start = time.monotonic()
        code, out, err = await self.apis.answer(node, script, stdin) or await self.answer(node, script, secrets)
        self.records.append(Record(node, script, start, time.monotonic(), secrets, locked, hurried))
        if out:
            process.stdout.write(out if out.endswith("\n") else out + "\n")
        if err:
            process.stderr.write(err if err.endswith("\n") else err + "\n")
        process.exit(code)

    async def answer(self, node: str, s: str, secrets: dict) -> tuple[int, str, str]:
        files = self.files[node]
        if s.startswith("[ -f /etc/nginx/ccp-apiservers.conf ] ||"):   # lb_hold.hold_script
            if not self.lb_health:
                return 3, "", "no /etc/nginx/ccp-apiservers.conf: this load balancer has no API server health check yet"
            return 0, "", ""
        if s == "rm -f /etc/nginx/ccp-apiservers-held":
            return 0, "", ""
        if s.startswith("cat /etc/ccp/prepared"):
            return 0, self.prepared.get(node, ""), ""
        if "mv -f /tmp/ccp-" in s:   # an upload put into place (ssh._place)
            modes = {src: mode for mode, src in re.findall(r"chmod (\d+) (/tmp/ccp-\w+/\d+)", s)}
            for src, dest in re.findall(r"mv -f (/tmp/ccp-\w+/\d+) (\S+)", s):
                files[dest.strip("'")] = (self.root / node / src.lstrip("/")).read_text()
                self.modes[node][dest.strip("'")] = modes.get(src, "")
            return 0, "", ""
        if s.startswith("rm -rf /tmp/ccp-"):
            return 0, "", ""
        if s.startswith("rm -rf /var/lib/ccp/packages /var/lib/ccp/images"):   # hosts/prepare, before its upload
            for path in [p for p in files if p.startswith(("/var/lib/ccp/packages/", "/var/lib/ccp/images/"))]:
                del files[path]
            return 0, "", ""
        if re.fullmatch(r"echo \w+ > /etc/ccp/prepared", s):   # ccp upgrade: the node as prepared at the target
            self.prepared[node] = s.split()[1]
            return 0, "", ""
        if s.startswith("bash /var/lib/ccp/prepare-node.sh"):
            if node in self.fail:
                return 1, "ccp: swap: ok", f"E: {self.fail[node]}"
            text = files["/var/lib/ccp/prepare-node.sh"]
            self.prepared[node] = re.search(r'echo "(\w+)" > "/etc/ccp/prepared"', text).group(1)
            return 0, "ccp: swap: ok\nccp: packages: changed", ""
        if s.startswith("sha256sum "):
            lines = [f"{hashlib.sha256(files[p].encode()).hexdigest()}  {p}" for p in shlex.split(s.split(" 2>")[0])[1:] if p in files]
            return 0, "\n".join(lines), ""
        if s.startswith("cat /etc/kubernetes/ccp/"):
            path = s.split()[1]
            return (0, files[path], "") if path in files else (1, "", f"cat: {path}: No such file or directory")
        m = re.fullmatch(r"systemctl is-enabled (ccp-[\w-]+)\.timer", s)
        if m:
            return (0, "enabled", "") if node in self.timers.get(m.group(1), ()) else (1, "disabled", "")
        if s.startswith("for f in /etc/kubernetes/pki/*.crt"):   # diagnose's PKI listing: no certificate here
            return 0, "", ""
        if s.startswith("for f in /etc/kubernetes/manifests/kube-apiserver.yaml"):   # diagnose's hardening facts
            from tests.unit.test_hardening import node_output   # a node as kubeadm and ccp set it up
            if node in self.sudo_refused:
                return 1, "", "sudo: a password is required"
            return 0, node_output("-cp-" in node, modes=self.planted_modes.get(node)), ""
        if s.startswith("for u in timer service; do systemctl show ccp-cert-renew"):
            return 0, self._renewal_state(node), ""
        if s.startswith("systemd-analyze calendar "):
            import subprocess   # the real systemd on this machine judges the expression
            r = subprocess.run(["systemd-analyze", "calendar", shlex.split(s)[2]], capture_output=True, text=True)
            return r.returncode, r.stdout, r.stderr
        m = re.fullmatch(r"systemctl daemon-reload && systemctl enable --now (ccp-[\w-]+)\.timer", s)
        if m:
            self.timers.setdefault(m.group(1), set()).add(node)
            return 0, "", ""
        m = re.match(r"systemctl disable --now (ccp-[\w-]+)\.timer", s)
        if m:
            self.timers.get(m.group(1), set()).discard(node)
            for path in s.split("rm -f ", 1)[1].split(";")[0].split():
                files.pop(path, None)
            return 0, "", ""
        if s.startswith("test -f /etc/kubernetes/manifests/etcd.yaml -o"):
            return (0 if node in self.etcd and not self.parked.get(node) else 1), "", ""
        if s.startswith("set -e; mkdir -p /etc/kubernetes/ccp-restore-parked"):
            self.parked[node] = ["kube-controller-manager.yaml", "kube-scheduler.yaml", "kube-apiserver.yaml", "etcd.yaml"]
            self.events.append((node, "park"))
            return 0, "", ""
        if s.startswith("test -f /var/lib/ccp/restore/restored-"):
            return (0 if node in self.restore_markers else 1), "", ""
        if s.startswith("set -e; [ -f /var/lib/ccp/restore/restored-"):
            if any(n in self.etcd and not self.parked.get(n) for n in self.names):
                return 1, "", "an etcd member still runs: refusing to restore"
            if node in self.restore_fail:
                self.restore_fail.discard(node)
                return 1, "", "Error: snapshot restore: disk full"
            argv = shlex.split(s.split(" ccp-etcd-restore-", 1)[1].split(";", 1)[0])[1:]
            self.restored[node] = argv
            self.restore_markers.add(node)
            self.events.append((node, "restore"))
            return 0, "", ""
        if s.startswith("test -d /etc/kubernetes/ccp-restore-parked -o -d /var/lib/ccp/restore"):
            pending = self.parked.get(node) or node in self.restore_markers or any(
                p.startswith("/var/lib/ccp/restore/") for p in files)
            return (0 if pending else 1), "", ""
        if s.startswith("set -e; [ ! -f /etc/kubernetes/ccp-restore-parked/"):
            manifest = s.split("ccp-restore-parked/", 1)[1].split(" ", 1)[0]
            if manifest in self.parked.get(node, []):
                self.parked[node].remove(manifest)
                self.events.append((node, f"start {manifest}"))
            return 0, "", ""
        if s.startswith("i=0; while") and "127.0.0.1:10257/healthz" in s:   # the restore's wait for the controllers
            running = not {"kube-controller-manager.yaml", "kube-scheduler.yaml"} & set(self.parked.get(node, []))
            self.events.append((node, "controllers"))
            return (0, "", "") if running else (1, "", "https://127.0.0.1:10257/healthz does not answer after 180s")
        if s.startswith("i=0; while") and "-l tier=control-plane" in s:   # the restore's wait for the pods' status
            self.events.append((node, "settled"))
            return 0, "", ""
        if s == "rm -rf /var/lib/ccp/restore":
            self.restore_markers.discard(node)
            for path in [p for p in files if p.startswith("/var/lib/ccp/restore/")]:
                files.pop(path)
            self.events.append((node, "clean"))
            return 0, "", ""
        if s.startswith("systemctl is-active"):
            return 0, "\n".join("active" if node in self.lb_ok else "inactive" for _ in s.split()[2:]), ""
        if s.startswith("bash /var/lib/ccp/loadbalancer.sh"):
            self.lb_ok.add(node)
            return 0, "ccp: keepalived: changed (restarted)", ""
        if s.startswith("test -f /etc/kubernetes/admin.conf"):
            return (0 if node in self.admin_conf else 1), "", ""
        if s == "test -f /etc/kubernetes/manifests/etcd.yaml":   # a control plane's join went as far as etcd
            return (0 if node in self.etcd else 1), "", ""
        if s.startswith("test -f /etc/kubernetes/kubelet.conf"):
            return (0 if node in self.members else 1), "", ""
        if s == "kubeadm certs certificate-key":
            return 0, CERT_KEY, ""
        if "kubeadm init --config" in s:
            # kubeadm's own rule (it refuses the mix): the key travels in the config, never as a flag
            assert "--certificate-key" not in s, "kubeadm: can not mix '--config' with arguments [certificate-key]"
            assert s.startswith("umask 077;") and "/run/ccp/" in s
            assert secrets.get("CCP_CERTIFICATE_KEY") == CERT_KEY
            self.apiserver_files = self._named_files(files["/etc/ccp/kubeadm/init.yaml"])
            missing = self.apiserver_files - set(files)
            if missing:   # the static pod would crash-loop: kubeadm init would time out waiting for the API
                return 1, "", f"[wait-control-plane] kube-apiserver did not start: missing {sorted(missing)}"
            self.initialized = True
            self.members.add(node)
            self.etcd.add(node)
            self.admin_conf.add(node)
            self.apis.init(node, files["/etc/ccp/kubeadm/init.yaml"])
            return 0, "[init] Using Kubernetes version\nYour Kubernetes control-plane has initialized successfully!", ""
        if s.startswith("curl -ksf") and "https://127.0.0.1:6443/readyz" in s:   # the node's own API server
            up = node in self.members and not self.parked.get(node) and node not in self.api_down
            return (0 if up else 7), "ok" if up else "", ""
        if s.startswith("curl -ksf"):
            up = self.initialized and not getattr(self, "initialized_api_down", False) and not any(self.parked.values())
            return (0 if up else 7), "ok" if up else "", ""
        if s.startswith("kubeadm token create"):
            return 0, TOKEN, ""
        if s.startswith("openssl x509 -pubkey"):
            return 0, "d" * 64, ""
        if s.startswith("kubeadm init phase upload-certs"):
            return 0, "[upload-certs] Storing the certificates", ""
        if s.startswith("umask 077;") and "kubeadm join" in s:
            await asyncio.sleep(self.join_seconds)
            if node in self.fail:
                return 1, "", f"error execution phase preflight: {self.fail[node]}"
            assert secrets["CCP_BOOTSTRAP_TOKEN"] == TOKEN
            missing = self.apiserver_files - set(files) if secrets.get("CCP_CERTIFICATE_KEY") else set()
            if missing:   # a joining control plane's API server runs with the cluster's flags
                return 1, "", f"error execution phase wait-control-plane: kube-apiserver: missing {sorted(missing)}"
            self.members.add(node)
            if secrets.get("CCP_CERTIFICATE_KEY"):   # a control plane: etcd member, and kubeadm writes admin.conf
                self.etcd.add(node)
                self.admin_conf.add(node)
                self.apis.joined(node)
            return 0, "This node has joined the cluster", ""
        if s in ("bash -s kubeadm", "bash -s kubelet") or s.startswith("kubeadm upgrade "):
            step = s.split()[-1] if s.startswith("bash") else " ".join(s.split()[1:3])
            if step == "kubeadm" and node in self.upgrade_delay:
                await asyncio.sleep(self.upgrade_delay[node])
            if self.upgrade_fail.get(node) == step:
                return 1, "", f"[upgrade] {step} failed on {node}"
            self.upgraded.setdefault(node, []).append(step)
            if self.upgraded_file is not None:
                self.upgraded_file.write_text(json.dumps(self.upgraded))
            return 0, f"ccp: {step}: done", ""
        if "etcdctl" in s and "snapshot save" in s:
            self.snapshot = b"etcd-snapshot-bytes:" + node.encode()
            return 0, '{"hash":1234,"revision":42,"totalKey":7,"totalSize":20}', ""
        if s.startswith("set -e; sha256sum /var/lib/etcd/ccp-backup.db"):
            import base64
            data = self.snapshot if not self.damage_snapshot else self.snapshot + b"!"
            return 0, hashlib.sha256(self.snapshot).hexdigest() + "\n" + base64.b64encode(data).decode(), ""
        if s.startswith("set -e; tar -C /etc/kubernetes -czf - pki"):
            import base64
            return 0, base64.b64encode(b"pki-tarball").decode(), ""
        if "etcdctl" in s and "member list -w json" in s:
            members = [{"ID": self.member_id(n), "name": n, "peerURLs": [f"https://{self.addresses[n]}:2380"]}
                       for n in sorted(self.etcd)]
            return 0, json.dumps({"header": {"cluster_id": 1}, "members": members}), ""
        if "etcdctl" in s and "endpoint health --cluster" in s:
            states = [{"endpoint": f"https://{self.addresses[n]}:2379",
                       "health": not self.etcd_unhealthy and n not in self.etcd_sick} for n in sorted(self.etcd)]
            return (0 if all(x["health"] for x in states) else 1), json.dumps(states), ""
        if "etcdctl" in s and " member remove " in s:
            wanted = s.rsplit(" ", 1)[-1]
            gone = [n for n in self.etcd if format(self.member_id(n), "x") == wanted]
            if not gone:
                return 1, "", f"Error: etcdserver: member not found ({wanted})"
            self.etcd.discard(gone[0])
            return 0, f"Member {wanted} removed from cluster", ""
        if s.startswith("if [ -e /etc/kubernetes/kubelet.conf ] ||"):   # join: a half-way join's leftovers reset
            if node not in self.members:
                return 0, "", ""
            s = "kubeadm reset -f"
        if s.startswith("kubeadm reset -f"):
            for path in [p for p in files if p.startswith("/etc/kubernetes/ccp/") and "/etc/kubernetes/ccp" in s]:
                files.pop(path)
            self.prepared.pop(node, None)
            self.apis.reset(node)
            self.admin_conf.discard(node)
            self.members.discard(node)
            self.etcd.discard(node)
            return 0, "[reset] Stopping the kubelet service", ""
        if s == "kubeadm certs renew all":
            self.renewed.append(node)
            return 0, "[renew] certificates renewed", ""
        if s.startswith("mkdir -p /etc/kubernetes/ccp-parked-manifests"):
            self.restarted.append(node)
            return 0, "", ""
        if s.startswith("for i in $(seq") and "/readyz" in s:   # the upgrade's wait through the VIP
            return 0, "", ""
        if s.startswith("end=$((") and "127.0.0.1:6443/readyz" in s and "s_client" in s:   # certs renew: this node, then the VIP
            if node in self.api_down_after_renew:
                return 1, "", "after 300s: its API server serves nothing (renewed: notAfter=...), its /readyz: no"
            return 0, "", ""
        if s == kubelet_serving.PROBE:   # a member's kubelet bootstraps its serving certificate (ccp's kubeadm config)
            if node not in self.members:   # no kubelet config before its join
                return 0, "none", ""
            return 0, "off" if node in self.kubelet_off else "have" if node in self.serving else "want", ""
        if s == f"cat {kubelet_serving.KUBELET_CONFIG}":
            return 0, yaml.safe_dump({"kind": "KubeletConfiguration", "serverTLSBootstrap": node not in self.kubelet_off}), ""
        if s == "systemctl restart kubelet":   # it reads its config again
            if yaml.safe_load(files.get(kubelet_serving.KUBELET_CONFIG, "{}")).get("serverTLSBootstrap") is True:
                self.kubelet_off.discard(node)
            return 0, "", ""
        if s == f"{kubelet_serving.KUBECTL} -n kube-system get configmap kubelet-config -o json":
            return 0, json.dumps({"kind": "ConfigMap", "data": {"kubelet": yaml.safe_dump(self.kubelet_cm)}}), ""
        if s == f"{kubelet_serving.KUBECTL} replace -f -":
            self.kubelet_cm = yaml.safe_load(json.loads(self.stdin)["data"]["kubelet"])
            return 0, "configmap/kubelet-config replaced", ""
        if s == kubelet_serving.LIST:    # each member without a certificate has asked for one, as a kubelet does
            from tests.unit.test_kubelet_serving import request

            items = [request(n, **{"ips": [self.addresses[n]], **self.serving_ask.get(n, {})})
                     for n in sorted(self.members) if n not in self.serving]
            return 0, json.dumps({"items": items}), ""
        if s.startswith(kubelet_serving.approve_command("x").removesuffix("x")):
            name = shlex.split(s)[-1]
            self.csr_approved.append(name)
            self.serving.add(name.removeprefix("csr-"))
            return 0, f"certificatesigningrequest.certificates.k8s.io/{name} approved", ""
        if s.startswith("cat /etc/kubernetes/admin.conf"):
            return 0, yaml.safe_dump(ADMIN_CONF), ""
        self.unknown.append((node, s))
        return 127, "", f"fake node does not know: {s}"

    def _renewal_state(self, node: str) -> str:
        """What `systemctl show` and journalctl print for the renewal timer and service on ``node``."""
        on = node in self.timers.get("ccp-cert-renew", set())
        failed = node in self.renew_failed
        lines = [f"timer.LoadState={'loaded' if on else 'not-found'}", f"timer.ActiveState={'active' if on else 'inactive'}",
                 f"timer.UnitFileState={'enabled' if on else ''}", "timer.NextElapseUSecRealtime=Fri 2026-12-04 03:00:00 UTC",
                 f"service.Result={'exit-code' if failed else 'success'}", f"service.ExecMainStatus={1 if failed else 0}",
                 f"service.ExecMainExitTimestamp={'Thu 2026-12-03 03:20:05 UTC' if failed else ''}"]
        if failed:
            lines += ["log=ccp-cert-renew: renewing: apiserver expires 2026-12-20T10:00:00Z (16 days left, below 30)",
                      "log=ccp-cert-renew: not renewed now: the API server of fk-cp-3 (127.0.1.13) is not ready, and "
                      "restarting this one too could stop the cluster; the next run tries again"]
        return "\n".join(lines)

    # -------------------------------------------------- helpers for tests
    @property
    def backup_timers(self) -> set[str]:
        return self.timers.get("ccp-etcd-backup", set())

    @staticmethod
    def _named_files(init_yaml: str) -> set[str]:
        """The files kube-apiserver's extra flags in a rendered init.yaml name (spec.security's)."""
        docs = {d["kind"]: d for d in yaml.safe_load_all(init_yaml) if d}
        args = docs["ClusterConfiguration"].get("apiServer", {}).get("extraArgs", [])
        return {a["value"] for a in args if a["value"].startswith("/etc/kubernetes/ccp/")}

    @staticmethod
    def member_id(node: str) -> int:
        return int(hashlib.sha256(node.encode()).hexdigest()[:15], 16)

    def names_by_prefix(self, role: str) -> list[str]:
        return [n for n in self.names if f"-{role}-" in n]

    def of(self, node: str) -> list[Record]:
        return [r for r in self.records if r.node == node]

    def mutating(self) -> list[Record]:
        return [r for r in self.records if any(m in r.script for m in MUTATING)]


# -------------------------------------------------- the fake cluster's config
ADDR = {"fk-lb-1": "127.0.1.10", "fk-cp-1": "127.0.1.11", "fk-cp-2": "127.0.1.12", "fk-cp-3": "127.0.1.13",
        "fk-worker-1": "127.0.1.21", "fk-worker-2": "127.0.1.22", "fk-worker-3": "127.0.1.23"}


def static_config(tmp_path, key, port):
    data = example_data()
    data["metadata"]["name"] = "fk"
    spec = data["spec"]
    spec["provisioner"] = "static"
    del spec["vsphere"]
    spec["addons"]["storage"]["provider"] = "local-path"
    spec["nodes"]["network"] = {"cidr": "127.0.1.0/24", "gateway": "127.0.1.1", "dns": ["127.0.1.2"]}
    spec["loadBalancer"]["vip"] = "127.0.1.100"
    spec["hosts"] = [{"address": a, "role": {"lb": "loadbalancer", "cp": "control-plane", "worker": "worker"}[n.split("-")[1]]}
                     for n, a in ADDR.items()]
    spec["ssh"] = {"user": "root", "privateKeyFile": str(key), "port": port, "parallelism": 8}
    return write_config(tmp_path / "c.yaml", data)
