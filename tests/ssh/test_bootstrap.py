"""The bootstrap phases against a FakeCluster of recording SSH servers: order, batching (control
planes one at a time, workers in parallel), probes that make a rerun mutate nothing, a failing worker
reported by name with the others' work kept, and join secrets that never touch a command line."""

from __future__ import annotations

import json

import yaml

from tests.conftest import run_ccp
from tests.ssh.fake_cluster import ADDR, CERT_KEY, TOKEN, FakeCluster

def span(records):
    return min(r.start for r in records), max(r.end for r in records)


def test_bootstrap_order_batching_secrets_and_rerun(cluster, tmp_path):
    fc, cfg = cluster()
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert fc.unknown == []

    def first(node, text):
        return next(rec for rec in fc.of(node) if text in rec.script)

    prepares = [first(n, "bash /var/lib/ccp/prepare-node.sh") for n in ADDR if "-lb-" not in n]
    lb = first("fk-lb-1", "bash /var/lib/ccp/loadbalancer.sh")
    init = first("fk-cp-1", "kubeadm init --config")
    joins_cp = [first(n, "kubeadm join") for n in ("fk-cp-2", "fk-cp-3")]
    joins_w = [first(n, "kubeadm join") for n in ("fk-worker-1", "fk-worker-2", "fk-worker-3")]
    assert max(p.end for p in prepares) <= lb.start <= init.start
    assert init.end <= min(j.start for j in joins_cp)
    assert joins_cp[0].end <= joins_cp[1].start, "control planes join one at a time"
    uploads = [r for r in fc.of("fk-cp-1") if r.script.startswith("kubeadm init phase upload-certs")]
    assert len(uploads) == 1 and uploads[0].end <= joins_cp[0].start, "one set of join secrets serves both joins"
    assert max(j.end for j in joins_cp) <= min(j.start for j in joins_w)
    starts, ends = sorted(j.start for j in joins_w), sorted(j.end for j in joins_w)
    assert starts[-1] < ends[0], "workers join in parallel"
    assert fc.members == {n for n in ADDR if "-lb-" not in n}

    for rec in fc.records:
        assert TOKEN not in rec.script and CERT_KEY not in rec.script
    assert joins_cp[0].secrets["CCP_CERTIFICATE_KEY"] == CERT_KEY and joins_w[0].secrets["CCP_CERTIFICATE_KEY"] == ""

    state = tmp_path / ".ccp" / "fk"
    kc = yaml.safe_load((state / "kubeconfig").read_text())
    assert kc["clusters"][0]["cluster"]["server"] == "https://127.0.1.100:6443" and kc["current-context"] == "fk"
    assert oct((state / "kubeconfig").stat().st_mode & 0o777) == "0o600"
    leaks = [TOKEN, CERT_KEY, "S0VZLURBVEEtU0VDUkVU"]
    for p in [*state.rglob("*.log"), state / "journal.jsonl"]:
        text = p.read_text()
        assert not any(s in text for s in leaks), p
    assert not any(s in r.text for s in leaks)
    assert len((state / "known_hosts").read_text().splitlines()) == len(ADDR)
    journal = [json.loads(x) for x in (state / "journal.jsonl").read_text().splitlines()]
    pins = {h: fp for e in journal if e["event"] == "done" for h, fp in e.get("outputs", {}).get("hostKeysPinned", {}).items()}
    assert len(pins) == len(ADDR), "every first contact is journaled with its fingerprint"

    before = len(fc.records)
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    again = fc.records[before:]
    # (security/apply reads the kubeadm-config ConfigMap: "kubeadm " is kubeadm itself)
    assert again and not [x.script for x in again if any(m in x.script for m in ("mv -f /tmp/ccp-", "bash /var/lib", "kubeadm "))]
    assert r.err.count("already done") >= 8

    fc.initialized_api_down = True   # the VIP stops answering: the probe says so, init is not repeated
    before = len(fc.records)
    r = run_ccp("plan", "--config", cfg, "--output", "json")
    init = next(p for p in json.loads(r.out)["phases"] if p["phase"] == "kubeadm/init")
    assert init["actions"][0]["verb"] == "wait for"
    fc.initialized_api_down = False


def test_install_waits_for_a_control_plane_that_came_back(cluster):
    """A control plane's machine started again: its API server listens before it is ready, and NGINX sends it
    requests, so the install waits for its own /readyz before going on (found on real nodes: validate failed)."""
    import threading

    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    fc.api_down = {"fk-cp-2"}
    r = run_ccp("plan", "--config", cfg, "--output", "json")
    joins = next(p for p in json.loads(r.out)["phases"] if p["phase"] == "kubeadm/join-control-plane")
    assert [(a["verb"], a["target"]) for a in joins["actions"]] == [("wait for", "the API server on fk-cp-2")]
    threading.Timer(2.5, fc.api_down.clear).start()
    before = len(fc.records)
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    polls = [x for x in fc.records[before:] if x.node == "fk-cp-2" and "127.0.0.1:6443/readyz" in x.script]
    assert len(polls) >= 3 and polls[-1].end - polls[0].start >= 2, "it polled until the API server answered"
    assert not [x for x in fc.records[before:] if "kubeadm join" in x.script], "nothing joins again"
    r = run_ccp("plan", "--config", cfg, "--output", "json")
    assert next(p for p in json.loads(r.out)["phases"] if p["phase"] == "kubeadm/join-control-plane")["actions"] == []


def test_a_failing_worker_is_named_and_the_others_are_kept(cluster, tmp_path):
    fc, cfg = cluster(fail={"fk-worker-2": "port 10250 is in use"})
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 5
    assert "fk-worker-2" in r.err and "port 10250 is in use" in r.err and "--resume" in r.err
    assert "fk-worker-1" not in r.err.split("error:")[1].split("to fix:")[0].replace("fk-worker-2", "")
    prepared = set(fc.prepared)
    assert "fk-worker-2" not in prepared and {"fk-worker-1", "fk-worker-3", "fk-cp-1"} <= prepared

    fc.fail.clear()
    before = len(fc.records)
    r = run_ccp("install", "--config", cfg, "--resume", "--until", "kubeconfig")
    assert r.code == 0, r.text
    redone = {x.node for x in fc.records[before:] if "bash /var/lib/ccp/prepare-node.sh" in x.script}
    assert redone == {"fk-worker-2"}
    assert fc.members == {n for n in ADDR if "-lb-" not in n}


def test_changed_host_key_stops_the_run(cluster, tmp_path, client_key):
    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "hosts/prepare").code == 0
    fc.stop()
    import asyncssh
    fc2 = FakeCluster(list(ADDR), ADDR, fc.port, client_key.with_suffix(".pub"), tmp_path / "chroots2")
    fc2.host_keys["fk-cp-2"] = asyncssh.generate_private_key("ssh-ed25519")
    fc2.host_keys.update({n: k for n, k in fc.host_keys.items() if n != "fk-cp-2"})
    fc2.start()
    try:
        r = run_ccp("install", "--config", cfg, "--yes", "--until", "hosts/prepare")
        assert r.code == 5 and "fk-cp-2" in r.err and "host key changed" in r.err
        assert fc2.of("fk-cp-2") == []
    finally:
        fc2.stop()
        fc.start()


def test_host_failures_say_how_to_resume_log_the_error_and_show_in_phases(cluster, tmp_path):
    import json

    import yaml

    fc, cfg = cluster(fail={"fk-worker-2": "port 10250 is in use"})
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 5
    assert f"ccp install --config {cfg} --resume" in r.err
    log = next(line.split("log:", 1)[1].strip() for line in r.err.splitlines() if line.startswith("log:"))
    text = open(log).read()
    assert "port 10250 is in use" in text and "to fix:" in text and "--resume" in text
    phases = {p["phase"]: p["status"] for p in json.loads(run_ccp("phases", "--config", cfg, "--output", "json").out)["phases"]}
    assert phases["hosts/prepare"] == "failed" and phases["provision"] == "done"

    # A host that does not answer at all fails the phase's probe: journaled and shown the same way.
    data = yaml.safe_load(cfg.read_text())
    data["spec"]["hosts"][-1]["address"] = "127.0.1.99"   # nothing listens there
    cfg.write_text(yaml.safe_dump(data))
    fc.fail.clear()
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 5, r.text
    assert "127.0.1.99" in r.err and f"ccp install --config {cfg} --resume" in r.err
    phases = {p["phase"]: p for p in json.loads(run_ccp("phases", "--config", cfg, "--output", "json").out)["phases"]}
    assert phases["hosts/prepare"]["status"] == "failed" and "fk-worker-3" in phases["hosts/prepare"]["error"]
    assert "phase timings" in r.err and "failed" in r.err.split("phase timings", 1)[1]


def test_certs_renew_one_control_plane_at_a_time_waiting_for_the_api(cluster, tmp_path):
    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    kubeconfig = tmp_path / ".ccp" / "fk" / "kubeconfig"
    kubeconfig.unlink()
    r = run_ccp("certs", "renew", "--config", cfg, "--yes")
    assert r.code == 0, r.text
    cps = fc.names_by_prefix("cp")
    assert fc.renewed == cps and fc.restarted == cps
    steps = [(x.node, x.script.split()[0] if not x.script.startswith("end=$((") else "wait") for x in fc.records
             if x.node in cps and (x.script.startswith(("kubeadm certs renew", "mkdir -p /etc/kubernetes/ccp-parked", "end=$((")))]
    assert steps == [(n, s) for n in cps for s in ("kubeadm", "mkdir", "wait")], steps   # strictly one after another
    changes = [x for x in fc.records if x.script.startswith(("kubeadm certs renew", "mkdir -p /etc/kubernetes/ccp-parked"))]
    assert all(x.locked for x in changes), "the renewal and the restart hold the control plane's lock (the timer's too)"
    assert kubeconfig.exists(), "the kubeconfig is rewritten with the renewed client certificate"

    # the API not coming back after the second control plane stops there: the third is untouched
    fc.renewed.clear()
    fc.api_down_after_renew.add(cps[1])
    r = run_ccp("certs", "renew", "--config", cfg, "--yes")
    assert r.code == 5 and f"{cps[1]}: renewed, but its API server and etcd did not come back" in r.err
    assert fc.renewed == cps[:2]


def test_an_offline_bundle_reaches_every_node_over_ssh(cluster, tmp_path):
    import yaml

    from ccp.bundle.manifest import items
    from ccp.config.load import load
    from tests.unit.test_bundle import fill

    fc, cfg = cluster()
    src = tmp_path / "mirror"
    fill(src, items(load(cfg).config))
    assert run_ccp("bundle", "create", "--config", cfg, "--from", src, "--out", tmp_path / "bundle.tar").code == 0
    data = yaml.safe_load(cfg.read_text())
    data["spec"]["offline"] = {"bundle": str(tmp_path / "bundle.tar")}
    cfg.write_text(yaml.safe_dump(data))
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "hosts/prepare")
    assert r.code == 0, r.text
    for node in fc.prepared:
        files = fc.files[node]
        assert any(p.startswith("/var/lib/ccp/packages/kubeadm_") for p in files), sorted(files)
        # control-plane images go to control planes only: a worker is not sent hundreds of MB it never runs
        apiserver = any(p.startswith("/var/lib/ccp/images/registry.k8s.io_kube-apiserver_") for p in files)
        assert apiserver == ("-cp-" in node), node
        assert any(p.startswith("/var/lib/ccp/images/registry.k8s.io_kube-proxy_") for p in files)
        assert "ctr -n k8s.io images import" in files["/var/lib/ccp/prepare-node.sh"]


def test_a_control_plane_whose_join_stopped_half_way_is_reset_and_joined_again(cluster, tmp_path):
    """Real nodes: ccp killed during a control plane's `kubeadm join`, after kubelet-start (kubelet.conf
    written) but before control-plane-join (no etcd member, no etcd manifest). The resumed install took it
    for a member and waited minutes for an API server that could never answer. Now it is reset and joined."""
    fc, cfg = cluster()
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeadm/join-control-plane")
    assert r.code == 0, r.text
    fc.etcd.discard("fk-cp-2")          # kubelet.conf is there (fc.members), the etcd manifest is not
    r = run_ccp("plan", "--config", cfg)
    assert "join node fk-cp-2 (as a control plane again: its last join stopped half-way" in r.out, r.text
    assert "the API server on fk-cp-2" not in r.out
    before = len(fc.records)
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeadm/join-control-plane")
    assert r.code == 0, r.text
    sent = [(x.node, "reset" if "kubeadm reset" in x.script else "join") for x in fc.records[before:]
            if "kubeadm reset" in x.script or "kubeadm join" in x.script]
    assert sent == [("fk-cp-2", "reset"), ("fk-cp-2", "join")], sent
    assert "fk-cp-2" in fc.etcd
