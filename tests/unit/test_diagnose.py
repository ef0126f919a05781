"""Diagnose findings and the bundle's redaction, over DiagnosePortFake (a fake named as such: a
snapshot of API JSON the tests build); certificates the tests generate."""

from __future__ import annotations

import datetime
import json
import tarfile

import pytest

from ccp.diagnose import bundle, certs, hosts, runner
from ccp.diagnose.kubernetes import Snapshot

def now():
    """Read at each use: the suite runs for over an hour before these tests in CI."""
    return datetime.datetime.now(datetime.timezone.utc)
PLANTED = "PLANTED-s3cr3t-Val9e"


def node(name, ready=True, **conds):
    cs = [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy"}]
    cs += [{"type": k, "status": "True", "message": v} for k, v in conds.items()]
    return {"metadata": {"name": name}, "spec": {}, "status": {"conditions": cs}}


def pod(name, ns="default", phase="Running", waiting=None, ready=True, labels=None, env=None, scheduled=None):
    st = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if waiting:
        st["containerStatuses"] = [{"name": "main", "restartCount": 7, "state": {"waiting": {"reason": waiting, "message": "back-off"}}}]
    if scheduled is not None:
        st["conditions"].append({"type": "PodScheduled", "status": "False", "message": scheduled})
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": "x", "env": env or []}]}, "status": st}


def flapping():
    p = pod("flappy", ready=False)
    p["status"]["containerStatuses"] = [{"name": "main", "restartCount": 2, "ready": False, "state": {"running": {}},
                                         "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]
    return p


def event(reason, message, minutes_ago=5, kind="Warning"):
    t = (now() - datetime.timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    return {"type": kind, "reason": reason, "message": message, "lastTimestamp": t, "count": 2,
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"}}


class DiagnosePortFake:
    def __init__(self, snap: Snapshot, logs: dict | None = None):
        self.snap, self.logs, self.snapshots = snap, logs or {}, 0

    def snapshot(self):
        self.snapshots += 1
        return self.snap

    def log(self, ns, name, container, tail=500):
        return self.logs.get((ns, name), "")


def sick_cluster() -> Snapshot:
    return Snapshot(
        nodes=[node("cp-1"), node("w-1", ready=False), node("w-2", DiskPressure="disk almost full")],
        pods=[pod("web-1", waiting="CrashLoopBackOff", ready=False), pod("web-2", waiting="ImagePullBackOff", ready=False),
              pod("big", phase="Pending", ready=False, scheduled="0/3 nodes are available: 3 Insufficient memory."),
              pod("ok-1"), pod("done", phase="Succeeded"), flapping(),
              pod("kube-apiserver-cp-1", "kube-system", labels={"tier": "control-plane", "component": "kube-apiserver"})],
        pvcs=[{"metadata": {"name": "data", "namespace": "db"}, "spec": {"storageClassName": "vsphere"}, "status": {"phase": "Pending"}}],
        events=[event("BackOff", "Back-off restarting"), event("Old", "long ago", minutes_ago=300), event("Normal", "x", kind="Normal")],
        markers=[{"metadata": {"namespace": "monitoring"}, "data": {"addon": "monitoring", "ccpVersion": "0.1.0"}}],
        workloads=[{"kind": "Deployment", "metadata": {"name": "grafana", "namespace": "monitoring", "generation": 1,
                                                       "labels": {"ccp.io/addon": "monitoring"}},
                    "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "readyReplicas": 0}}],
        readyz="[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed", readyz_ok=False)


def test_findings_name_what_is_wrong_with_evidence_and_remedy():
    rep = runner.run(kube=DiagnosePortFake(sick_cluster()), only={"kubernetes", "addons"})
    by = {}
    for f in rep.findings:
        by.setdefault((f.check, f.severity), []).append(f)
    assert "w-1" in by[("node-ready", "fail")][0].what and "PLEG" in by[("node-ready", "fail")][0].evidence[0]
    assert by[("node-pressure", "warn")][0].what == "node w-2 reports DiskPressure"
    assert "etcd failed" in by[("apiserver-readyz", "fail")][0].evidence[0]
    pods = {f.what: f for f in by[("pods", "fail")]}
    assert "1 pods CrashLoopBackOff" in pods and "7 restarts" in pods["1 pods CrashLoopBackOff"].evidence[0]
    assert "registry" in pods["1 pods ImagePullBackOff"].remediation
    assert "exited 1 (Error)" in pods["1 pods Crashing"].evidence[0]     # restarting, before CrashLoopBackOff
    assert "Insufficient memory" in pods["1 pods Unschedulable"].evidence[0]
    assert by[("pvcs", "warn")][0].evidence == ["db/data (storage class vsphere)"]
    ev = by[("events", "warn")][0]
    assert "BackOff x2" in ev.evidence[0] and "Old" not in " ".join(ev.evidence)   # only the last hour
    assert by[("monitoring", "fail")][0].evidence == ["Deployment monitoring/grafana: 0/1 ready"]
    assert rep.failed
    with pytest.raises(Exception) as info:
        from ccp.diagnose.report import raise_if_failed

        raise_if_failed(rep.findings)
    assert info.value.code == 9


def test_a_healthy_cluster_has_only_ok_findings():
    snap = Snapshot(nodes=[node("n1")], pods=[pod("a")], readyz="[+]ping ok\n[+]etcd ok\nreadyz check passed",
                    markers=[{"metadata": {"namespace": "x"}, "data": {"addon": "ingress"}}])
    rep = runner.run(kube=DiagnosePortFake(snap), only={"kubernetes", "addons"})
    assert {f.severity for f in rep.findings} == {"ok"}, [f.what for f in rep.findings if f.severity != "ok"]
    assert not rep.failed


def test_thousands_of_pods_cost_one_snapshot():
    snap = Snapshot(nodes=[node(f"n{i}") for i in range(50)], pods=[pod(f"p{i}") for i in range(5000)]
                    + [pod(f"bad{i}", waiting="CrashLoopBackOff", ready=False) for i in range(40)], readyz="[+]etcd ok")
    port = DiagnosePortFake(snap)
    rep = runner.run(kube=port, only={"kubernetes"})
    assert port.snapshots == 1
    crash = next(f for f in rep.findings if f.what == "40 pods CrashLoopBackOff")
    assert len(crash.evidence) == 11 and crash.evidence[-1] == "... and 30 more"


def test_the_bundle_fetches_logs_at_once():
    """Found on real nodes: with a control plane killed, the bundle's logs took 17 s, one slow fetch after another
    (each waits for the API server's connection to a dead kubelet)."""
    import threading
    import time

    snap = sick_cluster()
    snap.pods += [pod(f"kube-{c}-cp-9", "kube-system", labels={"tier": "control-plane", "component": c})
                  for c in ("etcd", "kube-scheduler", "kube-controller-manager")]

    class Slow(DiagnosePortFake):
        at_once = most = 0
        lock = threading.Lock()

        def log(self, ns, name, container, tail=500):
            with self.lock:
                Slow.at_once += 1
                Slow.most = max(Slow.most, Slow.at_once)
            time.sleep(0.3)
            with self.lock:
                Slow.at_once -= 1
            return f"log of {name}"
    t0 = time.monotonic()
    rep = runner.run(kube=Slow(snap), only={"kubernetes"}, bundle=True)
    logs = {k: v for k, v in rep.files.items() if k.startswith("logs/")}
    assert len(logs) >= 6 and logs["logs/kube-system/kube-etcd-cp-9/main.log"] == "log of kube-etcd-cp-9"
    assert Slow.most > 1 and time.monotonic() - t0 < 0.3 * len(logs) / 2


def test_unknown_section_is_a_config_error():
    with pytest.raises(Exception) as info:
        runner.check_sections({"vsphere", "nope"})
    assert info.value.code == 2 and "nope" in info.value.message


# ------------------------------------------------------------------ certificates

def make_cert(days: float, cn="kube-apiserver"):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = now() - datetime.timedelta(days=400)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(now() + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_certificate_expiry_thresholds_expired_5_and_60_days():
    expired, five, twenty, sixty = make_cert(-3)[0], make_cert(5)[0], make_cert(20)[0], make_cert(60)[0]
    listing = "".join(f"==> /etc/kubernetes/pki/{n}.crt\n{p.decode()}" for n, p in
                      (("old", expired), ("soon", five), ("later", twenty), ("fine", sixty)))
    found = certs.from_pki_listing("cp-1", listing)
    sev = {c.where.rsplit("/", 1)[1]: c.severity for c in found}
    assert sev == {"old.crt": "fail", "soon.crt": "fail", "later.crt": "warn", "fine.crt": "ok"}
    fs = certs.findings(found)
    assert fs[0].severity == "fail" and "expired" in fs[0].what and "cp-1:/etc/kubernetes/pki/old.crt" in fs[0].what
    assert "expires in 5 days" in fs[1].what or "expires in 4 days" in fs[1].what
    assert fs[-1].severity == "ok" and "1 certificates valid" in fs[-1].what


def test_with_the_renewal_timer_on_the_warning_starts_at_its_threshold_and_points_at_it():
    listing = "".join(f"==> /etc/kubernetes/pki/{n}.crt\n{make_cert(d)[0].decode()}" for n, d in (("a", 40), ("b", 50)))
    found = certs.from_pki_listing("cp-1", listing)
    assert {f.severity for f in certs.findings(found)} == {"ok"}   # the default: warn below 30 days
    fs = certs.findings(found, renew_before=45)
    assert [f.severity for f in fs] == ["warn", "ok"] and "cp-1:/etc/kubernetes/pki/a.crt" in fs[0].what
    assert "the renewal timer should have renewed it below 45 days" in fs[0].remediation
    assert "journalctl -u ccp-cert-renew on cp-1" in fs[0].remediation and "45+ days" in fs[1].what


def _renewal(**timer_and_service) -> str:
    state = {"timer.LoadState": "loaded", "timer.ActiveState": "active", "timer.UnitFileState": "enabled",
             "timer.NextElapseUSecRealtime": "Fri 2026-12-04 03:20:00 UTC", "service.Result": "success",
             "service.ExecMainStatus": "0", "service.ExecMainExitTimestamp": ""}
    state.update({k.replace("__", "."): v for k, v in timer_and_service.items()})
    return "\n".join(f"{k}={v}" for k, v in state.items()) + "\nlog=ccp-cert-renew: nothing to renew\n"


def test_the_renewal_timer_findings():
    from ccp.config.model_security import Certificates
    from ccp.diagnose import autorenew

    on = Certificates()
    states = {"cp-1": autorenew.parse(_renewal()),
              "cp-2": autorenew.parse(_renewal(service__Result="exit-code", service__ExecMainStatus="1",
                                               service__ExecMainExitTimestamp="Thu 2026-12-03 03:20:05 UTC")),
              "cp-3": autorenew.parse(_renewal(timer__LoadState="not-found", timer__ActiveState="inactive")),
              "cp-4": autorenew.parse(_renewal(timer__ActiveState="inactive", timer__UnitFileState="disabled")),
              "cp-5": autorenew.parse("")}   # no systemctl answer at all
    assert states["cp-1"]["log"] == ["ccp-cert-renew: nothing to renew"]
    fs = {f.what.split(":")[0]: f for f in autorenew.findings(states, on, ["cp-6"])}
    assert fs["cp-2"].severity == "fail" and "last certificate renewal run failed (exit-code, exit 1)" in fs["cp-2"].what
    assert fs["cp-2"].evidence == ["ccp-cert-renew: nothing to renew"]
    assert fs["cp-3"].severity == "fail" and "missing (not-found)" in fs["cp-3"].what and "ccp apply" in fs["cp-3"].remediation
    assert fs["cp-4"].severity == "fail" and "inactive and disabled" in fs["cp-4"].what
    assert fs["cp-5"].severity == "warn" and fs["cp-6"].severity == "warn"
    ok = fs["1 control plane(s)"]
    assert ok.severity == "ok" and ok.evidence == ["cp-1: next Fri 2026-12-04 03:20:00 UTC, last not run yet"]
    (off,) = autorenew.findings(states, Certificates(autoRenew=False))
    assert off.severity == "warn" and "autoRenew: false" in off.what and "ccp certs renew" in off.remediation


def test_the_renewal_script_asks_systemd_and_the_journal_only():
    from ccp.diagnose import autorenew

    assert "systemctl show ccp-cert-renew.$u" in autorenew.SCRIPT and "journalctl -u ccp-cert-renew.service -n 3" in autorenew.SCRIPT
    assert "/etc/kubernetes" not in autorenew.SCRIPT   # it reads no file: no key can pass through it


def test_a_kubeconfig_with_an_embedded_client_certificate(tmp_path):
    import base64

    import yaml

    pem, key = make_cert(2, "kubernetes-admin")
    kc = tmp_path / "kc"
    kc.write_text(yaml.safe_dump({"users": [{"name": "admin", "user": {
        "client-certificate-data": base64.b64encode(pem).decode(), "client-key-data": base64.b64encode(key).decode()}}]}))
    (c,) = certs.from_kubeconfig(kc)
    assert c.severity == "fail" and "user admin" in c.where


def test_the_pki_script_never_prints_a_key(tmp_path):
    """The script's own extraction, run for real on a kubelet-style PEM holding a certificate and its key."""
    import subprocess

    pem, key = make_cert(90)
    both = tmp_path / "kubelet-client-current.pem"
    both.write_bytes(pem + key)
    script = certs.PKI_SCRIPT.replace("/var/lib/kubelet/pki/kubelet-client-current.pem", str(both))
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30).stdout
    assert "PRIVATE KEY" not in out and "BEGIN CERTIFICATE" in out
    assert [c.severity for c in certs.from_pki_listing("n", out)] == ["ok"]


# ------------------------------------------------------------------ hosts

def test_host_facts_become_findings():
    facts = {"w-1": hosts.parse("disk=96%\ninodes=20%\nmem_total_kb=8000000\nmem_avail_kb=400000\nswap_kb=1024\n"
                                "max_map_count=65530\ncontainerd=active\nkubelet=failed\nkubelet_errors=12\n"
                                "kubelet_last_error=E1202 failed to run Kubelet\n")}
    fs = hosts.findings(facts, {"w-1": 3.1, "cp-1": 0.0}, {"w-9": "connection refused"}, {"w-1": "worker"})
    got = {(f.check, f.severity) for f in fs}
    assert {("disk-usage", "fail"), ("memory", "warn"), ("swap", "warn"), ("vm.max_map_count", "warn"),
            ("kubelet-service", "fail"), ("kubelet-journal", "warn"), ("clock-offset", "fail"), ("reachable", "fail")} <= got
    clock = next(f for f in fs if f.check == "clock-offset")
    assert "3.10s" in clock.what and "w-1 ahead of cp-1" in clock.what
    assert "--only vsphere" in next(f for f in fs if f.check == "reachable").remediation


def test_an_unreachable_local_machine_points_at_its_machine_not_at_vsphere():
    """Found on real nodes: a killed local machine's finding said to check the VM with `ccp diagnose --only vsphere`,
    a section that does not run for provisioner: local."""
    (f,) = [f for f in hosts.findings({}, {}, {"w-9": "connection refused"}, {}, "local") if f.check == "reachable"]
    assert "--only machines" in f.remediation and "ccp node replace w-9" in f.remediation and "vsphere" not in f.remediation


def test_each_filesystem_holding_kubernetes_data_is_measured_once_for_real():
    """Found planting a full disk on real nodes: diagnose measured the root filesystem only, while a node's containerd,
    etcd and logs may live on filesystems of their own (local machines bind containerd's and etcd's; VMs often have
    separate disks or a /var/log partition): a full one went unreported. The facts script runs here for real, in a mount namespace of
    its own where /var/log is a small tmpfs filled past the warning threshold."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare: a tmpfs is mounted in a private mount namespace")
    plant = "mount -t tmpfs -o size=8m tmpfs /var/log && fallocate -l 7600k /var/log/fill && "
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", plant + hosts.FACTS_SCRIPT],
                       capture_output=True, text=True, timeout=60)
    facts = hosts.parse(r.stdout)
    assert r.returncode == 0 and _pct(facts["disk:/var/log"]) >= 90, r.stdout + r.stderr
    assert "disk:/" in facts and "inodes:/var/log" in facts
    assert sum(k.startswith("disk:") for k in facts) == len({k for k in facts if k.startswith("disk:")})   # once each
    fs = hosts.findings({"w-1": facts}, {}, {}, {"w-1": "worker"})
    full = [f for f in fs if f.check == "disk-usage"]
    assert len(full) == 1 and full[0].severity == "warn" and "w-1: filesystem of /var/log disk" in full[0].what
    assert "journalctl --vacuum-size" in full[0].remediation


def _pct(text: str) -> int:
    return int(text.rstrip("%"))


def test_disk_findings_name_the_filesystem_and_what_to_do_there():
    facts = {"cp-1": hosts.parse("disk:/=40%\ninodes:/=3%\ndisk:/var/lib/etcd=96%\ninodes:/var/lib/etcd=1%\n"
                                 "disk:/var/lib/containerd=87%\ninodes:/var/lib/containerd=90%\n")}
    got = {(f.check, f.severity, f.what) for f in hosts.findings(facts, {}, {}, {"cp-1": "control-plane"})}
    assert ("disk-usage", "fail", "cp-1: filesystem of /var/lib/etcd disk 96% used") in got
    assert ("disk-usage", "warn", "cp-1: filesystem of /var/lib/containerd disk 87% used") in got
    assert ("inodes-usage", "warn", "cp-1: filesystem of /var/lib/containerd inodes 90% used") in got
    assert not any("root filesystem" in what for _, _, what in got)


# ------------------------------------------------------------------ the bundle

def test_a_planted_secret_reaches_0_bytes_of_the_bundle(tmp_path):
    """The secret is planted in every source the bundle collects, in the shapes secrets take there."""
    from ccp import redact

    redact.register(PLANTED + "-vc")                       # the vCenter password as ccp registers it
    _, key = make_cert(30)
    snap = sick_cluster()
    snap.pods[0]["spec"]["containers"][0]["env"] = [{"name": "DB_PASSWORD", "value": PLANTED},
                                                    {"name": "API_TOKEN", "value": PLANTED + "t"}]
    snap.pods[0]["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": PLANTED}
    snap.events.append(event("Failed", f"pull failed: Authorization: Bearer {PLANTED}"))
    snap.nodes[0]["metadata"]["annotations"] = {"note": f"token={PLANTED}"}
    snap.markers[0]["data"]["x"] = f'{{"password": "{PLANTED}"}}'
    logs = {("default", "web-1"): f"connecting with password={PLANTED}\n{key.decode()}\njoin abcdef.0123456789abcdef\n"
                                  f"client-key-data: {PLANTED}\nvcenter pwd was {PLANTED}-vc"}
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True)
    (state / "journal.jsonl").write_text(json.dumps({"event": "x", "error": f"login with {PLANTED}-vc failed"}) + "\n")
    (state / "logs" / "run-install.log").write_text(f"secret: {PLANTED}\n")

    rep = runner.run(kube=DiagnosePortFake(snap, logs), only={"kubernetes", "addons"}, bundle=True)
    rep.files.update(runner._ccp_state(state))
    rep.files["hosts/w-1.txt"] = f"kubelet_last_error=unauthorized: Bearer {PLANTED}\n"
    out = tmp_path / "b.tar.gz"
    bundle.write(out, rep.files)
    raw = out.read_bytes()
    with tarfile.open(out) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}
        modes = {m.mode for m in tar.getmembers()}
    everything = b"".join(members.values())
    leaks = {n: d[max(0, d.find(PLANTED.encode()) - 80):d.find(PLANTED.encode()) + 30] for n, d in members.items() if PLANTED.encode() in d}
    assert leaks == {} and PLANTED.encode() not in raw
    assert key.split(b"\n")[1] not in everything and b"abcdef.0123456789abcdef" not in everything
    # what is not secret is still there, and the manifest lists every file
    assert b"CrashLoopBackOff" in members["kubernetes/pods.json"] and b"DB_PASSWORD" in members["kubernetes/pods.json"]
    assert b"connecting with password=" in members["logs/default/web-1/main.log"]
    manifest = json.loads(members["manifest.json"])
    assert {e["file"] for e in manifest["files"]} == set(members) - {"manifest.json"}
    assert {"findings.json", "findings.txt", "ccp/journal.jsonl", "ccp/logs/run-install.log"} <= set(members)
    assert modes == {0o600} and oct(out.stat().st_mode & 0o777) == "0o600"


def node_stand_ins(bin_, sleep: str = "exit 0") -> dict:
    """Stand-ins on PATH for the static pod scripts: crictl lists a running kube-apiserver (c0ffee) until ctr
    killed it (both log their arguments), curl says /readyz answers only while ``bin_``/ready-readyz exists,
    sleep runs ``sleep``. Returns the environment."""
    import os

    bin_.mkdir()
    (bin_ / "crictl").write_text(f'#!/bin/sh\necho "$*" >> {bin_}/crictl.log\n'
                                 f'[ "$3" = "^kube-apiserver\\$" ] && [ ! -e {bin_}/killed ] && echo c0ffee\nexit 0\n')
    (bin_ / "ctr").write_text(f'#!/bin/sh\necho "$*" >> {bin_}/ctr.log\ntouch {bin_}/killed\n')
    (bin_ / "curl").write_text(f'#!/bin/sh\n[ -e {bin_}/ready-readyz ]\n')
    (bin_ / "sleep").write_text(f"#!/bin/sh\n{sleep}\n")
    for stub in bin_.iterdir():
        stub.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}


def test_the_static_pod_restart_script_for_real_and_after_an_interrupted_run(tmp_path):
    import subprocess

    from ccp.remote.static_pods import restart_script

    man, parked, bin_ = tmp_path / "manifests", tmp_path / "parked", tmp_path / "bin"
    man.mkdir()
    for n in ("etcd", "kube-apiserver"):
        (man / f"{n}.yaml").write_text(n)
    env = node_stand_ins(bin_)

    def restart(timeout=120):
        return subprocess.run(["sh", "-c", restart_script(0, str(man), str(parked), timeout=timeout)], timeout=30, env=env,
                              capture_output=True, text=True)

    r = restart()                                   # the kubelet is stopping it: its /readyz fails
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in man.iterdir()) == ["etcd.yaml", "kube-apiserver.yaml"] and not parked.exists()
    assert (bin_ / "ctr.log").read_text() == "-n k8s.io tasks kill -s SIGKILL c0ffee\n"
    polls = (bin_ / "crictl.log").read_text().count("^etcd$")
    assert polls == 1 + 5 + 1, "killed only after 5 s of waiting, gone at the next look"

    (bin_ / "killed").unlink()                      # it answers /readyz: not killed; the manifests go back after the wait
    (bin_ / "ready-readyz").touch()
    (bin_ / "ctr.log").unlink()
    r = restart(timeout=8)
    assert r.returncode == 0 and "static pods still run 8 s after their manifests were moved away" in r.stderr
    assert not (bin_ / "ctr.log").exists() and not parked.exists()

    (bin_ / "killed").touch()                       # nothing runs
    parked.mkdir()                                   # a run killed during the pause left one parked
    (man / "etcd.yaml").rename(parked / "etcd.yaml")
    assert restart().returncode == 0
    assert sorted(p.name for p in man.iterdir()) == ["etcd.yaml", "kube-apiserver.yaml"] and not parked.exists()


def test_one_walk_over_the_pods_serves_the_checks_and_the_bundle():
    from ccp.diagnose import kubernetes
    from ccp.diagnose.base import sample, sample_sorted

    snap = sick_cluster()
    snap.pods += [pod(f"p{i:03}", phase="Pending", ready=False) for i in range(40, 0, -1)]
    tri = kubernetes.triage(snap)
    assert [p["metadata"]["name"] for p in tri.control_plane] == ["kube-apiserver-cp-1"]
    assert [reason for _, reason, _ in tri.problems][:4] == ["CrashLoopBackOff", "ImagePullBackOff", "Unschedulable", "Crashing"]
    assert kubernetes.findings(snap, tri) == kubernetes.findings(snap)
    pending = next(f for f in kubernetes.pods(snap) if f.what == "40 pods Pending")
    assert pending.evidence[0].startswith("default/p001") and pending.evidence[-1] == "... and 30 more"
    for items in ([], ["b", "a"], [f"x{i % 7}" for i in range(30)], list("zyxwvutsrqponm")):
        assert sample_sorted(items) == sample(sorted(items))
    assert [p["metadata"]["name"] for p in runner._log_worthy(tri)][:3] == ["kube-apiserver-cp-1", "web-1", "web-2"]


def _renew_stubs(tmp_path, vip_ok: bool, local_ok: bool, served: str):
    """openssl and curl stand-ins for back_script: the files say when each renewed certificate ends; the
    served certificates end as ``served`` says; the VIP and this node's /readyz answer as told."""
    import os

    pki, bin_ = tmp_path / "pki", tmp_path / "bin"
    (pki / "etcd").mkdir(parents=True)
    bin_.mkdir()
    (pki / "apiserver.crt").write_text("Dec 3 2027")
    (pki / "etcd" / "server.crt").write_text("Dec 3 2027")
    (bin_ / "openssl").write_text(f"""#!/bin/sh
if [ "$1" = s_client ]; then echo "SERVED"; exit 0; fi
for a; do [ "$prev" = -in ] && {{ echo "notAfter=$(cat "$a")"; exit 0; }}; prev=$a; done
read line; echo "notAfter={served}"
""")
    (bin_ / "curl").write_text(f"""#!/bin/sh
case "$*" in *127.0.0.1:6443*) exit {0 if local_ok else 7};; *) exit {0 if vip_ok else 7};; esac
""")
    for f in bin_.iterdir():
        f.chmod(0o755)
    return str(pki), {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}


def test_renew_waits_for_the_renewed_control_plane_itself_not_only_the_vip(tmp_path):
    """Found on real nodes: renew waited for the API through the VIP, which the other control planes answer at
    once, and went on to the next control plane while this one's API server was still starting (two of three
    down). It now waits until this node's own API server and etcd serve the renewed certificates and answer."""
    import subprocess

    from ccp.diagnose.renew import back_script

    def run(**kw):
        pki, env = _renew_stubs(tmp_path / str(len(list(tmp_path.iterdir()))), **kw)
        r = subprocess.run(["sh", "-c", back_script("10.0.0.5:6443", 2, interval=1, pki=pki)], env=env,
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stderr
    assert run(vip_ok=True, local_ok=True, served="Dec 3 2027") == (0, "")
    code, err = run(vip_ok=True, local_ok=False, served="Dec 3 2027")        # the VIP alone is not enough
    assert code == 1 and "its /readyz: no, through 10.0.0.5:6443: yes" in err
    code, err = run(vip_ok=True, local_ok=True, served="Jan 1 2027")         # still the old certificates: not restarted
    assert code == 1 and "serves notAfter=Jan 1 2027 (renewed: notAfter=Dec 3 2027)" in err
    assert run(vip_ok=False, local_ok=True, served="Dec 3 2027")[0] == 1


def test_kubeadm_upgrade_hurried_kills_only_the_api_server_its_new_manifest_replaces(tmp_path):
    """static_pods.hurried for real over stand-ins (node_stand_ins, and a `kubeadm` that writes a new
    kube-apiserver manifest and waits for the old container to go). The kubeadm's exit status comes through."""
    import subprocess

    from ccp.remote.static_pods import MANIFESTS, hurried

    bin_, man = tmp_path / "bin", tmp_path / "manifests"
    man.mkdir()
    (man / "kube-apiserver.yaml").write_text("old")
    env = node_stand_ins(bin_, sleep="/bin/sleep 0.05")
    (bin_ / "kubeadm").write_text(f'#!/bin/sh\n/bin/sleep 0.2; echo new > {man}/kube-apiserver.yaml\n'
                                  f'for i in $(seq 1 100); do [ -e {bin_}/killed ] && exit 3; /bin/sleep 0.05; done; exit 4\n')
    (bin_ / "kubeadm").chmod(0o755)
    script = hurried("kubeadm upgrade node").replace(MANIFESTS, str(man))

    r = subprocess.run(["sh", "-c", script], env=env, timeout=30, capture_output=True, text=True)
    assert r.returncode == 3, r.stderr
    assert (bin_ / "ctr.log").read_text() == "-n k8s.io tasks kill -s SIGKILL c0ffee\n"

    (bin_ / "killed").unlink()                      # while its /readyz answers, nothing is killed
    (bin_ / "ctr.log").unlink()
    (bin_ / "ready-readyz").touch()
    (man / "kube-apiserver.yaml").write_text("old")
    r = subprocess.run(["sh", "-c", script], env=env, timeout=30, capture_output=True, text=True)
    assert r.returncode == 4 and not (bin_ / "ctr.log").exists()

    (bin_ / "ready-readyz").unlink()                # a manifest that does not change: nothing is killed either
    (bin_ / "kubeadm").write_text("#!/bin/sh\n/bin/sleep 1\n")
    r = subprocess.run(["sh", "-c", script], env=env, timeout=30, capture_output=True, text=True)
    assert r.returncode == 0 and not (bin_ / "ctr.log").exists()

    # kubeadm writes the manifest at once: the checksum was read before it started, so the change is seen
    (bin_ / "kubeadm").write_text(f'#!/bin/sh\necho newer > {man}/kube-apiserver.yaml\n'
                                  f'for i in $(seq 1 100); do [ -e {bin_}/killed ] && exit 3; /bin/sleep 0.05; done; exit 4\n')
    r = subprocess.run(["sh", "-c", script], env=env, timeout=30, capture_output=True, text=True)
    assert r.returncode == 3 and (bin_ / "ctr.log").exists(), r.stderr


def test_the_restore_waits_for_every_control_plane_pod_ready_in_the_api(tmp_path):
    """backup/restore.settled_script for real over a kubectl stand-in printing <bin>/pods: it ends at once when
    the API lists as many Ready control-plane pods as asked, and names those not Ready when it gives up."""
    import subprocess

    from ccp.backup.restore import settled_script

    bin_ = tmp_path / "bin"
    env = node_stand_ins(bin_)
    (bin_ / "kubectl").write_text(f"#!/bin/sh\ncat {bin_}/pods\n")
    (bin_ / "kubectl").chmod(0o755)

    def settled(pods: str, want: int = 2):
        (bin_ / "pods").write_text(pods)
        return subprocess.run(["sh", "-c", settled_script(want, timeout=4)], env=env, timeout=30, capture_output=True, text=True)

    assert settled("etcd-cp-1 True\nkube-apiserver-cp-1 True\n").returncode == 0
    r = settled("etcd-cp-1 True\nkube-apiserver-cp-1 False\n")
    assert r.returncode == 1 and "not Ready after 4s: kube-apiserver-cp-1 False" in r.stderr, r.stderr
    r = settled("etcd-cp-1 True\n")                 # one is missing from the API altogether
    assert r.returncode == 1, r.stderr
    r = settled("etcd-cp-1 True\nkube-apiserver-cp-1 True\nkube-scheduler-cp-1 False\n")   # enough Ready, one not
    assert r.returncode == 1 and "kube-scheduler-cp-1" in r.stderr, r.stderr
