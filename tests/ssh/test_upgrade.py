"""ccp upgrade's node-by-node orchestration against the recording SSH fake nodes (FakeCluster), with its
Kubernetes side faked (tests.ssh.upgrade_fakes): control planes one at a time with `apply` first, a
canary, then batches, every step a phase of the common engine. A failure, a Ctrl-C inside ccp and a
SIGINT sent to a ccp process of its own all resume at the node where they stopped, redoing nothing,
with the same journal and timing table as an install; Ctrl-C typed at a terminal ends it as cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import ROOT, run_ccp
from tests.ssh import upgrade_fakes
from tests.ssh.upgrade_fakes import FROM, TARGET


def installed(cluster, tmp_path, **upgrade):
    """A fake cluster at FROM, installed up to its kubeconfig; -> (fc, cfg, the install's output)."""
    fc, cfg = cluster()
    fc.upgraded_file = tmp_path / "upgraded.json"
    data = yaml.safe_load(cfg.read_text())
    data["spec"]["kubernetes"]["version"] = FROM
    data["spec"]["upgrade"] = upgrade
    cfg.write_text(yaml.safe_dump(data))
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    return fc, cfg, r


def events(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / ".ccp" / "fk" / "journal.jsonl").read_text().splitlines()]


def started(tmp_path, phase: str) -> int:
    return sum(1 for e in events(tmp_path) if e.get("phase") == phase and e["event"] == "started")


def timing_header(text: str) -> list[str]:
    """The timing table's title and column heads, as Reporter.finished prints them."""
    lines = text.splitlines()
    i = lines.index("phase timings")
    return [lines[i], " ".join(lines[i + 1].split())]


def test_upgrade_order_batches_and_resume_after_failure_and_ctrl_c(cluster, tmp_path, monkeypatch):
    fc, cfg, _ = installed(cluster, tmp_path, maxUnavailable=2)
    port = upgrade_fakes.install(monkeypatch.setattr, tmp_path)
    cps, workers = fc.names_by_prefix("cp"), fc.names_by_prefix("worker")
    args = ("upgrade", "--config", cfg, "--to", TARGET, "--yes")

    fc.upgrade_fail = {workers[1]: "upgrade node"}          # the second batch fails on its first node
    r = run_ccp(*args)
    assert r.code == 5 and f"{workers[1]}: kubeadm upgrade node failed" in r.err, (r.text, fc.unknown)
    assert f"continue with `ccp upgrade --config {cfg} --to {TARGET} --resume`" in r.err
    assert fc.upgraded[cps[0]] == ["kubeadm", "upgrade plan", "upgrade apply", "kubelet"]
    assert all(fc.upgraded[c] == ["kubeadm", "upgrade node", "kubelet"] for c in cps[1:])
    # control planes strictly one after another, the canary before any batch
    order = [r.node for r in fc.records if r.script == "bash -s kubelet"]
    assert order[:4] == cps + [workers[0]]
    kubeadm_upgrades = [r for r in fc.records if r.script.startswith(("kubeadm upgrade apply", "kubeadm upgrade node"))]
    assert kubeadm_upgrades and all(r.locked for r in kubeadm_upgrades), "kubeadm upgrade holds the node's lock"
    # a control plane's API server restart is hurried (static_pods.hurried); a worker has none
    hurried = {r.node: r.hurried for r in kubeadm_upgrades}
    assert {n for n, h in hurried.items() if h} == set(cps) and workers[0] in hurried, hurried
    assert upgrade_fakes.calls(tmp_path) == []
    before = {n: list(v) for n, v in fc.upgraded.items()}

    fc.upgrade_fail = {}
    port.stop_after = workers[1]                           # Ctrl-C while waiting for the retried worker
    r = run_ccp(*args, "--resume")
    assert r.code == 130 and "--resume" in r.err, r.text
    assert f"interrupted in phase upgrade/{TARGET}/workers/{workers[1]}" in r.err
    for n in cps + workers[:1]:
        assert fc.upgraded[n] == before[n], f"{n} was upgraded twice"

    port.stop_after = None
    r = run_ccp(*args, "--resume")
    assert r.code == 0 and f"upgraded to {TARGET}" in r.out, r.text
    assert upgrade_fakes.calls(tmp_path) == [f"addons {TARGET}", f"validate {TARGET}"], "at the target's bill of materials"
    assert all(fc.upgraded[n][-1] == "kubelet" for n in cps + workers)
    assert all(fc.upgraded[n] == before[n] for n in cps + workers[:1]), "nothing done before was redone"
    # workers[2] shared the failed batch with workers[1] but finished then: journaled on its own, never redone
    assert fc.upgraded[workers[2]] == ["kubeadm", "upgrade node", "kubelet"]
    assert started(tmp_path, f"upgrade/{TARGET}/preflight/-") == 1, "the preflight is not repeated on resume"
    assert started(tmp_path, f"upgrade/{TARGET}/backup/-") == 1
    assert len(list((tmp_path / ".ccp" / "fk" / "backups").iterdir())) == 1
    for kind in ("addons", "validate"):   # journaled like every phase
        assert [e["event"] for e in events(tmp_path) if e.get("phase") == f"upgrade/{TARGET}/{kind}/-"] == ["started", "done", "reset"]
    drained = [n for n, on in port.cordons if on]
    assert set(drained) >= set(cps + workers) and all((n, False) in port.cordons for n in cps + workers)
    assert f'version: "{TARGET}"' in cfg.read_text()
    # every node is stamped as prepared at the target: the next apply does not prepare them all again
    # (a scale-out after an upgrade would otherwise cost as much as the install: kubespray#7509)
    before = sum(1 for rec in fc.records if rec.script.startswith("bash /var/lib/ccp/prepare-node.sh"))
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "hosts/prepare")
    assert r.code == 0, r.text
    assert sum(1 for rec in fc.records if rec.script.startswith("bash /var/lib/ccp/prepare-node.sh")) == before, r.text


def made_anew(fc, cfg):
    """The nodes as a fresh install at FROM leaves them, under the same names (destroyed, installed again):
    another cluster, with a kube-system UID of its own."""
    fc.upgraded.clear()
    fc.upgraded_file.write_text("{}")
    (fc.upgraded_file.parent / "cluster-uid").write_text("fake-uid-2")
    data = yaml.safe_load(cfg.read_text())
    data["spec"]["kubernetes"]["version"] = FROM
    cfg.write_text(yaml.safe_dump(data))


def test_a_node_journaled_at_the_target_is_upgraded_again_when_its_kubelet_is_not(cluster, tmp_path, monkeypatch):
    """Found on real nodes: a cluster destroyed half-way through an upgrade and installed again in the same state
    directory. The journal said its control planes were at the target; ccp skipped them and claimed the upgrade."""
    fc, cfg, _ = installed(cluster, tmp_path)
    upgrade_fakes.install(monkeypatch.setattr, tmp_path)
    cps, workers = fc.names_by_prefix("cp"), fc.names_by_prefix("worker")
    args = ("upgrade", "--config", cfg, "--to", TARGET, "--yes")
    fc.upgrade_fail = {workers[0]: "upgrade node"}
    assert run_ccp(*args).code == 5
    assert all(fc.upgraded[c][-1] == "kubelet" for c in cps)

    made_anew(fc, cfg)
    fc.upgrade_fail = {}
    r = run_ccp(*args, "--resume")
    assert r.code == 0, r.text
    assert all(fc.upgraded.get(n, [])[-1:] == ["kubelet"] for n in cps + workers), ("a node left behind", fc.upgraded)
    assert f"journaled at v{TARGET}, but its kubelet is v{FROM}" in r.text, r.text
    # checked and backed up again: the records were of the cluster destroyed
    assert started(tmp_path, f"upgrade/{TARGET}/preflight/-") == 2
    assert started(tmp_path, f"upgrade/{TARGET}/backup/-") == 2


def test_a_finished_upgrade_leaves_nothing_done_for_the_next_one_to_the_same_version(cluster, tmp_path, monkeypatch):
    """Its records served a resume only: with cluster.yaml put back (or the cluster made again) the same upgrade
    runs whole again, preflight and backup included, and every node is upgraded."""
    fc, cfg, _ = installed(cluster, tmp_path)
    upgrade_fakes.install(monkeypatch.setattr, tmp_path)
    nodes = fc.names_by_prefix("cp") + fc.names_by_prefix("worker")
    args = ("upgrade", "--config", cfg, "--to", TARGET, "--yes")
    assert run_ccp(*args).code == 0
    made_anew(fc, cfg)
    r = run_ccp(*args)
    assert r.code == 0 and "done from an earlier run" not in r.out, r.text
    assert started(tmp_path, f"upgrade/{TARGET}/preflight/-") == 2
    assert started(tmp_path, f"upgrade/{TARGET}/backup/-") == 2
    assert all(fc.upgraded.get(n, [])[-1:] == ["kubelet"] for n in nodes), fc.upgraded


def test_each_control_plane_is_held_out_of_the_load_balancers_while_kubeadm_changes_it(cluster, tmp_path, monkeypatch):
    """Found on real nodes: kubelets held on an API server whose etcd kubeadm restarted posted no status for 40 s,
    and their nodes went NotReady. Each control plane's API server is held out of every load balancer before
    `kubeadm upgrade` touches it and released after its kubelet; a load balancer without the health check is said
    and the upgrade goes on."""
    from ccp.remote import lb_hold

    monkeypatch.setattr(lb_hold, "LET_GO", 0)
    fc, cfg, _ = installed(cluster, tmp_path)
    upgrade_fakes.install(monkeypatch.setattr, tmp_path)
    fc.lb_health = True
    r = run_ccp("upgrade", "--config", cfg, "--to", TARGET, "--yes")
    assert r.code == 0, r.text
    cps, lbs = fc.names_by_prefix("cp"), fc.names_by_prefix("lb")
    recs = sorted(fc.records, key=lambda x: x.start)

    def at(pred) -> list[float]:
        return [x.start for x in recs if pred(x)]
    for i, cp in enumerate(cps):
        address = fc.addresses[cp]
        holds = at(lambda x: x.node in lbs and x.script.startswith("[ -f /etc/nginx/ccp-apiservers.conf ]")
                   and f"echo {address} > /etc/nginx/ccp-apiservers-held.tmp" in x.script)
        kubeadm = at(lambda x: x.node == cp and x.script.startswith("kubeadm upgrade"))
        kubelet = at(lambda x: x.node == cp and x.script == "bash -s kubelet")
        releases = [t for t in at(lambda x: x.node in lbs and x.script == lb_hold.RELEASE) if t > kubelet[0]]
        assert len(holds) == len(lbs) and max(holds) < min(kubeadm), f"{cp}: held before kubeadm upgrade"
        assert releases, f"{cp}: released after its kubelet"
        if i + 1 < len(cps):
            later = at(lambda x: x.node == cps[i + 1] and x.script.startswith("kubeadm upgrade"))
            assert releases[0] < min(later), f"{cp}: released before the next control plane changes"
    workers = fc.names_by_prefix("worker")
    assert not any(fc.addresses[w] in x.script for x in recs if x.node in lbs for w in workers), "workers are not held"
    assert "cannot hold" not in r.err


def test_a_load_balancer_that_cannot_hold_is_named_and_the_upgrade_goes_on(cluster, tmp_path, monkeypatch):
    """A cluster installed before the load balancers' health check: nothing can hold the API server out."""
    fc, cfg, _ = installed(cluster, tmp_path)
    upgrade_fakes.install(monkeypatch.setattr, tmp_path)
    r = run_ccp("upgrade", "--config", cfg, "--to", TARGET, "--yes")
    assert r.code == 0, r.text
    lb = fc.names_by_prefix("lb")[0]
    assert f"{lb}: cannot hold {fc.names_by_prefix('cp')[0]}'s API server out of its pool" in r.err, r.err
    assert "no API server health check yet" in r.err and "going on without" in r.err


def test_sigint_between_two_nodes_then_resume_prints_the_install_timing_table(cluster, tmp_path):
    """A real Ctrl-C: SIGINT to a ccp process while it upgrades the second control plane (slow on purpose),
    then `ccp upgrade --resume` in a new process."""
    fc, cfg, install = installed(cluster, tmp_path)
    cps, workers = fc.names_by_prefix("cp"), fc.names_by_prefix("worker")
    fc.upgrade_delay = {cps[1]: 5.0}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")])}
    argv = [sys.executable, "-m", "tests.ssh.upgrade_child", str(tmp_path), "upgrade", "--config", str(cfg), "--to", TARGET]

    child = subprocess.Popen([*argv, "--yes"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 60
    while not (tmp_path / ".ccp" / "fk" / "journal.jsonl").exists() or not started(tmp_path, f"upgrade/{TARGET}/control-plane/{cps[1]}"):
        assert child.poll() is None and time.monotonic() < end, child.communicate()
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, out + err
    assert f"interrupted in phase upgrade/{TARGET}/control-plane/{cps[1]}: nothing was rolled back" in err
    assert f"continue with `ccp upgrade --config {cfg} --to {TARGET} --resume`" in err
    assert re.search(rf"upgrade/{TARGET}/control-plane/{cps[1]}[\s│]+upgrade[\s│]+interrupted", err), err
    assert fc.upgraded[cps[0]] == ["kubeadm", "upgrade plan", "upgrade apply", "kubelet"]
    assert not any(fc.upgraded.get(n) for n in workers)
    first_cp = len(fc.of(cps[0]))

    fc.upgrade_delay = {}
    resumed = subprocess.run([*argv, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"upgraded to {TARGET}" in resumed.stdout
    for phase in ("preflight/-", "backup/-", f"control-plane/{cps[0]}"):
        assert re.search(rf"upgrade/{TARGET}/{phase}\s+already done", resumed.stderr), resumed.stderr
    assert f"upgrade/{TARGET}/control-plane/{cps[1]}" in resumed.stderr and "resuming: the previous run was interrupted" in resumed.stderr
    assert len(fc.of(cps[0])) == first_cp, "nothing was sent to the control plane finished before the Ctrl-C"
    assert fc.upgraded[cps[0]] == ["kubeadm", "upgrade plan", "upgrade apply", "kubelet"]
    # its package step may have run twice: the fake finishes a command whose client was interrupted
    assert [step for step in fc.upgraded[cps[1]] if step != "kubeadm"] == ["upgrade node", "kubelet"]
    assert all(fc.upgraded[n] == ["kubeadm", "upgrade node", "kubelet"] for n in cps[2:] + workers)
    assert timing_header(resumed.stderr) == timing_header(err) == timing_header(install.err)
    assert upgrade_fakes.calls(tmp_path) == [f"addons {TARGET}", f"validate {TARGET}"]


def test_ctrl_c_typed_at_a_terminal_ends_the_upgrade_with_its_spinner_running(cluster, tmp_path):
    """The same interruption where a person sees it: a pseudo-terminal, where rich draws its live spinner
    (a pipe never does), and Ctrl-C typed into it."""
    pexpect = pytest.importorskip("pexpect")
    fc, cfg, _ = installed(cluster, tmp_path)
    cps = fc.names_by_prefix("cp")
    fc.upgrade_delay = {cps[1]: 5.0}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")]), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(sys.executable, ["-m", "tests.ssh.upgrade_child", str(tmp_path), "upgrade", "--config", str(cfg),
                                           "--to", TARGET, "--yes"], cwd=str(tmp_path), env=env, timeout=60,
                          encoding="utf-8", codec_errors="replace", dimensions=(50, 200))
    child.expect(f"control-plane/{cps[1]}")   # its phase started: the spinner runs while the node is slow
    time.sleep(0.5)
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
    assert child.exitstatus == 130, screen
    assert f"interrupted in phase upgrade/{TARGET}/control-plane/{cps[1]}" in screen and "--resume" in screen
    assert "phase timings" in screen and "Traceback" not in screen


def test_backup_saves_a_verified_snapshot_and_the_pki_privately(cluster, tmp_path):
    import json
    import stat

    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    r = run_ccp("backup", "--config", cfg)
    assert r.code == 0, r.text
    (where,) = (tmp_path / ".ccp" / "fk" / "backups").iterdir()
    assert (where / "etcd-snapshot.db").read_bytes() == b"etcd-snapshot-bytes:" + fc.names_by_prefix("cp")[0].encode()
    assert (where / "pki.tar.gz").read_bytes() == b"pki-tarball"
    info = json.loads((where / "backup.json").read_text())
    assert info["etcdStatus"]["revision"] == 42 and info["node"] == fc.names_by_prefix("cp")[0]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in where.iterdir()} == {"0o600"}
    assert oct(stat.S_IMODE(where.stat().st_mode)) == "0o700"
    fc.damage_snapshot = True
    r = run_ccp("backup", "--config", cfg)
    assert r.code == 5 and "arrived damaged" in r.err
