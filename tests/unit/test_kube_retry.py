"""Behind the VIP, an API server that has just (re)started answers 403 until its authorisation cache is
synced (seen on real nodes when a stopped control plane came back): ccp repeats a refused call for a
bounded time, and a lasting refusal is still an error that says what to check."""

from __future__ import annotations

import httpx2 as httpx
import pytest
from lightkube.core.exceptions import ApiError

from ccp.errors import KubernetesError
from ccp.remote.kube import LightkubePort


def refusal(code: int) -> ApiError:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "message": 'nodes is forbidden: User "kubernetes-admin" cannot list resource "nodes"', "reason": "Forbidden"}
    return ApiError(response=httpx.Response(code, json=body, request=httpx.Request("GET", "https://192.0.2.5:6443/api/v1/nodes")))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_a_passing_refusal_is_retried_then_succeeds():
    clock, calls = Clock(), []

    def fn():
        calls.append(clock.now)
        if len(calls) < 4:
            raise refusal(403)
        return ["ok"]
    assert LightkubePort._call(fn, "list nodes", sleep=clock.sleep, clock=clock) == ["ok"]
    assert len(calls) == 4


def test_a_lasting_refusal_ends_within_the_budget_with_what_to_check():
    clock = Clock()

    def fn():
        raise refusal(403)
    with pytest.raises(KubernetesError) as info:
        LightkubePort._call(fn, "list nodes", sleep=clock.sleep, clock=clock)
    assert "refused to list nodes" in info.value.message and "permissions" in info.value.resolution
    assert 30 <= clock.now <= 34


def test_other_refusals_are_not_retried():
    clock, calls = Clock(), []

    def fn():
        calls.append(1)
        raise refusal(422)
    with pytest.raises(KubernetesError):
        LightkubePort._call(fn, "apply x", sleep=clock.sleep, clock=clock)
    assert calls == [1]


def test_an_api_that_cannot_be_reached_is_a_kubernetes_error_on_every_read(tmp_path):
    """Found by `make demo` after a destroy: the add-ons probe met a TLS failure at a stale VIP and ccp died with an
    internal error. Every read the phases use goes through one error path: exit family 6, saying what to check."""
    import socket

    import pytest
    import yaml

    from ccp.errors import KubernetesError
    from ccp.remote.kube import ObjectRef
    from ccp.remote.kube_objects import LightkubeObjects

    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kc = tmp_path / "kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    kube = LightkubeObjects(kc)
    reads = [lambda: kube.get_data("ns", "cm"), lambda: kube.get_secret("ns", "s"),
             lambda: kube.workload(ObjectRef("apps/v1", "Deployment", "ns", "d")),
             lambda: kube.delete(ObjectRef("v1", "ConfigMap", "ns", "cm")), kube.nodes]
    for read in reads:
        with pytest.raises(KubernetesError) as info:
            read()
        assert "cannot reach the Kubernetes API" in info.value.message and info.value.code == 6
