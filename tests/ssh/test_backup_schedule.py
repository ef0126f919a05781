"""Backups: the schedule on the control planes (backup/schedule against the recording SSH nodes, the
calendar judged by this machine's real systemd-analyze), the rendered snapshot script run for real
with bash over a stand-in crictl (retention, modes, digests), and `ccp backup --keep`."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess

import yaml

from tests.conftest import example_data, run_ccp, write_config

TIMER = "/etc/systemd/system/ccp-etcd-backup.timer"
SCRIPT = "/usr/local/sbin/ccp-etcd-backup"


def with_schedule(cfg, schedule, keep=3):
    data = yaml.safe_load(cfg.read_text())
    data["spec"]["backup"] = {"schedule": schedule, "keep": keep} if schedule else {"keep": keep}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))


def test_schedule_installs_on_every_control_plane_then_reruns_clean_and_is_removed(cluster):
    fc, cfg = cluster()
    with_schedule(cfg, "*-*-* 02:30:00")
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "backup/schedule")
    assert r.code == 0, r.text
    cps = fc.names_by_prefix("cp")
    assert fc.backup_timers == set(cps)
    for n in cps:
        assert "OnCalendar=*-*-* 02:30:00" in fc.files[n][TIMER] and "keep=3" in fc.files[n][SCRIPT]
    assert not any(TIMER in fc.files[n] for n in fc.names if n not in cps)

    before = len(fc.records)
    again = run_ccp("install", "--config", cfg, "--yes", "--until", "backup/schedule")
    assert again.code == 0 and not [m for m in fc.mutating() if m in fc.records[before:]]

    with_schedule(cfg, "*-*-* 04:00:00", keep=5)       # a new time: files replaced, the timer stays on
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "backup/schedule")
    assert r.code == 0 and all("04:00:00" in fc.files[n][TIMER] and "keep=5" in fc.files[n][SCRIPT] for n in cps)

    with_schedule(cfg, None)
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "backup/schedule")
    assert r.code == 0, r.text
    assert fc.backup_timers == set() and not any(TIMER in fc.files[n] or SCRIPT in fc.files[n] for n in cps)


def test_a_calendar_systemd_rejects_is_a_config_error(cluster):
    fc, cfg = cluster()
    with_schedule(cfg, "every day at noon")          # passes the character check, not systemd's parser
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "backup/schedule")
    assert r.code == 2, r.text
    assert "is not a calendar expression systemd" in r.err and "man systemd.time" in r.err
    assert fc.backup_timers == set()


def test_schedule_field_is_checked_when_the_config_loads(tmp_path):
    data = example_data()
    data["spec"]["backup"] = {"schedule": "daily; rm -rf /", "keep": 3}
    r = run_ccp("config", "validate", "--config", write_config(tmp_path / "c.yaml", data))
    assert r.code == 2 and "spec.backup.schedule" in r.err and "OnCalendar" in r.err


def test_rendered_snapshot_script_keeps_the_newest_n(tmp_path):
    """The script as rendered for a control plane, run for real by bash: its paths pointed into tmp_path,
    crictl replaced by a stand-in that answers like etcd's container would."""
    from ccp import render
    from ccp.config.load import load

    data = example_data()
    data["spec"]["backup"] = {"schedule": "hourly", "keep": 2}
    out = render.render_all(load(write_config(tmp_path / "c.yaml", data)))
    script = next(t for p, t in out.files.items() if p.endswith("/etcd-backup.sh"))
    root = tmp_path / "node"
    (root / "etcd").mkdir(parents=True)
    (root / "kubernetes" / "pki").mkdir(parents=True)
    (root / "kubernetes" / "pki" / "ca.crt").write_text("CA")
    script = (script.replace(render.NODE_BACKUP_DIR, str(root / "backups")).replace("/var/lib/etcd", str(root / "etcd"))
              .replace("/etc/kubernetes", str(root / "kubernetes")))
    (tmp_path / "run.sh").write_text(script)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "crictl").write_text("#!/bin/bash\n"
                                    "case \"$1\" in ps) echo abc123 ;;\n"
                                    " exec) shift 2; if [ \"$1\" = etcdctl ]; then f=${!#}; printf 'snapshot-%s' \"$RANDOM\" > \"$f\";\n"
                                    "       else echo '{\"hash\":1,\"revision\":9,\"totalKey\":3}'; fi ;; esac\n")
    (bin_dir / "crictl").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for _ in range(4):
        r = subprocess.run(["bash", str(tmp_path / "run.sh")], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
    backups = root / "backups"
    dbs = sorted(p.name for p in backups.glob("*.db"))
    assert len(dbs) == 2 and "2 old removed" not in r.stdout and "1 old removed" in r.stdout
    for db in dbs:
        base = db[:-3]
        digest = (backups / f"{db}.sha256").read_text().split()[0]
        assert digest == hashlib.sha256((backups / db).read_bytes()).hexdigest()
        assert json.loads((backups / f"{base}.json").read_text())["revision"] == 9
        assert (backups / f"{base}-pki.tar.gz").exists()
    assert len(list(backups.iterdir())) == 8
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in backups.iterdir()} == {0o600}
    assert not (root / "etcd" / "ccp-scheduled.db").exists()


def test_ccp_backup_keeps_the_newest_n_here(cluster, tmp_path):
    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    for _ in range(3):
        r = run_ccp("backup", "--config", cfg, "--keep", "2")
        assert r.code == 0, r.text
    kept = sorted(p.name for p in (tmp_path / ".ccp" / "fk" / "backups").iterdir())
    assert len(kept) == 2 and "removed the old backup" in r.err
    (tmp_path / ".ccp" / "fk" / "backups" / "notes").mkdir()       # not a backup: never pruned
    assert run_ccp("backup", "--config", cfg, "--keep", "1").code == 0
    assert sorted(p.name for p in (tmp_path / ".ccp" / "fk" / "backups").iterdir())[-1] == "notes"
    assert len(list((tmp_path / ".ccp" / "fk" / "backups").iterdir())) == 2
