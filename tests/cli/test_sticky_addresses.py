"""Growing a running cluster's control planes or load balancers through the commands: the state directory's
journal (a real file, the provision phase's record written as the phase writes it) says where each machine
is; `ccp plan`, `ccp render` and the install's render phase give existing nodes those addresses and new
nodes free ones, so NGINX's upstreams, kubeadm's certSANs, keepalived's peers, cloud-init and Terraform all
agree. A range that cannot hold the new nodes stops the run before any phase acts, with exit code 2."""

from __future__ import annotations

import json

import yaml

from ccp.engine.journal import Journal
from tests.conftest import example_data, run_ccp, write_config

STATE = ".ccp/demo"
FIRST = {"demo-lb-1": "10.10.0.20", "demo-lb-2": "10.10.0.21", "demo-cp-1": "10.10.0.22", "demo-cp-2": "10.10.0.23",
         "demo-cp-3": "10.10.0.24", "demo-default-1": "10.10.0.25", "demo-default-2": "10.10.0.26",
         "demo-default-3": "10.10.0.27"}


def role(name: str) -> str:
    return {"lb": "loadbalancer", "cp": "control-plane"}.get(name.split("-")[1], "worker")


def provisioned(tmp_path, machines: dict[str, str]) -> None:
    """The provision phase's record of these machines (the outputs the terraform provider returns), and the
    Terraform state that holds them, as a run that made them leaves both."""
    state = tmp_path / STATE
    nodes = {n: {"role": role(n), "address": a, "reported": a, "moid": f"vm-{i}", "uuid": f"u-{i}"}
             for i, (n, a) in enumerate(machines.items())}
    Journal(state).append("done", phase="provision", fingerprint="f", inputs={}, outputs={
        "provisioner": "terraform", "nodes": nodes, "removed": [], "hostKeysPinned": {}})
    (state / "terraform").mkdir(parents=True, exist_ok=True)
    (state / "terraform" / "terraform.tfstate").write_text(json.dumps({"resources": [{
        "type": "vsphere_virtual_machine", "name": "node", "instances": [{"index_key": n} for n in machines]}]}))


def installed(tmp_path, **shape):
    """cluster.yaml, rendered and provisioned as written (FIRST), then edited to ``shape``."""
    data = example_data()
    path = write_config(tmp_path / "cluster.yaml", data)
    assert run_ccp("install", "--config", path, "--until", "render").code == 0
    provisioned(tmp_path, FIRST)
    data["spec"]["nodes"]["controlPlane"]["count"] = shape.get("cp", 3)
    data["spec"]["loadBalancer"]["nginx"]["count"] = shape.get("lb", 2)
    data["spec"]["nodes"]["workers"][0]["count"] = shape.get("workers", 3)
    if "addresses" in shape:
        data["spec"]["nodes"]["network"]["addresses"] = shape["addresses"]
    return write_config(path, data)


def test_five_control_planes_keep_every_address_and_the_plan_names_the_new_ones(tmp_path):
    path = installed(tmp_path, cp=5)
    r = run_ccp("plan", "--config", path, "--output", "json")
    # the machines exist, so the host phases probe them over SSH: here no private key, no connection (exit 5)
    assert r.code == 5, r.text
    data = json.loads(r.out)
    assert not next(p for p in data["phases"] if p["phase"] == "provision")["probeError"]
    got = {n["name"]: n["address"] for n in data["nodes"]}
    assert {n: got[n] for n in FIRST} == FIRST, "no existing node moves"
    assert got["demo-cp-4"] == "10.10.0.28" and got["demo-cp-5"] == "10.10.0.29"
    provision = next(p for p in data["phases"] if p["phase"] == "provision")["actions"]
    assert [(a["verb"], a["target"], a["reason"].rsplit(", ", 1)[-1]) for a in provision] == [
        ("create", "VM demo-cp-4", "10.10.0.28"), ("create", "VM demo-cp-5", "10.10.0.29")]

    text = run_ccp("plan", "--config", path).out
    row = next(line for line in text.splitlines() if line.lstrip().startswith("control-plane"))
    assert "10.10.0.22 – 10.10.0.24, 10.10.0.28 – 10.10.0.29" in row
    assert "create VM demo-cp-4 (4 vCPU, 8192 MiB, 60 GiB, 10.10.0.28)" in text


def test_render_and_the_render_phase_agree_on_the_kept_and_new_addresses(tmp_path):
    path = installed(tmp_path, cp=5, lb=3)
    state = tmp_path / STATE
    r = run_ccp("install", "--config", path, "--until", "render")
    assert r.code == 0, r.text
    rendered = state / "rendered"
    # new nodes in role order: demo-lb-3 takes .28, then demo-cp-4 and demo-cp-5
    cps = ["10.10.0.22", "10.10.0.23", "10.10.0.24", "10.10.0.29", "10.10.0.30"]
    health = (rendered / "nginx" / "demo-lb-1" / "apiserver-health.sh").read_text()   # writes NGINX's upstream servers
    assert next(line for line in health.splitlines() if line.startswith("SERVERS=")).split('"')[1].split() == cps
    init = list(yaml.safe_load_all((rendered / "kubeadm" / "demo-cp-1" / "init.yaml").read_text()))
    sans = next(d for d in init if d["kind"] == "ClusterConfiguration")["apiServer"]["certSANs"]
    assert set(cps) <= set(sans) and "10.10.0.28" in sans and "10.10.0.25" not in sans
    keepalived = (rendered / "keepalived" / "demo-lb-3" / "keepalived.conf").read_text()
    assert "unicast_src_ip 10.10.0.28" in keepalived and "10.10.0.20" in keepalived and "10.10.0.21" in keepalived
    tfvars = json.loads((rendered / "terraform" / "terraform.tfvars.json").read_text())["nodes"]
    assert {n: tfvars[n]["address"] for n in FIRST} == FIRST
    assert (tfvars["demo-cp-4"]["address"], tfvars["demo-cp-5"]["address"], tfvars["demo-lb-3"]["address"]) == \
        ("10.10.0.29", "10.10.0.30", "10.10.0.28")
    for name, address in {"demo-default-1": "10.10.0.25", "demo-cp-5": "10.10.0.30"}.items():
        assert f"- {address}/24" in (rendered / "cloud-init" / name / "network-config").read_text()

    before = {p: p.read_bytes() for p in rendered.rglob("*") if p.is_file()}
    r = run_ccp("render", "--config", path, "--output", "json")    # the command writes what the phase wrote
    assert r.code == 0, r.text
    assert json.loads(r.out)["changes"]["update"] == 0 and json.loads(r.out)["changes"]["delete"] == 0
    assert {p: p.read_bytes() for p in rendered.rglob("*") if p.is_file()} == before


def test_a_range_too_small_for_the_new_nodes_stops_before_anything_runs(tmp_path):
    """An LB swapped for a worker in one edit, in a range of exactly eight: the leaving LB's machine holds its
    address until provision deletes it, so the new worker has none. Said before anything is made."""
    path = installed(tmp_path, lb=1, workers=4, addresses="10.10.0.20-10.10.0.27")
    journal = tmp_path / STATE / "journal.jsonl"
    before = journal.read_text()
    for command in (("plan",), ("install", "--yes"), ("install", "--yes", "--until", "config")):
        r = run_ccp(*command, "--config", path)
        assert r.code == 2, r.text
        assert "no free address left for demo-default-4" in r.err
        assert "widen spec.nodes.network.addresses or add fewer nodes" in r.err
    new = [json.loads(line) for line in journal.read_text()[len(before):].splitlines()]
    # the plan and the install stop while planning; with --until config, config/validate is where it fails
    assert [(e["event"], e["phase"]) for e in new if "phase" in e] == [("failed", "config/validate")]
