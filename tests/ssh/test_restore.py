"""ccp restore against the recording SSH nodes: the snapshot checked before anything is touched;
every member stopped before any restores; etcdutl given the cluster's members as one new cluster;
etcd started everywhere before any API server; the uploaded snapshot removed; a failure on one node
and a rerun that restores only what is left."""

from __future__ import annotations

from tests.conftest import run_ccp


def backed_up(cluster, tmp_path):
    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    assert run_ccp("backup", "--config", cfg).code == 0
    (where,) = (tmp_path / ".ccp" / "fk" / "backups").iterdir()
    return fc, cfg, where


def test_restore_order_and_what_each_node_runs(cluster, tmp_path):
    fc, cfg, where = backed_up(cluster, tmp_path)
    refused = run_ccp("restore", "--config", cfg, "--from", where)          # no terminal, no --yes
    assert refused.code == 2 and not fc.parked

    r = run_ccp("restore", "--config", cfg, "--from", where, "--yes")
    assert r.code == 0, r.text
    cps = fc.names_by_prefix("cp")
    kinds = [what for _, what in fc.events]
    last_park = max(i for i, k in enumerate(kinds) if k == "park")
    first_restore = min(i for i, k in enumerate(kinds) if k == "restore")
    assert kinds.count("park") == 3 and last_park < first_restore, "every member stops before any restores"
    parks = [x for x in fc.records if x.script.startswith("set -e; mkdir -p /etc/kubernetes/ccp-restore-parked")]
    assert len(parks) == 3 and all(x.locked for x in parks), "stopping the static pods waits for the renewal timer"
    starts = [k for k in kinds if k.startswith("start")]
    assert starts == (["start etcd.yaml"] * 3 + ["start kube-apiserver.yaml"] * 3 + ["start kube-scheduler.yaml"] * 3
                      + ["start kube-controller-manager.yaml"] * 3), "the controllers restart too, after the API"
    assert kinds[-7:] == ["controllers"] * 3 + ["settled"] + ["clean"] * 3, "awaited before the restore ends"
    settled = next(x for x in fc.records if "-l tier=control-plane" in x.script)
    assert "-ge 12 ]" in settled.script, "4 static pods on each of the 3 control planes, Ready in the API"
    members = ",".join(f"{n}=https://{fc.addresses[n]}:2380" for n in cps)
    for n in cps:
        argv = fc.restored[n]
        assert argv[:3] == ["etcdutl", "snapshot", "restore"] and argv[argv.index("--name") + 1] == n
        assert argv[argv.index("--initial-cluster") + 1] == members
        assert argv[argv.index("--initial-advertise-peer-urls") + 1] == f"https://{fc.addresses[n]}:2380"
    assert not any(p.startswith("/var/lib/ccp/restore/") for n in cps for p in fc.files[n])
    assert "etcd-snapshot-bytes" not in r.text


def test_damaged_snapshot_is_refused_before_anything_is_touched(cluster, tmp_path):
    fc, cfg, where = backed_up(cluster, tmp_path)
    (where / "etcd-snapshot.db").write_bytes(b"tampered")
    r = run_ccp("restore", "--config", cfg, "--from", where, "--yes")
    assert r.code == 3 and "does not match its recorded sha256" in r.err and "to fix" in r.err
    assert not fc.parked and not fc.restored
    missing = run_ccp("restore", "--config", cfg, "--from", tmp_path / "nope", "--yes")
    assert missing.code == 2 and "there is no backup" in missing.err
    (where / "backup.json").write_text("{not json")
    damaged = run_ccp("restore", "--config", cfg, "--from", where, "--yes")
    assert damaged.code == 2 and "is damaged" in damaged.err
    loose = tmp_path / "snap.db"
    loose.write_bytes(b"x")
    (tmp_path / "snap.db.sha256").write_text("")
    empty = run_ccp("restore", "--config", cfg, "--from", loose, "--yes")
    assert empty.code == 2 and "does not hold a sha256" in empty.err


def test_a_failed_node_and_a_rerun_restore_only_what_is_left(cluster, tmp_path):
    fc, cfg, where = backed_up(cluster, tmp_path)
    fc.restore_fail = {"fk-cp-2"}
    r = run_ccp("restore", "--config", cfg, "--from", where, "--yes")
    assert r.code == 5 and "fk-cp-2" in r.err and f"--from {where} --yes" in r.err
    assert set(fc.restored) == {"fk-cp-1", "fk-cp-3"} and all(fc.parked.values()), "nothing started half-restored"
    before = [k for _, k in fc.events].count("restore")
    r = run_ccp("restore", "--config", cfg, "--from", where, "--yes")
    assert r.code == 0, r.text
    assert [k for _, k in fc.events].count("restore") == before + 1 and set(fc.restored) == set(fc.names_by_prefix("cp"))
    assert not any(fc.parked.values())


def test_at_a_real_terminal_no_and_ctrl_c_change_nothing(cluster, tmp_path):
    """ccp restore's prompt in a pseudo-terminal, where typer really asks (node replace asks through the
    same helper, show_and_confirm; its subprocess here would need the fake nodes' Kubernetes API)."""
    from tests.sim.test_terminal import finish, spawn

    fc, cfg, where = backed_up(cluster, tmp_path)
    child, screen = spawn(["restore", "--config", cfg, "--from", where], tmp_path)
    child.expect(r"Every change made since it was taken is lost", timeout=60)
    child.sendline("n")
    assert finish(child) == 0, screen.text[-2000:]
    assert "nothing changed" in screen.text and not fc.parked

    child, screen = spawn(["restore", "--config", cfg, "--from", where], tmp_path)
    child.expect(r"is lost", timeout=60)
    child.sendintr()
    assert finish(child) == 130, screen.text[-2000:]
    assert "interrupted" in screen.text and "Traceback" not in screen.text and not fc.parked


def test_a_backup_keeps_its_keys_and_a_restore_after_a_rotation_brings_the_old_key_back(cluster, tmp_path):
    """ccp backup keeps the encryption configuration its snapshot needs (0600); after a rotation dropped that key
    from the control planes and <state>/secrets, ccp restore adds it back for reading before the API servers start
    (the cluster's key still encrypts), so every restored Secret reads; the next ccp apply rewrites them with the
    cluster's key and drops the old one again."""
    import json

    import yaml

    fc, cfg, where = backed_up(cluster, tmp_path)
    state = tmp_path / ".ccp" / "fk"
    old = (state / "secrets" / "encryption-key").read_text().strip()
    kept = where / "encryption-config.yaml"
    assert kept.stat().st_mode & 0o777 == 0o600 and old in kept.read_text()
    assert json.loads((where / "backup.json").read_text())["encryptionKeys"] == ["ccp-1"]

    assert run_ccp("secrets", "rotate-key", "--config", cfg, "--yes").code == 0
    assert not [p for p in (state / "secrets").rglob("*") if p.is_file() and old in p.read_text()]
    r = run_ccp("restore", "--config", cfg, "--from", where, "--yes")
    assert r.code == 0, r.text
    assert "restore/encryption-keys" in r.err and old not in r.text
    assert fc.apis.violations == [], "every restored Secret is readable once the API servers start"
    assert set(fc.apis.prefixes().values()) == {"k8s:enc:secretbox:v1:ccp-1:"}, "etcd as the snapshot had it"
    new = (state / "secrets" / "encryption-key").read_text().strip()
    for cp in fc.names_by_prefix("cp"):
        doc = yaml.safe_load(fc.files[cp]["/etc/kubernetes/ccp/encryption-config.yaml"])
        keys = [k["name"] for p in doc["resources"][0]["providers"] for c in p.values() for k in (c or {}).get("keys", [])]
        assert keys == ["ccp-2", "ccp-1"], "the cluster's key first, the snapshot's for reading"
    assert (state / "secrets" / "encryption-keys" / "ccp-1").read_text().strip() == old

    r = run_ccp("apply", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert fc.apis.violations == [] and set(fc.apis.prefixes().values()) == {"k8s:enc:secretbox:v1:ccp-2:"}
    assert sorted(p.name for p in (state / "secrets" / "encryption-keys").iterdir()) == ["ccp-2"]
    assert (state / "secrets" / "encryption-key").read_text().strip() == new
