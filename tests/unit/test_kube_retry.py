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
