"""The cluster's encryption key (spec.security.encryption) appears nowhere but in <state>/secrets/encryption-key
and in the configuration uploaded to the control planes: not in the rendered files, the journal, the run logs,
the console (also with --debug), a command line or an environment secret sent to a node. Both for a key ccp
makes and for one planted in the state directory beforehand (which ccp must keep and use)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.conftest import run_ccp

PLANTED = base64.b64encode(b"Planted-Encryption-Key-32-bytes!").decode()
ENCRYPTION_CONFIG = "/etc/kubernetes/ccp/encryption-config.yaml"


def _files_holding(root: Path, needle: str, but: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and p != but and needle.encode() in p.read_bytes()]


@pytest.mark.parametrize("source", ["made", "planted"])
def test_the_encryption_key_leaks_nowhere(cluster, tmp_path, source):
    fc, cfg = cluster()
    state = tmp_path / ".ccp" / "fk"
    key_file = state / "secrets" / "encryption-key"
    if source == "planted":
        key_file.parent.mkdir(parents=True, mode=0o700)
        key_file.write_text(PLANTED + "\n")
        key_file.chmod(0o600)
    outputs = []
    for args in (["plan", "--config", cfg], ["plan", "--config", cfg, "--output", "json"],
                 ["--debug", "install", "--config", cfg, "--yes", "--until", "kubeconfig"],
                 ["phases", "--config", cfg, "--output", "json"], ["install", "--config", cfg, "--yes", "--until", "kubeconfig"]):
        r = run_ccp(*args)
        assert r.code == 0, r.text
        outputs.append(r.text)
        if key_file.exists():   # after each command: a rerun's render would put a leaked file right again
            key = key_file.read_text().strip()
            assert _files_holding(state, key, but=key_file) == [], f"the state directory after ccp {args[0]}"
    key = key_file.read_text().strip()
    assert len(base64.b64decode(key)) == 32 and (key == PLANTED) == (source == "planted")
    # the test can see the key where it belongs: on every control plane, inside the uploaded configuration
    assert all(key in fc.files[cp][ENCRYPTION_CONFIG] for cp in ("fk-cp-1", "fk-cp-2", "fk-cp-3"))

    assert not [text for text in outputs if key in text], "the console"
    assert _files_holding(state, key, but=key_file) == [], "the state directory (rendered files, journal, logs)"
    assert list((state / "logs").glob("*.log")) and (state / "journal.jsonl").exists() and (state / "rendered").is_dir()
    assert not [rec.script for rec in fc.records if key in rec.script], "a command line"
    assert not [rec.secrets for rec in fc.records if key in rec.secrets.values()], "an environment secret"


def test_a_key_rotation_leaks_neither_key(cluster, tmp_path):
    """`ccp secrets rotate-key` (with --debug, and its plan) from a planted key: the old and the new key are in
    <state>/secrets and in the uploaded configurations only, never in an output, a log, the journal, a command
    line or an environment secret; the old one is gone from <state>/secrets at the end."""
    fc, cfg = cluster()
    state = tmp_path / ".ccp" / "fk"
    secrets = state / "secrets"
    secrets.mkdir(parents=True, mode=0o700)
    (secrets / "encryption-key").write_text(PLANTED + "\n")
    (secrets / "encryption-key").chmod(0o600)
    outputs = []
    for args in (["install", "--config", cfg, "--yes", "--until", "kubeconfig"], ["secrets", "rotate-key", "--config", cfg],
                 ["--debug", "secrets", "rotate-key", "--config", cfg, "--yes"], ["phases", "--config", cfg, "--output", "json"],
                 ["backup", "--config", cfg]):
        r = run_ccp(*args)
        assert r.code == (2 if args[1:3] == ["rotate-key", "--config"] and "--yes" not in args else 0), r.text
        outputs.append(r.text)
    new = (secrets / "encryption-key").read_text().strip()
    assert new != PLANTED and len(base64.b64decode(new)) == 32
    assert all(new in fc.files[cp][ENCRYPTION_CONFIG] and PLANTED not in fc.files[cp][ENCRYPTION_CONFIG]
               for cp in ("fk-cp-1", "fk-cp-2", "fk-cp-3"))
    for key in (PLANTED, new):
        assert not [text for text in outputs if key in text], "the console"
        leaked = [p for p in _files_holding(state, key, but=secrets / "encryption-key")
                  if not p.startswith(str(secrets)) and not p.endswith("/encryption-config.yaml")]
        assert leaked == [], "the state directory (rendered files, journal, logs)"
        assert not [rec.script for rec in fc.records if key in rec.script], "a command line"
        assert not [rec.secrets for rec in fc.records if key in rec.secrets.values()], "an environment secret"
    assert _files_holding(secrets, PLANTED, but=secrets / "encryption-key") == [], "the old key left <state>/secrets"
    (backup,) = (state / "backups").iterdir()
    assert sorted(_files_holding(state, new, but=secrets / "encryption-key")) == sorted(
        [str(secrets / "encryption-keys" / "ccp-2"), str(backup / "encryption-config.yaml")])
    assert (backup / "encryption-config.yaml").stat().st_mode & 0o777 == 0o600
