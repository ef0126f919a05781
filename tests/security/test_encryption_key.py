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
