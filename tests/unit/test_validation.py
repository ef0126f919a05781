"""The validation gate's orchestration against a fake Kubernetes port (named as one): order, results,
skips with reasons, failures with details, timeouts, cleanup on every path (Ctrl-C included),
leftovers from earlier runs, and the exit code."""

from __future__ import annotations

import json

import pytest

from ccp.errors import ValidationFailed
from ccp.validation import report, runner
from ccp.validation.base import Options, PodState, ServiceState
from ccp.validation.checks import CHECKS
from tests.conftest import run_ccp


class ValidationPortFake:
    """Pods go Pending -> Running -> Succeeded over a few polls; what they print follows the scenario.
    dns: "ready" | "absent" (no kube-dns Service) | "no-pods" | "not-ready" | "broken" (lookups fail);
    routing: Service ClusterIPs route; pod_network: pod IPs route."""

    def __init__(self, nodes=("n1", "n2", "n3"), *, lose_data=False, enforce=True, prometheus=True, es=True,
                 stuck=(), interrupt_at=None, leftovers=(), targets_down=(), dns="ready", routing=True, pod_network=True):
        self.nodes = list(nodes)
        self.lose_data, self.enforce, self.prometheus, self.es = lose_data, enforce, prometheus, es
        self.dns, self.routing, self.pod_network = dns, routing, pod_network
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
        return PodState(phase, p["node"], "", "10.244.1.7" if phase != "Pending" else "")

    def pvc_phase(self, namespace, name):
        return "Bound"

    def volume_is_node_local(self, namespace, name):
        return getattr(self, "node_local", False)

    def logs(self, namespace, name):
        p = self.pods[(namespace, name)]
        env = {e["name"]: e.get("value") for e in p["obj"]["spec"]["containers"][0]["env"]}
        if name == "writer":
            self.token = env["TOKEN"]
            return f"WROTE {self.token} {'a' * 64}"
        if name == "reader":
            token = "0000" if self.lose_data else self.token
            return f"READ {token} {'a' * 64} {'a' * 64}"
        if name == "dns-client":
            if self.dns == "broken":
                return "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\n;; connection timed out; no servers could be reached\n\nDNS-FAILED"
            return ("Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\tkubernetes.default.svc.cluster.local\n"
                    "Address: 10.96.0.1\n\nDNS-OK")
        if name == "net-client":
            script = p["obj"]["spec"]["containers"][0]["command"][-1]
            pod_ok = self.pod_network and "http://10.244.1.7:8080/" in script
            svc_ok = self.pod_network and self.routing and "http://10.96.0.77:8080/" in script
            refused = "wget: can't connect to remote host (10.96.0.77): Network is unreachable"
            return f"POD {'ccp-ok' if pod_ok else 'failed: '}\nSERVICE {'ccp-ok' if svc_ok else 'failed: ' + refused}"
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

    def service(self, namespace, name):
        if (namespace, name) == ("kube-system", "kube-dns"):
            return {"absent": None, "no-pods": ServiceState("10.96.0.10", 0, 0),
                    "not-ready": ServiceState("10.96.0.10", 2, 0)}.get(self.dns, ServiceState("10.96.0.10", 2, 2))
        if (namespace, name) == ("default", "kubernetes"):
            return ServiceState("10.96.0.1", 1, 1)
        if ("Service", namespace, name) in self.objects:
            return ServiceState("10.96.0.77", 1, 1)
        return None

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
    assert [r.check for r in results] == ["pvc-persistence", "api-endpoint", "dns", "service-and-policy", "metrics", "logs"]
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


def test_a_node_local_volume_is_read_back_on_its_own_node():
    """Found on real nodes: a local-path volume cannot follow a pod; the reader was forced elsewhere and
    stayed Pending for the whole timeout. Now the reader stays on the writer's node, saying why."""
    port = ValidationPortFake()
    port.node_local = True
    results, _ = run(port)
    pvc = by_check(results)["pvc-persistence"]
    assert pvc.status == "pass" and "the volume is node-local" in pvc.detail
    assert pvc.measurements["crossNode"] is False and pvc.measurements["nodeLocal"] is True
    reader = next(o for o in port.created_objects if o["kind"] == "Pod" and o["metadata"]["name"] == "reader")
    assert "affinity" not in reader["spec"]


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
    assert "NetworkPolicy not tested" in by_check(flannel)["service-and-policy"].detail


def test_policy_not_enforced_and_targets_down_fail():
    results, _ = run(ValidationPortFake(enforce=False, targets_down={"node-exporter"}), timeout=20)
    assert "did not block traffic" in by_check(results)["service-and-policy"].detail
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


# --- dns and service-and-policy: DNS absent is a skip with its reason, never a pass; Services need no DNS

NO_DNS_IN_CONFIG = "no cluster DNS: kubeadm's addon/coredns phase is skipped in cluster.yaml"


@pytest.mark.parametrize("dns, coredns_skipped, reason", [
    ("absent", True, NO_DNS_IN_CONFIG),
    ("absent", False, "no kube-dns Service in kube-system"),
    ("no-pods", True, NO_DNS_IN_CONFIG),
    ("no-pods", False, "no cluster DNS: no pods behind the kube-dns Service in kube-system"),
])
def test_no_cluster_dns_is_skipped_with_the_reason(dns, coredns_skipped, reason):
    port = ValidationPortFake(dns=dns)
    results, _ = run(port, coredns_skipped=coredns_skipped)
    r = by_check(results)["dns"]
    assert (r.status, r.detail) == ("skipped", reason)
    assert r.as_dict()["status"] == "skipped" and r.as_dict()["reason"] == reason
    assert not any(name == "dns-client" for _, _, name in port.objects), "no lookup is tried without a DNS"
    assert by_check(results)["service-and-policy"].status == "pass", "the Service check does not need DNS"
    runner.raise_if_failed(results)   # a skip is not a failure: exit 0
    assert report.summary(results) == "5 passed, 1 skipped"
    assert report.counts(results) == {"passed": 5, "failed": 0, "skipped": 1}


def test_the_config_reason_is_not_given_when_the_cluster_has_dns_after_all():
    results, _ = run(ValidationPortFake(), coredns_skipped=True)
    assert by_check(results)["dns"].status == "pass", "the real cluster decides, cluster.yaml only explains"


def test_dns_passes_with_the_answer_it_got():
    results, _ = run(ValidationPortFake())
    r = by_check(results)["dns"]
    assert r.status == "pass" and "resolved kubernetes.default.svc.cluster.local to 10.96.0.1" in r.detail
    assert r.measurements == {"server": "10.96.0.10", "answers": ["10.96.0.1"]}


def test_dns_fails_when_kube_dns_exists_but_lookups_fail():
    results, _ = run(ValidationPortFake(dns="broken"), coredns_skipped=True)
    r = by_check(results)["dns"]
    assert r.status == "fail"
    assert r.detail == ("a pod could not resolve kubernetes.default.svc.cluster.local through the cluster DNS "
                        "(10.96.0.10, 2 ready pod(s)): ;; connection timed out; no servers could be reached")
    with pytest.raises(ValidationFailed) as info:
        runner.raise_if_failed(results)
    assert info.value.code == 8 and "(5 passed, 1 failed)" in info.value.message


def test_dns_pods_never_ready_fail_rather_than_skip():
    results, _ = run(ValidationPortFake(dns="not-ready"), timeout=20)
    r = by_check(results)["dns"]
    assert r.status == "fail" and r.detail == "the kube-dns Service in kube-system has 2 pod(s), none ready within 20s"


def test_dns_answer_must_be_the_kubernetes_service():
    port = ValidationPortFake()
    port.service = lambda ns, name, real=port.service: ServiceState("10.96.0.2", 1, 1) if name == "kubernetes" else real(ns, name)
    r = by_check(run(port)[0])["dns"]
    assert r.status == "fail" and "resolved to 10.96.0.1, not the kubernetes Service's ClusterIP 10.96.0.2" in r.detail


def test_service_is_reached_by_its_cluster_ip_without_dns():
    port = ValidationPortFake(dns="absent")
    results, _ = run(port, image="registry.local/busybox:1.37.0")
    r = by_check(results)["service-and-policy"]
    assert r.status == "pass" and "by its ClusterIP 10.96.0.77" in r.detail and "NetworkPolicy blocks it" in r.detail
    assert r.measurements == {"clusterIP": "10.96.0.77", "podIP": "10.244.1.7", "policy": "enforced"}
    pods = {o["metadata"]["name"]: o for o in port.created_objects if o["kind"] == "Pod"}
    for name in ("net-server", "net-client", "net-denied"):
        container = pods[name]["spec"]["containers"][0]
        assert container["image"] == "registry.local/busybox:1.37.0" and container["imagePullPolicy"] == "IfNotPresent"
        script = container["command"][-1]
        assert "net-server:" not in script and "nslookup" not in script, "no DNS name"
        assert "-T" not in script.split(), "Debian's static busybox wget crashes on -T: `timeout` bounds it instead"
    assert "http://10.96.0.77:8080/" in pods["net-denied"]["spec"]["containers"][0]["command"][-1]


def test_service_routing_failure_is_told_apart_from_the_pod_network():
    r = by_check(run(ValidationPortFake(routing=False))[0])["service-and-policy"]
    assert r.status == "fail"
    assert r.detail == ("a pod reached the server pod at 10.244.1.7:8080 but could not reach it through its Service's "
                        "ClusterIP 10.96.0.77:8080 (Service routing: kube-proxy or the CNI's replacement): "
                        "wget: can't connect to remote host (10.96.0.77): Network is unreachable")
    r = by_check(run(ValidationPortFake(pod_network=False))[0])["service-and-policy"]
    assert r.status == "fail" and "directly or through its Service (the pod network): wget: can't connect" in r.detail


def test_policy_is_skipped_when_the_cni_does_not_enforce_it():
    port = ValidationPortFake(enforce=False)
    r = by_check(run(port, cni_enforces_policy=False)[0])["service-and-policy"]
    assert r.status == "pass" and r.measurements["policy"] == "skipped"
    assert r.detail == "a pod reached a Service by its ClusterIP 10.96.0.77; NetworkPolicy not tested (the CNI does not enforce it)"
    assert not any(kind == "NetworkPolicy" or name == "net-denied" for kind, _, name in port.objects)


def test_the_table_shows_skip_with_its_reason_and_the_summary_counts_it_apart(capsys):
    results, notes = run(ValidationPortFake(dns="absent", prometheus=False))
    report.print_table(results, notes)
    out = capsys.readouterr().out
    assert "SKIP" in out and "no kube-dns Service in" in out and "no Prometheus" in out
    assert out.count("PASS") == 4 and "FAIL" not in out
    assert "4 passed, 2 skipped" in out
    said = []
    runner.run(ValidationPortFake(dns="absent"), Options(timeout=60), only=["dns"], say=said.append)
    assert said == ["dns: running", "dns: skipped (no kube-dns Service in kube-system)"]


def test_summary_wording():
    from ccp.validation.base import Result

    rs = [Result("a", "pass", 1, ""), Result("b", "fail", 1, "x"), Result("c", "skipped", 0, "why")]
    assert report.summary(rs) == "1 passed, 1 failed, 1 skipped"
    assert report.summary(rs[:1]) == "1 passed"
    assert rs[0].as_dict().get("reason") is None and rs[2].as_dict()["reason"] == "why"


@pytest.mark.parametrize("kubeadm, skipped", [
    (None, False), ({"skipPhases": []}, False), ({"skipPhases": ["addon/coredns"]}, True),
    ({"skipPhases": ["addon"]}, True), ({"skipPhases": ["addon/kube-proxy"]}, False)])
def test_coredns_skipped_is_read_from_cluster_yaml(kubeadm, skipped):
    from types import SimpleNamespace

    from ccp.validation.options import coredns_skipped

    k8s = SimpleNamespace(kubeadm=SimpleNamespace(**kubeadm)) if kubeadm is not None else SimpleNamespace()
    assert coredns_skipped(SimpleNamespace(spec=SimpleNamespace(kubernetes=k8s))) is skipped


def test_cli_only_knows_the_new_names():
    assert list(CHECKS) == ["pvc-persistence", "api-endpoint", "dns", "service-and-policy", "metrics", "logs"]
    r = run_ccp("validate", "--only", "dns-and-network")
    assert r.code == 2 and "no check named dns-and-network" in r.err and "dns, service-and-policy" in r.err


def test_from_config_knows_when_cluster_yaml_skips_coredns():
    from ccp.config.load import load
    from ccp.validation.options import from_config
    from tests.conftest import ROOT

    assert from_config(load(ROOT / "examples" / "local.yaml", defer_secrets=True).config).coredns_skipped is True
    assert from_config(load(ROOT / "examples" / "cluster.yaml", defer_secrets=True).config).coredns_skipped is False


def test_the_default_images_are_the_bill_of_materials():
    """With no cluster.yaml, the pods run the images bom.yaml pins for ccp's default version (one source)."""
    from ccp.config.versions import bom_for, default_version

    images = bom_for(default_version()).images
    assert (Options().image, Options().query_image) == (images["busybox"], images["elasticsearch"])
