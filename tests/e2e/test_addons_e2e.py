"""Opt-in (CCP_E2E_KUBECONFIG): every add-on applied to a real cluster without waiting (images may
not be pullable there), re-applied without changes, one object dropped from the render and pruned,
and nothing labelled by ccp left after delete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
KUBECONFIG = os.environ.get("CCP_E2E_KUBECONFIG")
if not KUBECONFIG:
    pytest.skip("CCP_E2E_KUBECONFIG is not set: no real cluster to test against", allow_module_level=True)


def test_addon_lifecycle_on_a_real_cluster(tmp_path):
    from ccp import addons, addons_apply
    from ccp.config import versions
    from ccp.config.load import load
    from ccp.remote.kube import ObjectRef
    from ccp.remote.kube_objects import LightkubeObjects
    from tests.conftest import example_data, write_config

    data = example_data()
    data["spec"]["addons"]["storage"]["provider"] = "local-path"   # no vCenter behind an arbitrary cluster
    cfg = load(write_config(tmp_path / "c.yaml", data)).config
    bom = versions.bom_for(cfg.spec.kubernetes.version)
    port = LightkubeObjects(Path(KUBECONFIG))
    chosen = addons.enabled_addons(cfg)
    try:
        for a in chosen:
            addons_apply.apply_one(port, addons.render(a, cfg, bom, with_secrets=True), wait=False, timeout=1)
        for a in chosen:
            res = addons_apply.apply_one(port, addons.render(a, cfg, bom, with_secrets=True), wait=False, timeout=1)
            assert res.pruned == []
        ingress = addons.render(addons.discover()["ingress"], cfg, bom, with_secrets=True)
        cm = ObjectRef("v1", "ConfigMap", "nginx-ingress", "nginx-config")
        ingress.objects = [o for o in ingress.objects if ObjectRef.of(o) != cm]
        res = addons_apply.apply_one(port, ingress, wait=False, timeout=1)
        assert res.pruned == [str(cm)]
    finally:
        for a in reversed(chosen):
            addons_apply.delete(port, a)
    labels = {"app.kubernetes.io/managed-by": "ccp"}
    left = [ref for api, kind in addons_apply.PRUNABLE if kind != "Namespace" for ref in port.list_labelled(api, kind, labels)
            if not (ref.namespace or "").startswith("kube-")]
    assert left == []
