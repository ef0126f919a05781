"""Upgrade logic: skew rules, the plan and its batches, and the Eviction-API drain over DrainPortFake
(a fake named as such: pods and PDBs in memory, evictions refused while a budget allows none)."""

from __future__ import annotations

import pytest

from ccp.errors import CcpError, KubernetesError
from ccp.remote import drain
from ccp.upgrade import skew
from tests.conftest import EXAMPLES, example_data, write_config


def test_skew_one_minor_at_a_time_no_downgrade_supported_only():
    assert skew.check("1.36.2", "1.36.2") == "noop"
    assert skew.check("1.36.0", "1.36.2") == "patch"
    assert skew.check("1.36.2", "1.37.1") == "minor"
    assert skew.allowed_targets("1.35.1") == ["1.35.4", "1.36.2"]
    for cur, want, words in (("1.37.1", "1.36.2", "does not downgrade"), ("1.35.4", "1.37.1", "skips a minor"),
                             ("1.37.1", "1.38.0", "not supported"), ("1.36.2", "banana", "not a Kubernetes version")):
        with pytest.raises(CcpError) as info:
            skew.check(cur, want)
        assert words in info.value.message
    with pytest.raises(CcpError) as info:
        skew.check("1.35.4", "1.37.1")
    assert info.value.resolution == "allowed from 1.35.4: 1.36.2"


def test_plan_orders_control_planes_then_a_canary_then_batches(tmp_path):
    from ccp.config.load import load
    from ccp.upgrade.plan import plan

    data = example_data()
    data["spec"]["nodes"]["workers"][0]["count"] = 8
    data["spec"]["upgrade"] = {"maxUnavailable": 3}
    cfg = load(write_config(tmp_path / "c.yaml", data)).config
    steps = plan(cfg, "1.36.2", "1.37.1")
    kinds = [s.kind for s in steps]
    assert kinds == ["preflight", "backup", "control-plane", "control-plane", "control-plane",
                     "workers", "workers", "workers", "workers", "addons", "validate"]
    cps = [s for s in steps if s.kind == "control-plane"]
    assert "kubeadm upgrade apply v1.37.1" in cps[0].detail and "kubeadm upgrade node" in cps[1].detail
    assert [len(s.nodes) for s in steps if s.kind == "workers"] == [1, 3, 3, 1]
    assert "canary" in steps[5].detail
    assert len({s.key for s in steps}) == len(steps)


def pod(name, labels=None, owner="ReplicaSet", ns="shop"):
    meta = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner}]
    return {"metadata": meta, "status": {"phase": "Running"}}


class DrainPortFake:
    def __init__(self, pods, pdbs):
        self.pods, self.budgets, self.cordoned, self.evicted = pods, pdbs, [], []
        self.leaving: set[str] = set()

    def cordon(self, node, unschedulable):
        self.cordoned.append((node, unschedulable))

    def pods_on(self, node):
        return self.pods

    def pdbs(self):
        return self.budgets

    def evict(self, ns, name):
        p = next(p for p in self.pods if p["metadata"]["name"] == name)
        for b in drain.blocking(self.budgets, p):
            if b["status"]["disruptionsAllowed"] == 0:
                return "Cannot evict pod as it would violate the pod's disruption budget."
        self.evicted.append(name)
        return None

    def pod_exists(self, ns, name):
        return False

    def leaving_namespaces(self):
        return self.leaving


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_drain_evicts_what_may_move_and_skips_daemonsets_and_mirrors():
    mirror = pod("kube-apiserver-n1")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    port = DrainPortFake([pod("web-1", {"app": "web"}), pod("fluent", owner="DaemonSet"), mirror], [])
    clock = Clock()
    assert drain.drain(port, "n1", 60, clock=clock, sleep=clock.sleep) == ["shop/web-1"]
    assert port.cordoned == [("n1", True)] and port.evicted == ["web-1"]


def test_a_blocking_pdb_is_named_with_the_pod_and_the_wait_is_bounded():
    pdb = {"metadata": {"name": "web-pdb", "namespace": "shop"},
           "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
           "status": {"disruptionsAllowed": 0, "currentHealthy": 2, "expectedPods": 2}}
    port = DrainPortFake([pod("web-1", {"app": "web"}), pod("cache-1", {"app": "cache"})], [pdb])
    clock = Clock()
    with pytest.raises(KubernetesError) as info:
        drain.drain(port, "n1", 30, clock=clock, sleep=clock.sleep)
    e = info.value
    assert "blocked by PodDisruptionBudget shop/web-pdb" in e.message and "30s" in e.message
    assert e.details == ["pod shop/web-1: PodDisruptionBudget shop/web-pdb (minAvailable 2; 2 healthy of 2, 0 disruptions allowed)"]
    assert "kubectl -n shop edit pdb web-pdb" in e.resolution and "--resume" in e.resolution
    assert port.evicted == ["cache-1"] and 30 <= clock.t <= 40
    assert drain.tight_budgets([pdb]) == [drain.describe_pdb(pdb)]


def test_pods_no_controller_manages_stop_the_drain_before_anything_moves():
    port = DrainPortFake([pod("web-1"), pod("scratch", owner=None), pod("going", owner=None)], [])
    port.pods[2]["metadata"]["deletionTimestamp"] = "2026-12-02T10:00:00Z"    # already leaving: ignored
    with pytest.raises(KubernetesError) as info:
        drain.drain(port, "n1", 30, sleep=lambda s: None)
    assert info.value.details == ["shop/scratch"] and "would lose them" in info.value.message
    assert port.cordoned == [] and port.evicted == []


def test_pods_of_a_namespace_being_deleted_neither_stop_nor_wait_for_the_drain():
    """Found on real nodes: `ccp node replace` right after `ccp install` refused to drain a worker for the validation's
    last pod (no controller), whose namespace was being deleted; evicting in such a namespace is refused anyway."""
    port = DrainPortFake([pod("web-1"), pod("net-server", owner=None, ns="ccp-validate-5a561a"),
                          pod("cache-1", ns="ccp-validate-5a561a")], [])
    port.leaving = {"ccp-validate-5a561a"}
    assert drain.drain(port, "n1", 30, sleep=lambda s: None) == ["shop/web-1"]
    assert port.cordoned == [("n1", True)] and port.evicted == ["web-1"]


def test_selector_expressions():
    sel = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}, {"key": "canary", "operator": "DoesNotExist"}]}
    assert drain.selects(sel, {"tier": "db"}) and not drain.selects(sel, {"tier": "db", "canary": "1"})
    assert not drain.selects(sel, {"tier": "web"}) and not drain.selects({}, {"a": "b"})


def _at(tmp_path, version="1.36.2"):
    data = example_data()
    data["spec"]["kubernetes"]["version"] = version
    return write_config(tmp_path / "c.yaml", data)


def test_the_node_script_passes_bash_n_and_shellcheck(tmp_path):
    import shutil
    import subprocess

    from ccp.config.load import load
    from ccp.upgrade.nodes import node_script

    from ccp.config.versions import retarget

    cfg = load(_at(tmp_path)).config
    online = node_script(cfg, retarget(cfg, "1.37.1"))
    assert 'want="1.37.1"' in online and "core:/stable:/v1.37/deb/" in online
    lab = load(EXAMPLES / "local.yaml").config   # air-gapped, a bill of materials of its own
    offline = node_script(lab, retarget(lab, "1.35.0-lab.1", str(EXAMPLES / "lab" / "bom-next.yaml")))
    assert 'want="1.35.0~lab.1"' in offline and "/var/lib/ccp/upgrade/1.35.0-lab.1/packages" in offline
    assert "Release.key" not in offline and "apt-get update" not in offline   # nothing from a repository
    for name, text in (("online", online), ("offline", offline)):
        f = tmp_path / f"upgrade-node-{name}.sh"
        f.write_text(text)
        assert subprocess.run(["bash", "-n", str(f)]).returncode == 0
        if shutil.which("shellcheck"):
            r = subprocess.run(["shellcheck", "-s", "bash", str(f)], capture_output=True, text=True)
            assert r.returncode == 0, r.stdout


def test_the_offline_node_script_installs_the_staged_packages_and_stops_when_one_is_missing(tmp_path):
    """The script itself, run with bash against stand-ins for dpkg-query, apt-get, apt-mark and systemctl
    (on PATH, recording their arguments): the staged kubeadm is installed by its file; a missing one
    stops the script with what to do, before apt-get runs."""
    import os
    import subprocess

    from ccp.config.load import load
    from ccp.config.versions import retarget
    from ccp.upgrade.nodes import node_script

    lab = load(EXAMPLES / "local.yaml").config
    stage = tmp_path / "stage"
    text = node_script(lab, retarget(lab, "1.35.0-lab.1", str(EXAMPLES / "lab" / "bom-next.yaml")))
    text = text.replace("/var/lib/ccp/upgrade/1.35.0-lab.1/packages", str(stage))
    script = tmp_path / "upgrade-node.sh"
    script.write_text(text)
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for tool, out in (("dpkg-query", "1.35.0~alpha.0-1"), ("apt-get", ""), ("apt-mark", ""), ("systemctl", "")):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\necho "{out}"\n')
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(script), "kubeadm"], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "kubeadm 1.35.0~lab.1: no package in" in r.stderr and "rerun ccp upgrade" in r.stderr
    assert "apt-get" not in log.read_text()
    stage.mkdir()
    (stage / "kubeadm_1.35.0~lab.1-1_amd64.deb").write_text("")
    (stage / "kubeadm_1.35.0~alpha.0-1_amd64.deb").write_text("")   # another version beside it is not taken
    r = subprocess.run(["bash", str(script), "kubeadm"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    installs = [l for l in log.read_text().splitlines() if l.startswith("apt-get install")]
    assert installs == [f"apt-get install -y -qq --allow-change-held-packages {stage}/kubeadm_1.35.0~lab.1-1_amd64.deb"]


def test_a_rerun_restarts_a_kubelet_whose_binary_was_replaced_but_not_restarted(tmp_path):
    """Real nodes: a first run installed the kubelet package but could not restart it (unit masked); the
    rerun found the package in place and did not restart, so the old kubelet ran on and the node never
    reported the target. The script now restarts a kubelet whose running binary is gone (replaced)."""
    import os
    import shutil
    import subprocess

    from ccp.config.load import load
    from ccp.config.versions import retarget
    from ccp.upgrade.nodes import node_script

    lab = load(EXAMPLES / "local.yaml").config
    script = tmp_path / "upgrade-node.sh"
    script.write_text(node_script(lab, retarget(lab, "1.35.0-lab.1", str(EXAMPLES / "lab" / "bom-next.yaml"))))
    old_kubelet = tmp_path / "kubelet"          # a running process whose binary is then replaced
    shutil.copy("/bin/sleep", old_kubelet)
    proc = subprocess.Popen([str(old_kubelet), "60"])
    try:
        bin_dir, log = tmp_path / "bin", tmp_path / "calls"
        bin_dir.mkdir()
        answers = {"dpkg-query": "1.35.0~lab.1-1", "systemctl": str(proc.pid)}   # packages at the target already
        for tool in ("dpkg-query", "apt-get", "apt-mark", "systemctl"):
            (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\necho "{answers.get(tool, "")}"\n')
            (bin_dir / tool).chmod(0o755)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

        def restarted() -> bool:
            log.write_text("")
            r = subprocess.run(["bash", str(script), "kubelet"], capture_output=True, text=True, env=env)
            assert r.returncode == 0, r.stderr
            return "systemctl restart kubelet" in log.read_text()
        assert not restarted()                  # the running kubelet is the installed one: left alone
        old_kubelet.unlink()                    # the package replaced its binary
        assert restarted()
    finally:
        proc.kill()
        proc.wait()


def test_pre_releases_order_as_semantic_versions():
    assert skew.check("1.35.0-alpha.0", "1.35.0-lab.1") == "patch"
    assert skew.parse("1.35.0-alpha.0") < skew.parse("1.35.0-alpha.1") < skew.parse("1.35.0-lab.1") < skew.parse("1.35.0")
    assert skew.parse("1.35.0-rc.2") < skew.parse("1.35.0-rc.10")   # numbers by value
    assert skew.is_prerelease("1.35.0-lab.1") and not skew.is_prerelease("1.35.0")
    with pytest.raises(CcpError) as info:
        skew.check("1.35.0-lab.1", "1.35.0-alpha.0")
    assert "does not downgrade" in info.value.message


def test_kubeadm_is_told_the_installs_patches_skipped_phases_and_the_pre_release():
    from ccp.config.load import load
    from ccp.upgrade.nodes import kubeadm_flags

    lab = load(EXAMPLES / "local.yaml").config
    apply = kubeadm_flags(lab, "1.35.0-lab.1", "apply")
    assert "--allow-experimental-upgrades" in apply and "--patches /etc/ccp/kubeadm/patches" in apply
    assert "--skip-phases addon/coredns" in apply
    # real nodes: without CoreDNS, kubeadm's CoreDNS migration checks fail ("start version '' not supported")
    assert "--ignore-preflight-errors HTTPProxyCIDR,CreateJob,CoreDNSUnsupportedPlugins,CoreDNSMigration" in apply
    assert "--patches" in kubeadm_flags(lab, "1.35.0-lab.1", "node")
    worker = kubeadm_flags(lab, "1.35.0-lab.1", "worker")
    assert "--patches" not in worker and "--allow-experimental" not in worker
    assert kubeadm_flags(lab, "1.35.0-lab.1", "plan") == ("--allow-experimental-upgrades --ignore-preflight-errors "
                                                          "HTTPProxyCIDR,CreateJob,CoreDNSUnsupportedPlugins,CoreDNSMigration")
    assert "CoreDNS" not in kubeadm_flags(lab, "1.35.0-lab.1", "node")


def test_a_cluster_on_its_own_bill_of_materials_needs_the_targets(tmp_path):
    import shutil

    from tests.conftest import run_ccp

    shutil.copytree(EXAMPLES / "lab", tmp_path / "lab")
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text((EXAMPLES / "local.yaml").read_text().replace("../.tools/", str(EXAMPLES.parent / ".tools") + "/"))
    r = run_ccp("upgrade", "--config", cfg, "--to", "1.35.0-lab.1", "--dry-run")
    assert r.code == 2 and "a bill of materials of its own" in r.err and "--bill-of-materials" in r.err, r.text
    r = run_ccp("upgrade", "--config", cfg, "--to", "1.35.0-lab.2", "--bill-of-materials", tmp_path / "lab" / "bom-next.yaml", "--dry-run")
    assert r.code == 2 and "is for Kubernetes 1.35.0-lab.1, not 1.35.0-lab.2" in r.err, r.text


def test_the_targets_bill_of_materials_is_written_back_relative_to_cluster_yaml(tmp_path):
    from ccp.upgrade.flow import write_version

    (tmp_path / "lab").mkdir()
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text('spec:\n  kubernetes:\n    version: "1.35.0-alpha.0"   # the build\n    billOfMaterials: lab/bom.yaml\n')
    assert write_version(cfg, "1.35.0-lab.1", str(tmp_path / "lab" / "bom-next.yaml")) is None
    assert cfg.read_text() == ('spec:\n  kubernetes:\n    version: "1.35.0-lab.1"   # the build\n'
                               '    billOfMaterials: "lab/bom-next.yaml"\n')


def test_upgrade_cli_noop_refusal_and_dry_run(tmp_path):
    from tests.conftest import run_ccp

    cfg = _at(tmp_path)
    r = run_ccp("upgrade", "--config", cfg, "--to", "1.36.2")
    assert r.code == 0 and "nothing to do" in r.out
    r = run_ccp("upgrade", "--config", cfg, "--to", "1.38.0")
    assert r.code == 2 and "allowed from 1.36.2: 1.37.1" in r.err
    r = run_ccp("upgrade", "--config", cfg, "--to", "1.37.1", "--dry-run")
    assert r.code == 0, r.text
    assert "upgrade 1.36.2 -> 1.37.1" in r.out and "canary" in r.out and "dry run: nothing was changed" in r.out
    assert "PodDisruptionBudgets not checked" in r.out
    assert not (tmp_path / ".ccp" / "demo" / "journal.jsonl").exists() or "started" not in (
        tmp_path / ".ccp" / "demo" / "journal.jsonl").read_text()
    assert 'version: 1.36.2' in cfg.read_text()


def test_the_version_is_written_back_keeping_comments(tmp_path):
    import shutil

    from ccp.upgrade.flow import write_version
    from tests.conftest import EXAMPLES

    cfg = tmp_path / "cluster.yaml"
    shutil.copy(EXAMPLES / "cluster.yaml", cfg)
    before = cfg.read_text()
    assert write_version(cfg, "1.38.0") is None
    after = cfg.read_text()
    assert 'version: "1.38.0"' in after and "# quoted; `ccp version` lists the supported minors" in after
    assert [a for a, b in zip(after.splitlines(), before.splitlines()) if a != b] == [
        l for l in after.splitlines() if "1.38.0" in l]


def test_an_air_gapped_cluster_is_refused_before_the_plan_is_shown(tmp_path):
    from tests.conftest import run_ccp

    data = example_data()
    data["spec"]["kubernetes"]["version"] = "1.36.2"
    data["spec"]["kubernetes"]["packageBundle"] = str(tmp_path / "debs")
    cfg = write_config(tmp_path / "c.yaml", data)
    r = run_ccp("upgrade", "--config", cfg, "--to", "1.37.1", "--dry-run")
    assert r.code == 2 and "kubernetes.packageBundle" in r.err and "packageRepository" in r.err, r.text
    assert "upgrade 1.36.2 -> 1.37.1" not in r.out
