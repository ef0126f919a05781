"""ccp upgrade's node-by-node orchestration against the recording SSH fake nodes (FakeCluster) and
UpgradePortFake (cordon, drain and node readiness in memory, named a fake because it is one):
control planes one at a time with `apply` first, a canary, then batches; a failure and a Ctrl-C
between nodes both resume at the node where they stopped, redoing nothing."""

from __future__ import annotations

import pytest
import yaml

from ccp.errors import Interrupted, RemoteError
from tests.conftest import run_ccp

TARGET = "1.37.1"


class UpgradePortFake:
    def __init__(self, fc):
        self.fc, self.cordons, self.stop_after = fc, [], None

    def cordon(self, node, unschedulable):
        self.cordons.append((node, unschedulable))

    def pods_on(self, node):
        return [{"metadata": {"name": f"app-{node}", "namespace": "shop", "ownerReferences": [{"kind": "ReplicaSet"}]},
                 "status": {"phase": "Running"}}]

    def pdbs(self):
        return []

    def evict(self, ns, name):
        return None

    def pod_exists(self, ns, name):
        return False

    def node_state(self, node):
        if node == self.stop_after:
            raise KeyboardInterrupt
        done = self.fc.upgraded.get(node, [])
        return True, f"v{TARGET}" if "kubelet" in done else "v1.36.2"


def context(cfg, tmp_path):
    from ccp import ui
    from ccp.config.load import load
    from ccp.context import ClusterContext
    from ccp.engine.journal import Journal
    from ccp.engine.runner import recall_outputs

    state = tmp_path / ".ccp" / "fk"
    ctx = ClusterContext(state_dir=state, reporter=ui.Reporter(), loaded=load(cfg))
    journal = Journal(state)
    recall_outputs(ctx, journal.records())
    return ctx, journal


def upgrade(fc, cfg, tmp_path, port, calls):
    from ccp.upgrade import plan, run

    ctx, journal = context(cfg, tmp_path)
    try:
        steps = plan.plan(ctx.config, ctx.config.spec.kubernetes.version, TARGET)
        handlers = {k: (lambda s, k=k: calls.append(k)) for k in ("preflight", "backup", "addons", "validate")}
        return run.run(ctx, journal, steps, TARGET, port, handlers=handlers, sleep=lambda s: None)
    finally:
        ctx.close()


def test_upgrade_order_batches_and_resume_after_failure_and_ctrl_c(cluster, tmp_path):
    fc, cfg = cluster()
    data = yaml.safe_load(cfg.read_text())
    data["spec"]["kubernetes"]["version"] = "1.36.2"
    data["spec"]["upgrade"] = {"maxUnavailable": 2}
    cfg.write_text(yaml.safe_dump(data))
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    cps, workers = fc.names_by_prefix("cp"), fc.names_by_prefix("worker")
    port, calls = UpgradePortFake(fc), []

    fc.upgrade_fail = {workers[1]: "upgrade node"}          # the second batch fails on its first node
    with pytest.raises(RemoteError) as info:
        upgrade(fc, cfg, tmp_path, port, calls)
    assert workers[1] in info.value.message, (info.value.details, fc.unknown)
    assert calls == ["preflight", "backup"]
    assert fc.upgraded[cps[0]] == ["kubeadm", "upgrade plan", "upgrade apply", "kubelet"]
    assert all(fc.upgraded[c] == ["kubeadm", "upgrade node", "kubelet"] for c in cps[1:])
    # control planes strictly one after another, the canary before any batch
    order = [r.node for r in fc.records if r.script == "bash -s kubelet"]
    assert order[:4] == cps + [workers[0]]
    before = {n: list(v) for n, v in fc.upgraded.items()}

    fc.upgrade_fail = {}
    port.stop_after = workers[1]                           # Ctrl-C while waiting for the retried worker
    with pytest.raises(Interrupted) as info:
        upgrade(fc, cfg, tmp_path, port, calls)
    assert "--resume" in info.value.resolution
    for n in cps + workers[:1]:
        assert fc.upgraded[n] == before[n], f"{n} was upgraded twice"
    assert calls == ["preflight", "backup"], "preflight and backup are not repeated on resume"

    port.stop_after = None
    upgrade(fc, cfg, tmp_path, port, calls)
    assert calls == ["preflight", "backup", "addons", "validate"]
    assert all(fc.upgraded[n][-1] == "kubelet" for n in cps + workers)
    assert all(fc.upgraded[n] == before[n] for n in cps + workers[:1]), "nothing done before was redone"
    # workers[2] shared the failed batch with workers[1] but finished then: journaled on its own, never redone
    assert fc.upgraded[workers[2]] == ["kubeadm", "upgrade node", "kubelet"]
    drained = [n for n, on in port.cordons if on]
    assert set(drained) >= set(cps + workers) and all((n, False) in port.cordons for n in cps + workers)


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
