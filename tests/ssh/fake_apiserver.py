"""ApiServersFake: the kube-apiservers of FakeCluster's control planes and what etcd stores through them, a model
for logic only (it runs nothing). Each control plane has a static pod manifest (made by "kubeadm" from the
ClusterConfiguration at init and join, replaced by ccp's restart script), and its API server loads the encryption
configuration when it starts (init, join, each restart). Objects (Secrets and ConfigMaps) are stored with the
provider that wrote them; after every restart every API server that is up writes one more Secret, as a
controller would. After every restart and every rewrite, every stored object must be readable through every API
server that is up: an object one of them cannot read is a *violation* (what a wrong order of a key rotation
does to a real HA cluster). It answers:

  cat /etc/kubernetes/manifests/kube-apiserver.yaml, the restart script, rm -f of /etc/kubernetes/ccp files,
  kubectl get/replace of kubeadm-config, the rewrite script (kubectl get | kubectl replace), and the etcd count
  of values stored with a provider's prefix."""

from __future__ import annotations

import asyncio
import json
import re
import shlex

import yaml

MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
NEW = "/etc/kubernetes/ccp-apiserver-restart/new.yaml"
ENC_FLAG = "encryption-provider-config"
KUBEADM_CM = "-n kube-system get configmap kubeadm-config -o json"


def providers_of(text: str | None) -> dict[str, list[tuple]] | None:
    """{resource: [(kind, name, secret) or ("identity",)]} of an EncryptionConfiguration; None if unreadable."""
    try:
        doc = yaml.safe_load(text)
        out = {}
        for entry in doc["resources"]:
            ps = []
            for p in entry["providers"]:
                ((kind, conf),) = p.items()
                ps += [("identity",)] if kind == "identity" else [(kind, k["name"], k["secret"]) for k in conf["keys"]]
            for r in entry["resources"]:
                out[r] = ps
        return out
    except Exception:   # noqa: BLE001 — a broken file is the API server's crash, not the test's
        return None


class ApiServersFake:
    def __init__(self, fc):
        self.fc = fc
        self.cluster_config: dict | None = None
        self.cm_version = 1
        self.manifests: dict[str, dict] = {}
        self.loaded: dict[str, dict | None] = {}        # node -> providers it read at its last start (None: no encryption)
        self.stored: dict[str, tuple] = {}              # etcd key -> ("identity",) or (kind, name, secret)
        self.restarts: list[str] = []
        self.violations: list[str] = []
        self.rewrites: list[tuple[str, list[str]]] = []
        self.kubeadm_config_updates = 0
        self.on_restart = None                          # a test's hook, called after each restart
        self.restart_delay: dict[str, float] = {}       # node -> seconds its restart takes (time to signal ccp)
        self.restart_fail: set[str] = set()             # nodes whose next restart fails (the kubelet did not stop it)
        self.snapshot: dict[str, tuple] | None = None   # what etcd stored when the last snapshot was taken
        self._n = 0

    # -------------------------------------------------- the API servers
    def _flags(self, node: str) -> dict[str, str]:
        command = self.manifests[node]["spec"]["containers"][0]["command"]
        return dict(a[2:].split("=", 1) for a in command[1:] if "=" in a)

    def named_files(self, node: str) -> set[str]:
        return {v for v in self._flags(node).values() if v.startswith("/etc/kubernetes/ccp/")}

    def manifest_from_config(self, node: str) -> dict:
        api = self.cluster_config.get("apiServer") or {}
        extra = {a["name"]: a["value"] for a in api.get("extraArgs") or []}
        base = {"advertise-address": self.fc.addresses[node], "authorization-mode": "Node,RBAC", "secure-port": "6443",
                "etcd-servers": "https://127.0.0.1:2379"}
        command = ["kube-apiserver"] + sorted((f"--{k}={v}" for k, v in {**base, **extra}.items()), key=lambda a: a.split("=")[0])
        vols = [{"hostPath": {"path": "/etc/kubernetes/pki", "type": "DirectoryOrCreate"}, "name": "k8s-certs"}]
        mounts = [{"mountPath": "/etc/kubernetes/pki", "name": "k8s-certs", "readOnly": True}]
        for v in api.get("extraVolumes") or []:
            vols.append({"hostPath": {"path": v["hostPath"], "type": v["pathType"]}, "name": v["name"]})
            mounts.append({"mountPath": v["mountPath"], "name": v["name"], **({"readOnly": True} if v.get("readOnly") else {})})
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
                "spec": {"containers": [{"command": command, "image": "registry.k8s.io/kube-apiserver:v1", "name": "kube-apiserver",
                                         "volumeMounts": sorted(mounts, key=lambda m: m["name"])}],
                         "hostNetwork": True, "volumes": sorted(vols, key=lambda v: v["name"])}}

    def start(self, node: str) -> bool:
        """The API server (re)starts and loads its files; False (and down) when one it names is missing or broken."""
        files = self.fc.files[node]
        missing = self.named_files(node) - set(files)
        enc = self._flags(node).get(ENC_FLAG)
        loaded = providers_of(files.get(enc)) if enc and enc in files else None
        if missing or (enc and loaded is None):
            self.fc.api_down.add(node)
            return False
        self.fc.api_down.discard(node)
        self.loaded[node] = loaded
        return True

    def init(self, node: str, init_yaml: str) -> None:
        docs = {d["kind"]: d for d in yaml.safe_load_all(init_yaml) if d}
        self.cluster_config = docs["ClusterConfiguration"]
        self.joined(node)
        for key in ("secrets/kube-system/bootstrap-token-abcdef", "secrets/default/app-token", "configmaps/default/app-config",
                    "configmaps/kube-system/kubeadm-config"):
            self.write(node, f"/registry/{key}")

    def joined(self, node: str) -> None:
        self.manifests[node] = self.manifest_from_config(node)
        self.start(node)

    def up(self) -> list[str]:
        return [n for n in self.manifests if n not in self.fc.api_down and not self.fc.parked.get(n)]

    def writer(self, node: str, resource: str) -> tuple:
        ps = (self.loaded.get(node) or {}).get(resource)
        return ps[0] if ps else ("identity",)

    def readable(self, node: str, resource: str, stored: tuple) -> bool:
        ps = (self.loaded.get(node) or {}).get(resource, [("identity",)])
        return stored in ps

    def write(self, node: str, key: str) -> None:
        self.stored[key] = self.writer(node, key.split("/")[2])

    def check(self, when: str) -> None:
        for node in self.up():
            for key, how in self.stored.items():
                if not self.readable(node, key.split("/")[2], how):
                    self.violations.append(f"{when}: {node} cannot read {key} (stored with {how[:2]})")

    # -------------------------------------------------- commands
    async def answer(self, node: str, s: str, stdin: str) -> tuple[int, str, str] | None:
        files = self.fc.files[node]
        if "etcdctl" in s and "snapshot save" in s:
            self.snapshot = dict(self.stored)
            return None
        if s.startswith("set -e; [ -f /var/lib/ccp/restore/restored-") and self.snapshot is not None:
            self.stored = dict(self.snapshot)   # etcd holds what the snapshot held (the fake's own answer follows)
            return None
        if s.startswith("set -e; [ ! -f /etc/kubernetes/ccp-restore-parked/kube-apiserver.yaml ]"):
            parked = self.fc.parked.get(node, [])
            if "kube-apiserver.yaml" in parked:   # it starts, and reads its files (ccp may have changed them meanwhile)
                parked.remove("kube-apiserver.yaml")
                self.fc.events.append((node, "start kube-apiserver.yaml"))
                if self.start(node):
                    self.check(f"after {node}'s API server started from the restore")
            return 0, "", ""
        if s == f"cat {MANIFEST}":
            m = self.manifests.get(node)
            return (0, yaml.safe_dump(m), "") if m else (1, "", f"cat: {MANIFEST}: No such file or directory")
        if s.startswith("set -e; mkdir -p /etc/kubernetes/ccp-apiserver-restart;"):
            await asyncio.sleep(self.restart_delay.get(node, 0))
            if node in self.restart_fail:
                self.restart_fail.discard(node)
                return 1, "", "kube-apiserver still runs 120 s after its manifest was moved away"
            if NEW in files:
                self.manifests[node] = yaml.safe_load(files.pop(NEW))
            self.restarts.append(node)
            if self.start(node):
                self._n += 1
                for other in self.up():   # a controller writes through every API server that is up
                    self.write(other, f"/registry/secrets/default/bg-{other}-{self._n}")
                self.check(f"after restarting {node}")
            if self.on_restart:
                self.on_restart(node)
            return 0, "", ""
        if s.startswith("rm -f /etc/kubernetes/ccp/"):
            for path in shlex.split(s)[2:]:
                files.pop(path, None)
            return 0, "", ""
        if s.endswith(KUBEADM_CM) and "kubectl" in s:
            cm = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "kubeadm-config", "namespace": "kube-system", "resourceVersion": str(self.cm_version)},
                  "data": {"ClusterConfiguration": yaml.safe_dump(self.cluster_config)}}
            return 0, json.dumps(cm), ""
        if s.endswith("replace -f -") and "kubectl" in s and '"kubeadm-config"' in stdin:
            cm = json.loads(stdin)
            if cm["metadata"]["resourceVersion"] != str(self.cm_version):
                return 1, "", 'Error from server (Conflict): Operation cannot be fulfilled on configmaps "kubeadm-config"'
            self.cluster_config = yaml.safe_load(cm["data"]["ClusterConfiguration"])
            self.cm_version += 1
            self.kubeadm_config_updates += 1
            self.fc.apiserver_files = {a["value"] for a in (self.cluster_config.get("apiServer") or {}).get("extraArgs") or []
                                       if str(a["value"]).startswith("/etc/kubernetes/ccp/")}
            return 0, "configmap/kubeadm-config replaced", ""
        if "ccp-rewrite" in s:
            resources = re.findall(r"^one (\S+)$", s, re.M)
            self.rewrites.append((node, resources))
            out = []
            for r in resources:
                keys = [k for k in self.stored if k.split("/")[2] == r]
                unreadable = [k for k in keys if not self.readable(node, r, self.stored[k])]
                for k in keys:
                    if k not in unreadable:
                        self.write(node, k)
                out.append(f"ccp-rewrite {r} {len(keys) - len(unreadable)} 0 {len(unreadable)}")
            self.check(f"after the rewrite through {node}")
            return 0, "\n".join(out), "".join(f"Error from server (InternalError): {k}: cannot decrypt\n" for k in unreadable)
        if "ccp-left" in s:
            patterns = re.findall(r"-e (k8s:enc:\S+)", s)
            left = sum(1 for how in self.stored.values() if how[0] != "identity"
                       and f"k8s:enc:{how[0]}:v1:{how[1]}:" in patterns)
            return 0, f"ccp-left {left}", ""
        return None

    def reset(self, node: str) -> None:
        self.manifests.pop(node, None)
        self.loaded.pop(node, None)

    # -------------------------------------------------- for tests
    def prefixes(self, resource: str = "secrets") -> dict[str, str]:
        """{etcd key: the prefix its value starts with ("" for plain text)}."""
        return {k: ("" if how[0] == "identity" else f"k8s:enc:{how[0]}:v1:{how[1]}:") for k, how in self.stored.items()
                if k.split("/")[2] == resource}
