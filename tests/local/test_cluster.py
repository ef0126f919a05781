"""The whole mission on real machines: `ccp install` builds 2 load balancers + 3 control planes + 2 workers
as systemd-nspawn machines on this host from the lab's offline bundle, and then, for real: every node
Ready, 3 etcd members, the API through the VIP, one control plane down and the API still answering, the
VRRP master down and the VIP moving (failover time printed), `ccp validate` (DNS skipped for want of
CoreDNS, said so), spec.security (a Secret encrypted in etcd, the audit log, a privileged pod refused: see
test_security.py), the certificate renewal timers forced and the hardening section of diagnose (see
security_checks.py), a rerun that changes nothing, SIGKILL during the control-plane joins and --resume,
`ccp apply` scaling the workers 2 -> 3 -> 1 and the control planes 3 -> 5 -> 3 (etcd's member list read
for real after each step, every existing node keeping its address, each rerun a no-op), and `ccp destroy`
leaving nothing behind.

The tests run in file order and share one cluster (module fixture): each builds on the one before.
Needs root, systemd-nspawn, mmdebstrap and ../shared/k8s; the bundle is made by hack/lab-bundle.sh.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import ROOT
from tests.local import TIMES
from tests.local import rotation_checks, security_checks
from tests.local.common import BUNDLE, KUBECTL, _why_not, leftovers, new_cluster, readyz, wait_for
from tests.local import test_security as security

pytestmark = [pytest.mark.local, pytest.mark.slow, pytest.mark.timeout(1800)]

NAME = "ccp-ci"
SUBNET = "10.79.0"
VIP = f"{SUBNET}.5"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = _why_not()
    if why:
        pytest.skip(why)
    t0 = time.monotonic()
    if not BUNDLE.exists() or not KUBECTL.exists():
        subprocess.run(["bash", str(ROOT / "hack" / "lab-bundle.sh")], check=True, cwd=ROOT)
    TIMES["lab bundle"] = time.monotonic() - t0
    # the scheduled snapshot timer, forced once below
    c = new_cluster(tmp_path_factory.mktemp("local-cluster"), NAME, SUBNET, backup={"schedule": "daily", "keep": 3})
    try:
        yield c
    finally:
        if c.state.exists():
            c.ccp("destroy", "--config", c.config, "--yes", check=False)
        print("local cluster suite times: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMES.items()))


def test_install_killed_during_control_plane_joins_then_resumed(cluster):
    """SIGKILL while the second control plane joins; --resume must converge without a duplicate."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ccp", "install", "--config", str(cluster.config), "--yes"],
                            env=cluster.env, cwd=cluster.base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    journal = cluster.state / "journal.jsonl"

    def joining() -> bool:
        if proc.poll() is not None:
            return True
        if not journal.exists():
            return False
        events = [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]
        return any(e.get("phase") == "kubeadm/join-control-plane" and e.get("event") == "started" for e in events)
    wait_for(joining, 900, "the install reaching kubeadm/join-control-plane", pause=0.5)
    assert proc.poll() is None, f"install ended before the joins: {proc.stdout.read()}"
    time.sleep(4)   # well inside kubeadm join on the second control plane
    proc.send_signal(signal.SIGKILL)
    output = proc.communicate()[0]
    print(output)
    TIMES["install until killed"] = time.monotonic() - t0
    t1 = time.monotonic()
    cluster.ccp("install", "--config", cluster.config, "--resume", "--yes")
    TIMES["resume"] = time.monotonic() - t1
    TIMES["install in all"] = time.monotonic() - t0


def test_every_node_ready_through_the_vip(cluster):
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json", server=f"https://{VIP}:6443"))["items"]
    ready = {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
             for n in nodes}
    assert ready == {f"{NAME}-cp-{i}": True for i in (1, 2, 3)} | {f"{NAME}-worker-{i}": True for i in (1, 2)}


def test_three_etcd_members(cluster):
    out = cluster.kubectl("-n", "kube-system", "exec", f"etcd-{NAME}-cp-1", "--", "etcdctl", "--endpoints=https://127.0.0.1:2379",
                          "--cacert=/etc/kubernetes/pki/etcd/ca.crt", "--cert=/etc/kubernetes/pki/etcd/server.crt",
                          "--key=/etc/kubernetes/pki/etcd/server.key", "member", "list", "-w", "json")
    members = json.loads(out)["members"]
    assert sorted(m["name"] for m in members) == [f"{NAME}-cp-{i}" for i in (1, 2, 3)]


def test_validate_serves_every_check_it_can_and_says_what_it_skipped(cluster):
    r = cluster.ccp("validate", "--config", cluster.config, "--output", "json")
    results = {c["check"]: c for c in json.loads(r.stdout)["results"]}
    assert results["pvc-persistence"]["status"] == "pass", results
    assert results["api-endpoint"]["status"] == "pass", results
    assert results["service-and-policy"]["status"] == "pass", results
    assert results["dns"]["status"] == "skipped" and "coredns" in results["dns"]["detail"].lower()


def test_secrets_are_encrypted_at_rest_in_etcd(cluster):
    security.secrets_are_encrypted_in_etcd(cluster)


def test_the_audit_log_records_a_request(cluster):
    security.audit_log_records_requests(cluster)


def test_a_privileged_pod_is_refused_while_the_add_ons_run(cluster):
    security.privileged_pods_are_refused(cluster)


def test_kubelet_serving_certificates_are_the_cluster_cas_and_the_timer_approves_a_new_request(cluster):
    security_checks.kubelet_serving_certificates(cluster)


def test_the_renewal_timers_renew_every_certificate_one_control_plane_at_a_time(cluster):
    """Forced with a threshold above the certificates' lifetime, each control plane's ccp-cert-renew timer
    renews them while the API answers through the VIP; diagnose then sees every timer's last run succeed."""
    t0 = time.monotonic()
    result = security_checks.renewal_timer_renews_when_forced(cluster)
    TIMES["certificate renewal, 3 control planes"] = time.monotonic() - t0
    TIMES["renewal: /readyz misses through the VIP"] = float(sum(r["vip_misses"] for r in result.values()))


def test_the_hardening_check_passes_and_names_a_planted_world_readable_key(cluster):
    security_checks.hardening_names_a_planted_key(cluster)


def test_a_key_rotation_moves_every_secret_to_the_new_key_while_the_api_answers(cluster):
    """`ccp secrets rotate-key` while a Secret is read through the VIP: its prefix in etcd moves to the new key's name."""
    result = rotation_checks.rotation_changes_the_key_name(cluster)
    TIMES["key rotation"] = result["seconds"]
    TIMES["rotation: Secret reads missed through the VIP"] = float(result["misses"])
    print(f"key rotation: {result}")


def test_spec_security_changes_reach_the_running_cluster_with_apply(cluster):
    result = rotation_checks.security_changes_take_effect(cluster)
    TIMES["security changes applied"] = result["apply seconds"]


def test_a_rerun_changes_nothing(cluster):
    r = cluster.ccp("plan", "--config", cluster.config, "--detailed-exitcode", check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_backup_then_restore_on_real_nodes(cluster):
    """The scheduled snapshot timer runs (forced once); `ccp backup` saves a verified snapshot; a namespace made after
    it is gone after `ccp restore`, with every etcd member healthy, the API back through the VIP and the nodes Ready.
    Found here: the nodes have no crictl (kubeadm no longer needs it) and /var/lib/etcd is a mount point."""
    nodes = cluster.nodes()
    cp1 = nodes[f"{NAME}-cp-1"]
    cluster.ssh(cp1, "sudo systemctl start ccp-etcd-backup.service")
    assert cluster.ssh(cp1, "sudo sh -c 'ls /var/lib/ccp/backups/*.db | wc -l'").stdout.strip() == "1"
    t0 = time.monotonic()
    r = cluster.ccp("backup", "--config", cluster.config)
    TIMES["backup"] = time.monotonic() - t0
    saved = next(line.split(" in ", 1)[1].strip() for line in (r.stdout + r.stderr).splitlines()
                 if line.startswith("backup saved in "))
    cluster.kubectl("create", "namespace", "ccp-after-backup")
    t0 = time.monotonic()
    cluster.ccp("restore", "--config", cluster.config, "--from", saved, "--yes")
    TIMES["restore"] = time.monotonic() - t0
    # the restore ends with the API back on each control plane; through the VIP it may take the load balancer a
    # few more seconds on a loaded host (CI: it did)
    wait_for(lambda: readyz(VIP), 120, "the API through the VIP after the restore", pause=1)
    assert "ccp-after-backup" not in cluster.kubectl("get", "namespaces", "-o", "name")
    test_three_etcd_members(cluster)
    wait_for(lambda: "NotReady" not in cluster.kubectl("get", "nodes"), 120, "every node Ready after the restore", pause=2)


def test_api_answers_with_one_control_plane_down(cluster):
    nodes = cluster.nodes()
    cluster.host().stop(NAME, f"{NAME}-cp-2")
    assert not readyz(nodes[f"{NAME}-cp-2"], timeout=2)
    for _ in range(10):   # NGINX must route around the stopped one, every time
        assert readyz(VIP), "the API stopped answering through the VIP with one control plane down"
    assert f"{NAME}-cp-1" in cluster.kubectl("get", "nodes")


def test_vip_moves_when_the_vrrp_master_stops(cluster):
    nodes = cluster.nodes()
    lbs = [n for n in nodes if "-lb-" in n]

    def holder():
        return [n for n in lbs if f"inet {VIP}/" in cluster.ssh(nodes[n], "ip -4 addr show host0", check=False).stdout]
    master = holder()
    assert len(master) == 1, f"exactly one load balancer must hold the VIP: {master}"
    cluster.host().stop(NAME, master[0])
    failover = wait_for(lambda: readyz(VIP, timeout=1), 60, "the API through the VIP after the VRRP master stopped")
    TIMES["VRRP failover"] = failover
    print(f"VRRP failover: the API answered through the VIP {failover:.1f}s after {master[0]} stopped")
    assert holder() == [n for n in lbs if n != master[0]]


def test_install_brings_stopped_machines_back_and_converges(cluster):
    """Found by this suite: right after stopped machines came back, install went on while the returned API server
    answered 403 and validate's Service probe met a kube-proxy still behind; install now waits for each control
    plane's own /readyz, and the probe gives a stale watch its minute. Passed in three runs in a row since."""
    t0 = time.monotonic()
    cluster.ccp("install", "--config", cluster.config, "--yes", timeout=600)
    TIMES["machines back, converged"] = time.monotonic() - t0
    nodes = cluster.nodes()
    assert all(cluster.host().status(NAME, n) == "running" for n in nodes)
    assert readyz(nodes[f"{NAME}-cp-2"], timeout=5)


def test_a_fresh_state_directory_says_it_adopts_the_machines(cluster, tmp_path):
    """Machines carry their cluster's name as owner: a state directory without a record of them (lost, or a new
    CCP_STATE_DIR) takes them over, and the plan says so instead of creating duplicates."""
    env = {**cluster.env, "CCP_STATE_DIR": str(tmp_path / "fresh-state")}
    r = subprocess.run([sys.executable, "-m", "ccp", "plan", "--config", str(cluster.config), "--output", "json"],
                       capture_output=True, text=True, env=env, cwd=cluster.base, timeout=120)
    assert r.returncode == 0, r.stderr
    provision = next(p for p in json.loads(r.stdout)["phases"] if p["phase"] == "provision")
    assert sorted((a["verb"], a["target"]) for a in provision["actions"]) == \
        sorted(("adopt", f"machine {n}") for n in cluster.nodes())


def _scale(cluster, *, control_planes: int | None = None, workers: int | None = None) -> float:
    """Edit cluster.yaml as an operator would and run `ccp apply`; -> seconds it took."""
    data = yaml.safe_load(cluster.config.read_text())
    if control_planes is not None:
        data["spec"]["nodes"]["controlPlane"]["count"] = control_planes
    if workers is not None:
        data["spec"]["nodes"]["workers"][0]["count"] = workers
    cluster.config.write_text(yaml.safe_dump(data, sort_keys=False))
    t0 = time.monotonic()
    cluster.ccp("apply", "--config", cluster.config, "--yes", timeout=1200)
    return time.monotonic() - t0


def _etcd_members(cluster) -> list[str]:
    out = cluster.kubectl("-n", "kube-system", "exec", f"etcd-{NAME}-cp-1", "--", "etcdctl", "--endpoints=https://127.0.0.1:2379",
                          "--cacert=/etc/kubernetes/pki/etcd/ca.crt", "--cert=/etc/kubernetes/pki/etcd/server.crt",
                          "--key=/etc/kubernetes/pki/etcd/server.key", "member", "list", "-w", "json")
    return sorted(m["name"] for m in json.loads(out)["members"])


def _ready_nodes(cluster) -> list[str]:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json", server=f"https://{VIP}:6443"))["items"]
    return sorted(n["metadata"]["name"] for n in nodes
                  if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]))


def _no_op(cluster) -> None:
    r = cluster.ccp("plan", "--config", cluster.config, "--detailed-exitcode", check=False)
    assert r.returncode == 0, "a rerun would change something:\n" + r.stdout + r.stderr


def test_workers_scale_out_and_in_with_apply_and_each_rerun_is_a_no_op(cluster):
    before = cluster.nodes()
    TIMES["scale out one worker"] = _scale(cluster, workers=3)
    after = cluster.nodes()
    assert {n: a for n, a in after.items() if n in before} == before, "an existing node moved"
    assert f"{NAME}-worker-3" in _ready_nodes(cluster)
    assert _etcd_members(cluster) == [f"{NAME}-cp-{i}" for i in (1, 2, 3)]
    _no_op(cluster)
    TIMES["scale in two workers"] = _scale(cluster, workers=1)
    assert _ready_nodes(cluster) == sorted([f"{NAME}-cp-{i}" for i in (1, 2, 3)] + [f"{NAME}-worker-1"])
    assert set(cluster.host().machines(NAME)) == {n for n in after if n not in (f"{NAME}-worker-2", f"{NAME}-worker-3")}
    assert _etcd_members(cluster) == [f"{NAME}-cp-{i}" for i in (1, 2, 3)]   # etcd untouched
    _no_op(cluster)


def test_control_planes_3_to_5_to_3_keep_etcd_at_the_intended_count(cluster):
    """Addresses stay put: the two new control planes take free addresses, no existing node moves."""
    before = cluster.nodes()
    TIMES["control planes 3 -> 5"] = _scale(cluster, control_planes=5)
    after = cluster.nodes()
    assert {n: a for n, a in after.items() if n in before} == before, "an existing node moved"
    assert _etcd_members(cluster) == [f"{NAME}-cp-{i}" for i in range(1, 6)]
    assert {f"{NAME}-cp-4", f"{NAME}-cp-5"} <= set(_ready_nodes(cluster))
    assert readyz(VIP)
    _no_op(cluster)
    TIMES["control planes 5 -> 3"] = _scale(cluster, control_planes=3)
    assert _etcd_members(cluster) == [f"{NAME}-cp-{i}" for i in (1, 2, 3)]
    assert not {f"{NAME}-cp-4", f"{NAME}-cp-5"} & set(_ready_nodes(cluster))
    assert readyz(VIP)
    _no_op(cluster)


def test_destroy_leaves_nothing(cluster):
    t0 = time.monotonic()
    cluster.ccp("destroy", "--config", cluster.config, "--yes")
    TIMES["destroy"] = time.monotonic() - t0
    assert cluster.host().machines(NAME) == {}
    assert leftovers(NAME) == []
    r = cluster.ccp("destroy", "--config", cluster.config, "--yes")
    assert "nothing to destroy" in r.stdout
