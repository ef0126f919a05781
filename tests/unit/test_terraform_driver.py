"""The Terraform -json driver against the real terraform binary and a module of built-in
terraform_data resources: init, plan, apply events, outputs, errors with file:line, destroy."""

from __future__ import annotations

import json
import shutil

import pytest

from ccp.errors import InfrastructureError
from ccp.providers.terraform import Terraform, mirror_cli_config
from tests.conftest import FIXTURES

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
NODES = {"c-cp-1": {"role": "control-plane", "address": "10.0.0.21"}, "c-w-1": {"role": "worker", "address": "10.0.0.22"}}
SECRET = "Tf-Planted-Secret-91"


@pytest.fixture
def module(tmp_path, monkeypatch):
    work = tmp_path / "module"
    shutil.copytree(FIXTURES / "terraform" / "vms", work)
    (work / "terraform.tfvars.json").write_text(json.dumps({"nodes": NODES}))
    monkeypatch.setenv("TF_VAR_secret", SECRET)
    state = tmp_path / "state" / "terraform.tfstate"
    return Terraform(work, data_dir=tmp_path / "state" / ".terraform", state=state), state


def test_init_plan_apply_outputs_destroy(module, tmp_path):
    tf, state = module
    events: list[tuple[str, str]] = []
    record = lambda kind, addr, msg: events.append((kind, addr))  # noqa: E731
    tf.init(record)
    plan = tf.plan(tmp_path / "p.tfplan", on_event=record)
    assert plan.changes == {"add": 3, "change": 0, "remove": 0}
    assert ("create", 'terraform_data.node["c-cp-1"]') in plan.planned

    result = tf.apply(tmp_path / "p.tfplan", on_event=record)
    for addr in ('terraform_data.node["c-cp-1"]', 'terraform_data.node["c-w-1"]'):
        assert ("apply_start", addr) in events and ("apply_complete", addr) in events
    assert result.outputs["nodes"]["c-cp-1"] == {"name": "c-cp-1", "role": "control-plane", "address": "10.0.0.21"}
    assert state.exists() and not (tf.workdir / "terraform.tfstate").exists()
    assert SECRET not in state.read_text()

    again = tf.plan(on_event=record)
    assert again.changes == {"add": 0, "change": 0, "remove": 0}

    tf.destroy(record)
    assert json.loads(state.read_text())["resources"] == []


def test_apply_error_names_the_resource_and_keeps_the_rest(module, tmp_path):
    tf, state = module
    events = []
    tf.init()
    tf.plan(tmp_path / "p.tfplan", variables={"fail_node": "c-w-1"})
    with pytest.raises(InfrastructureError) as info:
        tf.apply(tmp_path / "p.tfplan", on_event=lambda k, a, m: events.append((k, a)))
    assert ("apply_errored", 'terraform_data.node["c-w-1"]') in events
    assert "main.tf:" in info.value.message or any("main.tf:" in d for d in info.value.details)
    assert "c-cp-1" in state.read_text(), "what succeeded stays in the state"


def test_config_error_points_at_file_and_line(module):
    tf, _ = module
    (tf.workdir / "broken.tf").write_text('output "x" {\n  value = var.does_not_exist\n}\n')
    tf.init()
    with pytest.raises(InfrastructureError) as info:
        tf.plan()
    assert f"{tf.workdir / 'broken.tf'}:2:" in info.value.message
    assert "Reference to undeclared input variable" in info.value.message


def test_missing_binary_and_mirror_config(tmp_path):
    tf = Terraform(tmp_path, binary="terraform-does-not-exist")
    with pytest.raises(InfrastructureError) as info:
        tf.init()
    assert "provisioner: native" in info.value.resolution
    cfg = mirror_cli_config(tmp_path / "mirror", tmp_path / "rc" / "terraformrc")
    assert "filesystem_mirror" in cfg.read_text() and str(tmp_path / "mirror") in cfg.read_text()
