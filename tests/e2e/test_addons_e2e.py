"""The add-on lifecycle on a real cluster (tests/e2e/conftest.py), through the command line:
`ccp addons apply` (twice: the second changes nothing), `status`, a prune, and `delete` leaving
nothing labelled by ccp. The add-ons' upstream images cannot be pulled on the lab, so apply does not
wait for readiness there (--no-wait); everything the API server accepts or refuses is real."""

from __future__ import annotations

import json

import pytest

from tests.conftest import example_data, run_ccp, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def addon_config(tmp_path):
    data = example_data()
    data["spec"]["addons"]["storage"]["provider"] = "local-path"   # no vCenter behind an arbitrary cluster
    return write_config(tmp_path / "c.yaml", data)


def _labelled(kubeconfig):
    from ccp.addons import apply as addons_apply
    from ccp.remote.kube_objects import LightkubeObjects

    port = LightkubeObjects(kubeconfig)
    labels = {"app.kubernetes.io/managed-by": "ccp"}
    return port, sorted(str(ref) for api, kind in addons_apply.PRUNABLE
                        for ref in port.list_labelled(api, kind, labels) if not (ref.namespace or "").startswith("kube-"))


STABLE = {"ConfigMap", "Deployment", "DaemonSet", "StatefulSet", "ClusterRole", "ClusterRoleBinding", "Role",
          "RoleBinding", "StorageClass", "NetworkPolicy", "PodDisruptionBudget"}   # no controller writes these


def _versions(port, kubeconfig) -> dict[str, str]:
    """generation (spec changes) where the kind has one, else resourceVersion, of ccp's stable objects."""
    from ccp.addons import apply as addons_apply
    from ccp.remote.kube_objects import _resource

    out = {}
    for api, kind in addons_apply.PRUNABLE:
        if kind not in STABLE:
            continue
        for ref in port.list_labelled(api, kind, {"app.kubernetes.io/managed-by": "ccp"}):
            res = _resource(api, kind)
            obj = port.client.get(res, ref.name, namespace=ref.namespace) if ref.namespace else port.client.get(res, ref.name)
            out[str(ref)] = str(obj.metadata.generation or obj.metadata.resourceVersion)
    return out


def test_addon_lifecycle_through_the_cli(real_cluster, addon_config):
    from ccp.remote.kube import ObjectRef

    k = real_cluster.kubeconfig
    try:
        r = run_ccp("addons", "apply", "--config", addon_config, "--kubeconfig", k, "--no-wait")
        assert r.code == 0, r.text
        assert "at https://" in r.err               # the cluster it talks to is named first
        port, first = _labelled(k)
        assert len(first) > 40
        versions = _versions(port, k)
        assert len(versions) > 20
        r = run_ccp("addons", "apply", "--config", addon_config, "--kubeconfig", k, "--no-wait")
        assert r.code == 0 and ", 0 pruned" in r.out, r.text
        _, second = _labelled(k)
        assert second == first, "a re-apply creates and removes nothing"
        assert _versions(port, k) == versions, "a re-apply changes nothing"

        r = run_ccp("addons", "status", "--config", addon_config, "--kubeconfig", k, "--output", "json")
        assert r.code == 0, r.text
        rows = {row["addon"]: row for row in json.loads(r.out)}
        assert {"local-path", "ingress", "monitoring", "logging"} <= set(rows)
        assert all(rows[a]["state"] in ("healthy", "unhealthy") for a in ("local-path", "ingress", "monitoring", "logging"))

        # an object the add-on no longer renders is pruned: only ccp's, only that one
        from ccp import addons
        from ccp.addons import apply as addons_apply
        from ccp.config import versions as bom
        from ccp.config.load import load

        cfg = load(addon_config).config
        ingress = addons.render(addons.discover()["ingress"], cfg, bom.bom_for(cfg.spec.kubernetes.version), with_secrets=True)
        cm = ObjectRef("v1", "ConfigMap", "nginx-ingress", "nginx-config")
        ingress.objects = [o for o in ingress.objects if ObjectRef.of(o) != cm]
        assert addons_apply.apply_one(port, ingress, wait=False, timeout=1).pruned == [str(cm)]
    finally:
        r = run_ccp("addons", "delete", "--config", addon_config, "--kubeconfig", k, "--yes")
    assert r.code == 0, r.text
    import time

    deadline = time.monotonic() + 120      # deletion is asynchronous: Jobs, pods and namespaces finalise
    while (left := _labelled(k)[1]) and time.monotonic() < deadline:
        time.sleep(2)
    assert left == [], "nothing labelled by ccp is left"
