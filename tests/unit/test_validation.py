"""The validation gate's orchestration against a fake Kubernetes port (named as one): order, results,
skips with reasons, failures with details, timeouts, cleanup on every path (Ctrl-C included),
leftovers from earlier runs, and the exit code."""

from __future__ import annotations

import json

import pytest

from ccp.errors import ValidationFailed
from ccp.validation import runner
from ccp.validation.base import Options, PodState
from tests.conftest import run_ccp


class ValidationPortFake:
    """Pods go Pending -> Running -> Succeeded over a few polls; what they print follows the scenario."""

    def __init__(self, nodes=("n1", "n2", "n3"), *, lose_data=False, enforce=True, prometheus=True, es=True,
                 stuck=(), interrupt_at=None, leftovers=(), targets_down=()):
        self.nodes = list(nodes)
        self.lose_data, self.enforce, self.prometheus, self.es = lose_data, enforce, prometheus, es
        self.stuck, self.interrupt_at, self.targets_down = set(stuck), interrupt_at, set(targets_down)
        self.ns = {n: {"ccp.io/validate": "true"} for n in leftovers}
        self.pods: dict[tuple, dict] = {}
        self.objects: list[tuple] = []
        self.deleted: list[tuple] = []
        self.polls = 0

    def namespaces(self, labels):
        return [n for n, lab in self.ns.items() if all(lab.get(k) == v for k, v in labels.items())]

    def create_namespace(self, name, labels):
        self.ns[name] = labels

    def delete_namespace(self, name):
        self.ns.pop(name, None)
        self.deleted.append(("Namespace", name))

    def create(self, obj):
        self.created_objects = getattr(self, "created_objects", []) + [obj]
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        self.objects.append((obj["kind"], *key))
        if obj["kind"] == "Pod":
            affinity = obj["spec"].get("affinity")
            avoid = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
                "matchExpressions"][0]["values"] if affinity else []
            node = next(n for n in self.nodes if n not in avoid)
            self.pods[key] = {"obj": obj, "polls": 0, "node": node}

    def remove(self, kind, namespace, name):
        self.pods.pop((namespace, name), None)
        self.deleted.append((kind, namespace, name))

    def pod(self, namespace, name):
        self.polls += 1
        if self.interrupt_at and self.polls >= self.interrupt_at:
            raise KeyboardInterrupt
        p = self.pods.get((namespace, name))
        if p is None:
            return PodState("Gone")
        if name in self.stuck:
            return PodState("Pending", "", "unschedulable: 0/3 nodes are available: 3 node(s) had volume node affinity conflict")
        p["polls"] += 1
        running = name in ("net-server", "logger")
        phase = "Pending" if p["polls"] < 2 else "Running" if running or p["polls"] < 3 else "Succeeded"
        return PodState(phase, p["node"])

    def pvc_phase(self, namespace, name):
        return "Bound"

    def logs(self, namespace, name):
        p = self.pods[(namespace, name)]
        env = {e["name"]: e.get("value") for e in p["obj"]["spec"]["containers"][0]["env"]}
        if name == "writer":
            self.token = env["TOKEN"]
            return f"WROTE {self.token} {'a' * 64}"
        if name == "reader":
            token = "0000" if self.lose_data else self.token
            return f"READ {token} {'a' * 64} {'a' * 64}"
        if name == "net-client":
            return "DNS ok\nHTTP ccp-ok"
        if name == "net-denied":
            return "BLOCKED" if self.enforce else "REACHED"
        if name.startswith("ccp-validate-query-"):
            return "FOUND"
        return ""

    def schedulable_nodes(self):
        return self.nodes

    def default_storage_class(self):
        return "vsphere"

    def service_exists(self, namespace, name):
        return {"prometheus": self.prometheus, "elasticsearch": self.es}.get(name, False)

    def readyz(self, server=None):
        return (server != "https://10.0.0.13:6443"), "ok" if server != "https://10.0.0.13:6443" else "connection refused"

    def proxy_get(self, namespace, service, port, path):
        jobs = ["apiserver", "kubelet", "kubelet", "node-exporter", "kube-state-metrics"]
        return json.dumps({"data": {"result": [{"metric": {"job": j}, "value": [0, "0" if j in self.targets_down else "1"]}
                                               for j in jobs]}})


def run(port, only=None, timeout=60, **opts):
    now = [0.0]
    return runner.run(port, Options(timeout=timeout, **opts), only=only, clock=lambda: now[0],
                      sleep=lambda s: now.__setitem__(0, now[0] + s))


def by_check(results):
    return {r.check: r for r in results}


def test_all_checks_pass_and_everything_is_cleaned_up():
    port = ValidationPortFake()
    results, notes = run(port)
    assert [r.check for r in results] == ["pvc-persistence", "api-endpoint", "dns-and-network", "metrics", "logs"]
    assert {r.status for r in results} == {"pass"}
    pvc = by_check(results)["pvc-persistence"]
    assert "from n1 to n2" in pvc.detail and pvc.measurements["crossNode"] is True
    assert port.ns == {}, "the run's namespace is gone"
    from tests.k8s_schema import errors
    problems = [e for o in port.created_objects for e in errors(o, "1.36")]
    assert problems == [], "what the checks create is valid Kubernetes"
    assert ("Pod", "logging", next(n for k, ns, n in port.objects if ns == "logging")) in port.deleted
    runner.raise_if_failed(results)


def test_one_schedulable_node_skips_the_cross_node_part():
    results, _ = run(ValidationPortFake(nodes=["only"]))
    pvc = by_check(results)["pvc-persistence"]
    assert pvc.status == "pass" and "cross-node part skipped: only one schedulable node" in pvc.detail


def test_lost_data_fails_with_what_was_read_and_exit_8():
    results, _ = run(ValidationPortFake(lose_data=True))
    pvc = by_check(results)["pvc-persistence"]
    assert pvc.status == "fail" and "read 0000" in pvc.detail
    with pytest.raises(ValidationFailed) as info:
        runner.raise_if_failed(results)
    assert info.value.code == 8 and "pvc-persistence" in info.value.message


def test_skips_say_why():
    results, _ = run(ValidationPortFake(prometheus=False), logging=False)
    assert by_check(results)["metrics"].status == "skipped" and "no Prometheus" in by_check(results)["metrics"].detail
    assert by_check(results)["logs"].detail == "logging is disabled in cluster.yaml"
    flannel, _ = run(ValidationPortFake(), cni_enforces_policy=False)
    assert "NetworkPolicy not tested" in by_check(flannel)["dns-and-network"].detail


def test_policy_not_enforced_and_targets_down_fail():
    results, _ = run(ValidationPortFake(enforce=False, targets_down={"node-exporter"}), timeout=20)
    assert "did not block traffic" in by_check(results)["dns-and-network"].detail
    assert by_check(results)["metrics"].detail == "Prometheus does not see every target up: node-exporter: 1 of 1 down"


def test_api_endpoint_names_the_failing_control_plane():
    results, _ = run(ValidationPortFake(), endpoints=["https://10.0.0.11:6443", "https://10.0.0.13:6443"])
    api = by_check(results)["api-endpoint"]
    assert api.status == "fail" and "https://10.0.0.13:6443: connection refused" in api.detail


def test_timeout_says_what_is_stuck_and_still_cleans_up():
    port = ValidationPortFake(stuck={"reader"})
    results, _ = run(port, timeout=5)
    pvc = by_check(results)["pvc-persistence"]
    assert pvc.status == "fail"
    assert "did not get to Succeeded within 5s (it is Pending: unschedulable: 0/3 nodes" in pvc.detail
    assert {r.check for r in results if r.status == "pass"} >= {"api-endpoint", "metrics"}, "the other checks still run"
    assert port.ns == {}


def test_ctrl_c_still_cleans_up():
    port = ValidationPortFake(interrupt_at=6)
    with pytest.raises(KeyboardInterrupt):
        run(port)
    assert port.ns == {} and ("Namespace",) == port.deleted[-1][:1]


def test_leftovers_from_a_crashed_run_are_removed():
    port = ValidationPortFake(leftovers=["ccp-validate-dead01"])
    _, notes = run(port, only=["api-endpoint"])
    assert "removed namespace ccp-validate-dead01 left by an earlier run" in notes
    assert "ccp-validate-dead01" not in port.ns


def test_cli_checks_names_and_kubeconfig_before_anything(tmp_path):
    r = run_ccp("validate", "--only", "bogus")
    assert r.code == 2 and "no check named bogus" in r.err
    r = run_ccp("validate", "--kubeconfig", tmp_path / "none")
    assert r.code == 2 and "does not exist" in r.err and "Traceback" not in r.text


def test_an_unexpected_error_fails_that_check_only():
    port = ValidationPortFake()
    port.readyz = lambda server=None: (_ for _ in ()).throw(ConnectionError("api went away"))
    results, _ = run(port)
    assert by_check(results)["api-endpoint"].status == "fail"
    assert "ConnectionError: api went away" in by_check(results)["api-endpoint"].detail
    assert by_check(results)["pvc-persistence"].status == "pass" and port.ns == {}
