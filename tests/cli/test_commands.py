"""The command line as a user meets it: exit codes, JSON outputs, the schema, init, plan, render,
install (rerun, resume, --until, --skip-phases) and phases."""

from __future__ import annotations

import json

import jsonschema
import yaml

from tests.conftest import EXAMPLES, example_data, run_ccp, small_config, write_config


def test_help_and_version():
    r = run_ccp("--help")
    assert r.code == 0
    for cmd in ("install", "plan", "render", "phases", "version", "config"):
        assert cmd in r.out
    r = run_ccp("version", "--output", "json")
    data = json.loads(r.out)
    assert data["kubernetes"]["supported"] == ["1.37", "1.36", "1.35"]


def test_unknown_command_is_a_usage_error():
    r = run_ccp("instal")
    assert r.code == 2 and "Traceback" not in r.text


def test_validate_ok_and_json(example_config):
    r = run_ccp("config", "validate", "--config", example_config)
    assert r.code == 0 and "is valid" in r.out and "8 VMs" in r.out
    r = run_ccp("config", "validate", "--config", example_config, "--output", "json")
    data = json.loads(r.out)
    assert data["valid"] is True and data["vms"] == 8


def test_validate_errors_exit_2_without_traceback(tmp_path):
    data = example_data()
    data["spec"]["nodes"]["controlPlane"]["count"] = 2
    data["spec"]["bogus"] = 1
    path = write_config(tmp_path / "bad.yaml", data)
    r = run_ccp("config", "validate", "--config", path)
    assert r.code == 2
    assert "Traceback" not in r.text
    assert "error:" in r.err and "to fix:" in r.err
    assert f"{path}:" in r.err and "spec.bogus" in r.err and "spec.nodes.controlPlane.count" in r.err
    r = run_ccp("config", "validate", "--config", path, "--output", "json")
    assert r.code == 2 and len(json.loads(r.out)["errors"]) == 2


def test_schema_is_valid_and_describes_the_contract():
    r = run_ccp("config", "schema")
    schema = json.loads(r.out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in ("cluster.yaml", "vcsim.yaml"):
        errors = list(validator.iter_errors(yaml.safe_load((EXAMPLES / name).read_text())))
        assert not errors, [e.message for e in errors]
    bad = example_data()
    bad["spec"]["vsphere"]["tempalte"] = "x"
    assert any("tempalte" in e.message for e in validator.iter_errors(bad))
    assert schema["properties"]["spec"]


def test_init_writes_a_valid_commented_example(tmp_path):
    r = run_ccp("config", "init")
    assert r.code == 0 and r.out.startswith("# ccp cluster definition")
    target = tmp_path / "new.yaml"
    assert run_ccp("config", "init", "--out", target).code == 0
    assert run_ccp("config", "validate", "--config", target).code == 0
    again = run_ccp("config", "init", "--out", target)
    assert again.code == 2 and "--force" in again.err


def test_plan_changes_nothing_and_groups_by_layer(example_config, tmp_path):
    r = run_ccp("plan", "--config", example_config)
    assert r.code == 0, r.text
    assert "prepare" in r.out and "write 24 cloud-init files" in r.out and "write 3 security files" in r.out
    assert not (tmp_path / ".ccp").exists()
    data = json.loads(run_ccp("plan", "--config", example_config, "--output", "json").out)
    assert [p["phase"] for p in data["phases"]] == [
        "config/validate", "render", "preflight/offline-bundle", "preflight/vsphere", "preflight/local", "nodes/remove", "provision", "hosts/prepare", "loadbalancer/nginx",
        "kubeadm/init", "kubeadm/join-control-plane", "kubeadm/join-workers", "kubelets/serving-certificates", "security/apply",
        "kubeconfig", "backup/schedule",
        "certs/auto-renew", "cni", "addons", "validate"]
    assert len(data["nodes"]) == 8 and data["summary"]["prepare"] == 68
    hosts = next(p for p in data["phases"] if p["phase"] == "hosts/prepare")
    assert hosts["actions"] == [{"verb": "prepare", "target": "6 hosts", "reason": "after provisioning", "count": 6, "changes": True}]
    provision = next(p for p in data["phases"] if p["phase"] == "provision")["actions"]
    assert [a["target"] for a in provision] == [f"VM {n['name']}" for n in data["nodes"]]
    assert "Terraform plan unavailable" in run_ccp("plan", "--config", example_config).err


def test_render_to_out_dir(example_config, tmp_path):
    r = run_ccp("render", "--config", example_config, "--out", tmp_path / "r", "--output", "json")
    data = json.loads(r.out)
    assert data["changes"]["create"] == 67 and len(data["files"]) == 67
    assert (tmp_path / "r" / "terraform" / "main.tf").exists()
    r = run_ccp("render", "--config", example_config, "--out", tmp_path / "r")
    assert "0 new, 0 changed, 67 unchanged" in r.out


def test_install_rerun_until_skip_and_phases(example_config, tmp_path):
    state = tmp_path / ".ccp" / "demo"
    r = run_ccp("install", "--config", example_config, "--until", "config")
    assert r.code == 0, r.text
    assert (state / "cluster.json").exists() and not (state / "rendered").exists()
    phases = json.loads(run_ccp("phases", "--config", example_config, "--output", "json").out)
    status = {p["phase"]: p["status"] for p in phases["phases"]}
    assert status["config/validate"] == "done" and set(list(status.values())[1:]) == {"pending"}
    assert len(status) == 20

    r = run_ccp("install", "--config", example_config, "--resume", "--until", "render")
    assert r.code == 0
    assert "already done" in r.err and "render" in r.err and "phase timings" in r.err
    assert len(list((state / "rendered").rglob("user-data"))) == 8

    r = run_ccp("install", "--config", example_config, "--until", "render")
    assert r.err.count("already done") >= 2 and "first run" not in r.err

    # vcenter.example.com cannot be reached from here: the install stops in preflight, exit 3
    r = run_ccp("install", "--config", example_config, "--yes")
    assert r.code == 3 and "connect" in r.err and "--resume" in r.err

    r = run_ccp("install", "--config", example_config, "--skip-phases", "bogus")
    assert r.code == 2 and "there is no phase 'bogus'" in r.err


def test_changed_config_reruns_render_naming_the_input(tmp_path):
    data = example_data()
    path = write_config(tmp_path / "c.yaml", data)
    assert run_ccp("install", "--config", path, "--until", "render").code == 0
    data["spec"]["nodes"]["workers"][0]["count"] = 4
    write_config(path, data)
    r = run_ccp("install", "--config", path, "--until", "render")
    assert "inputs changed: spec" in r.err
    assert (tmp_path / ".ccp" / "demo" / "rendered" / "cloud-init" / "demo-default-4" / "user-data").exists()


def test_resume_without_a_previous_run(example_config):
    r = run_ccp("install", "--config", example_config, "--resume")
    assert r.code == 2 and "no earlier install to resume" in r.err


def test_state_dir_option_and_env(example_config, tmp_path, monkeypatch):
    assert run_ccp("--state-dir", tmp_path / "s1", "install", "--config", example_config, "--until", "render").code == 0
    assert (tmp_path / "s1" / "journal.jsonl").exists()
    monkeypatch.setenv("CCP_STATE_DIR", str(tmp_path / "s2"))
    assert run_ccp("install", "--config", example_config, "--until", "render").code == 0
    assert (tmp_path / "s2" / "journal.jsonl").exists()


def test_state_dir_belongs_to_one_cluster(tmp_path):
    a = write_config(tmp_path / "a.yaml", example_data())
    b = write_config(tmp_path / "b.yaml", small_config())
    assert run_ccp("--state-dir", tmp_path / "s", "install", "--config", a, "--until", "render").code == 0
    r = run_ccp("--state-dir", tmp_path / "s", "install", "--config", b, "--until", "render")
    assert r.code == 2 and "belongs to cluster 'demo'" in r.err


def test_internal_error_is_one_line_without_debug(example_config, tmp_path):
    state = tmp_path / ".ccp" / "demo"
    state.mkdir(parents=True)
    (state / "rendered").write_text("a file where a directory should be")
    r = run_ccp("install", "--config", example_config, "--until", "render")
    assert r.code == 70 and "Traceback" not in r.text
    assert "--resume" in r.err and "log:" in r.err
    r = run_ccp("--debug", "install", "--config", example_config, "--until", "render")
    assert r.code == 70 and "Traceback" in r.err


def test_unreachable_vcenter_in_plan_and_destroy(tmp_path):
    data = example_data()
    data["spec"]["provisioner"] = "native"
    data["spec"]["vsphere"]["server"] = "127.0.0.1:9"   # nothing listens on the discard port
    path = write_config(tmp_path / "c.yaml", data)
    plan = json.loads(run_ccp("plan", "--config", path, "--output", "json").out)
    provision = next(p for p in plan["phases"] if p["phase"] == "provision")
    assert "cannot reach vCenter at 127.0.0.1:9" in provision["probeError"]
    r = run_ccp("plan", "--config", path)   # an incomplete plan is an error of the probe's family
    assert r.code == 3 and "the install would stop here" in r.out and "plan incomplete" in r.out
    assert run_ccp("plan", "--config", path, "--detailed-exitcode").code == 1
    r = run_ccp("destroy", "--config", path, "--yes")
    assert r.code == 3 and "cannot reach vCenter at 127.0.0.1:9" in r.err and "Traceback" not in r.text
