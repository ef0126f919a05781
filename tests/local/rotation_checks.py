"""Key rotation and spec.security changes on the real HA cluster that tests/local/test_cluster.py builds: plain
functions over its ``Cluster`` (ccp(), kubectl(), ssh(address, cmd), nodes(), config, state), for the real-node
suite to call after the checks of test_security.py (which expect the first key, ccp-1) and before the machines are
stopped. pytest collects nothing here.

  stored_prefix                  a Secret's (or ConfigMap's) value read straight from etcd on a control plane
                                 (etcdctl in the etcd static pod, as test_security.py reads it): its
                                 k8s:enc:<provider>:v1:<key name>: prefix, "" for plain text
  rotation_changes_the_key_name  `ccp secrets rotate-key --yes` while a reader polls a Secret through the VIP:
                                 the prefix moves from the old key's name to the new one's, the Secret reads back
                                 the same, reads never fail for long, every control plane's configuration names
                                 only the new key (names read with grep: no key on a command line or in output),
                                 <state>/secrets holds only it, and `--resume` has nothing left
  security_changes_take_effect   spec.security.podSecurity.exemptNamespaces, audit.maxSizeMB and configmaps in
                                 encryption.resources changed in cluster.yaml: `ccp plan` shows security/apply,
                                 one `ccp apply` makes a privileged pod (server dry run) accepted in that namespace
                                 where it was refused, every control plane's manifest and kubeadm-config carry the
                                 new flag, a ConfigMap stored in plain text is stored encrypted and reads back;
                                 the rerun plans nothing
"""

from __future__ import annotations

import base64
import json
import threading
import time

import yaml

ETCDCTL = ["etcdctl", "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
           "--cert=/etc/kubernetes/pki/etcd/server.crt", "--key=/etc/kubernetes/pki/etcd/server.key"]
ENCRYPTION_CONFIG = "/etc/kubernetes/ccp/encryption-config.yaml"
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
PLAIN = "ccp-rotation-plain-text-etcd-must-not-show"


def control_planes(cluster) -> dict[str, str]:
    return {n: a for n, a in sorted(cluster.nodes().items()) if "-cp-" in n}


def stored_value(cluster, key: str) -> bytes:
    """The raw value etcd holds at ``key`` (/registry/secrets/<ns>/<name>), read in the first control plane's etcd pod."""
    cp = next(iter(control_planes(cluster)))
    out = cluster.kubectl("-n", "kube-system", "exec", f"etcd-{cp}", "--", *ETCDCTL, "get", key, "-w", "json")
    (kv,) = json.loads(out)["kvs"]
    return base64.b64decode(kv["value"])


def prefix_of(value: bytes) -> str:
    """"k8s:enc:secretbox:v1:ccp-2:" for an encrypted value, "" for plain text."""
    if not value.startswith(b"k8s:enc:"):
        return ""
    return b":".join(value.split(b":", 5)[:5]).decode() + ":"


def stored_prefix(cluster, name: str, namespace: str = "default", resource: str = "secrets") -> str:
    value = stored_value(cluster, f"/registry/{resource}/{namespace}/{name}")
    assert not (value.startswith(b"k8s:enc:") and PLAIN.encode() in value), "encrypted, yet the plain text shows"
    return prefix_of(value)


def _key_names(cluster) -> dict[str, list[str]]:
    """{control plane: key names in its encryption configuration}: grep prints names, never a secret."""
    out = {}
    for cp, address in control_planes(cluster).items():
        lines = cluster.ssh(address, f"sudo -n grep -o 'name: ccp-[0-9]*' {ENCRYPTION_CONFIG}").stdout.splitlines()
        out[cp] = [line.split(": ", 1)[1].strip() for line in lines]
    return out


def _secret_reads(cluster, name: str, stop: threading.Event, misses: list[float], reads: list[float]) -> None:
    """Read the Secret through the VIP every half second until ``stop``: each read's time in ``reads``, each failed
    one's in ``misses`` too."""
    import subprocess

    from tests.local.test_cluster import KUBECTL

    while True:   # at least one read, however quick the rotation
        reads.append(time.monotonic())
        try:
            r = subprocess.run([str(KUBECTL), "--kubeconfig", str(cluster.kubeconfig), "--request-timeout", "5s", "-n",
                                "default", "get", "secret", name, "-o", "jsonpath={.data.token}"],
                               capture_output=True, text=True, timeout=30)
            ok = r.returncode == 0 and base64.b64decode(r.stdout or "").decode(errors="replace") == PLAIN
        except (OSError, subprocess.SubprocessError, ValueError):
            ok = False
        if not ok:
            misses.append(reads[-1])
        if stop.wait(0.5):
            return


def _longest_outage(misses: list[float], gap: float = 2.0) -> float:
    longest, start, last = 0.0, None, None
    for t in misses:
        if last is None or t - last > gap:
            start = t
        last = t
        longest = max(longest, last - start)
    return longest


def rotation_changes_the_key_name(cluster, name: str = "ccp-rotation-check") -> dict:
    """-> {"before", "after" (prefixes), "misses" (failed reads during the rotation), "longest outage" (s), "seconds"}."""
    cluster.kubectl("-n", "default", "create", "secret", "generic", name, f"--from-literal=token={PLAIN}")
    try:
        before = stored_prefix(cluster, name)
        assert before.startswith("k8s:enc:secretbox:v1:ccp-"), before
        old = before.split(":")[4]
        assert set(map(tuple, _key_names(cluster).values())) == {(old,)}, _key_names(cluster)

        stop, misses, reads = threading.Event(), [], []
        reader = threading.Thread(target=_secret_reads, args=(cluster, name, stop, misses, reads), daemon=True)
        reader.start()
        t0 = time.monotonic()
        try:
            r = cluster.ccp("secrets", "rotate-key", "--config", cluster.config, "--yes", timeout=1800)
        finally:
            stop.set()
            reader.join(timeout=60)
        seconds = time.monotonic() - t0
        assert "rotated" in r.stdout and "phase timings" in r.stderr, r.stdout + r.stderr

        after = stored_prefix(cluster, name)
        new = after.split(":")[4]
        assert after == f"k8s:enc:secretbox:v1:{new}:" and new != old, (before, after)
        token = cluster.kubectl("-n", "default", "get", "secret", name, "-o", "jsonpath={.data.token}")
        assert base64.b64decode(token).decode() == PLAIN, "the Secret reads back the same"
        assert set(map(tuple, _key_names(cluster).values())) == {(new,)}, "only the new key on every control plane"
        ring = cluster.state / "secrets" / "encryption-keys"
        assert sorted(p.name for p in ring.iterdir()) == [new], "the old key left <state>/secrets"
        assert (cluster.state / "secrets" / "encryption-key").read_text().strip() == (ring / new).read_text().strip()
        key = (ring / new).read_text().strip()
        for path in [*cluster.state.rglob("*.log"), cluster.state / "journal.jsonl"]:
            assert key not in path.read_text(errors="replace"), f"the key in {path}"
        assert key not in r.stdout + r.stderr
        outage = _longest_outage(misses)
        assert len(reads) > len(misses), f"{len(misses)} of {len(reads)} reads through the VIP failed"
        assert outage < 15, f"the Secret did not read through the VIP for {outage:.1f}s during the rotation"
        again = cluster.ccp("secrets", "rotate-key", "--config", cluster.config, "--resume", check=False)
        assert again.returncode == 2 and "no key rotation to resume" in again.stderr, again.stderr
        return {"before": before, "after": after, "reads": len(reads), "misses": len(misses), "longest outage": round(outage, 1),
                "seconds": round(seconds, 1)}
    finally:
        cluster.kubectl("-n", "default", "delete", "secret", name, "--ignore-not-found")


def _edit(cluster, change) -> str:
    """Apply ``change(spec["security"])`` to cluster.yaml; -> the text before, to put back."""
    text = cluster.config.read_text()
    data = yaml.safe_load(text)
    change(data["spec"].setdefault("security", {}))
    cluster.config.write_text(yaml.safe_dump(data, sort_keys=False))
    return text


def _privileged_dry_run(cluster, namespace: str):
    import subprocess

    from tests.local.test_cluster import KUBECTL

    image = "docker.io/local/busybox:lab"
    pod = json.dumps({"spec": {"containers": [{"name": "c", "image": image, "securityContext": {"privileged": True}}]}})
    return subprocess.run([str(KUBECTL), "--kubeconfig", str(cluster.kubeconfig), "--request-timeout", "10s", "-n", namespace,
                           "run", "ccp-psa-exempt", f"--image={image}", "--restart=Never", f"--overrides={pod}",
                           "--dry-run=server"], capture_output=True, text=True, timeout=60)


def _wait_for_default_service_account(cluster, namespace: str) -> None:
    """The controller-manager makes a new namespace's "default" ServiceAccount a moment later (seconds, just after a
    test restarted it); until then the API refuses any pod there for that reason, not for Pod Security."""
    import subprocess

    from tests.local.common import wait_for
    from tests.local.test_cluster import KUBECTL

    def present() -> bool:
        return subprocess.run([str(KUBECTL), "--kubeconfig", str(cluster.kubeconfig), "--request-timeout", "10s", "-n",
                               namespace, "get", "serviceaccount", "default"], capture_output=True, timeout=60).returncode == 0
    wait_for(present, 120, f'the "default" ServiceAccount of {namespace}', pause=1)


def _planned(cluster) -> list[dict]:
    plan = json.loads(cluster.ccp("plan", "--config", cluster.config, "--output", "json").stdout)
    return next(p for p in plan["phases"] if p["phase"] == "security/apply")["actions"]


def security_changes_take_effect(cluster, namespace: str = "ccp-psa-exempt-check",
                                 name: str = "ccp-configmap-encryption-check") -> dict:
    """One `ccp apply` of three spec.security changes (CI time: each apply restarts every API server in turn): a
    namespace exempt from Pod Security, the audit log's size, ConfigMaps encrypted too. Before: a privileged pod is
    refused there and a ConfigMap lies in etcd in plain text; after: the pod is accepted (server dry run), every
    control plane's manifest and kubeadm-config carry the new audit flag, the ConfigMap is stored with the cluster's
    key and reads back; the rerun plans nothing. The cluster keeps the changes (the suite destroys it at the end)."""
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("-n", "default", "create", "configmap", name, f"--from-literal=k={PLAIN}")
    try:
        _wait_for_default_service_account(cluster, namespace)
        refused = _privileged_dry_run(cluster, namespace)
        assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
        assert stored_prefix(cluster, name, resource="configmaps") == ""

        def change(sec):
            sec.setdefault("podSecurity", {})["exemptNamespaces"] = [namespace]
            sec.setdefault("audit", {})["maxSizeMB"] = 123
            sec.setdefault("encryption", {})["resources"] = ["secrets", "configmaps"]
        _edit(cluster, change)
        actions = _planned(cluster)
        cps = control_planes(cluster)
        targets = [a["target"] for a in actions]
        assert all(f"kube-apiserver on {cp}" in targets for cp in cps) and "the kubeadm-config ConfigMap" in targets, actions
        assert "rewrite" in [a["verb"] for a in actions], actions
        assert cluster.ccp("plan", "--config", cluster.config, "--detailed-exitcode", check=False).returncode == 2
        t0 = time.monotonic()
        cluster.ccp("apply", "--config", cluster.config, "--yes", timeout=1800)
        seconds = time.monotonic() - t0

        accepted = _privileged_dry_run(cluster, namespace)
        assert accepted.returncode == 0, accepted.stderr
        for cp, address in cps.items():
            manifest = cluster.ssh(address, f"sudo -n cat {MANIFEST}").stdout
            assert "--audit-log-maxsize=123" in manifest, cp
        config = cluster.kubectl("-n", "kube-system", "get", "configmap", "kubeadm-config", "-o", "jsonpath={.data.ClusterConfiguration}")
        args = {a["name"]: a["value"] for a in yaml.safe_load(config)["apiServer"]["extraArgs"]}
        assert args["audit-log-maxsize"] == "123", args
        prefix = stored_prefix(cluster, name, resource="configmaps")
        assert prefix.startswith("k8s:enc:secretbox:v1:ccp-"), prefix
        assert cluster.kubectl("-n", "default", "get", "configmap", name, "-o", "jsonpath={.data.k}") == PLAIN
        assert _planned(cluster) == [], "a rerun has nothing to do"
        assert cluster.ccp("plan", "--config", cluster.config, "--detailed-exitcode", check=False).returncode == 0
        return {"apply seconds": round(seconds, 1), "configmap prefix": prefix}
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
        cluster.kubectl("-n", "default", "delete", "configmap", name, "--ignore-not-found")
