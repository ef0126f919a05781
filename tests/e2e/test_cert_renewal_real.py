"""The certificate renewal script ccp renders for a control plane, run by bash over the real kubeadm (the shared
build, v1.35.0-alpha.0) and the PKI, kubeconfigs and static pod manifests the real kubeadm made from ccp's
rendered init.yaml in a scratch root (kubeadm --rootfs): at the default threshold it renews nothing; forced with
a threshold above the certificates' lifetime (as the real-node suite does) it renews them all — every expiry
date moves on, the CA stays — restarts the static pods (manifests back in place) and logs names and dates,
never a byte of a key. curl (the API checks) and sleep are stand-ins; no node, no running cluster."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest

from tests.conftest import example_data
from tests.e2e.test_kubeadm_real import _filled, _run_phases, kubeadm   # noqa: F401  (kubeadm: the fixture)
from tests.ssh.test_cert_renewal import rendered_script, run, sandbox

pytestmark = pytest.mark.e2e


def _expiries(root: Path) -> dict[str, datetime.datetime]:
    """notAfter of every certificate file and kubeconfig client certificate under the scratch root."""
    import base64

    import yaml
    from cryptography import x509

    k8s = root / "etc" / "kubernetes"
    out = {str(p.relative_to(k8s)): x509.load_pem_x509_certificate(p.read_bytes()).not_valid_after_utc
           for p in (k8s / "pki").rglob("*.crt")}
    for conf in ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"):
        user = yaml.safe_load((k8s / conf).read_text())["users"][0]["user"]
        out[conf] = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"])).not_valid_after_utc
    return out


def test_the_rendered_script_renews_with_the_real_kubeadm_only_when_forced(kubeadm, tmp_path):   # noqa: F811
    from ccp import render
    from ccp.config.load import load
    from tests.conftest import write_config

    data = example_data()
    out = render.render_all(load(write_config(tmp_path / "c.yaml", data)))
    root = tmp_path / "root"
    _run_phases(kubeadm, _filled(out.files["kubeadm/demo-cp-1/init.yaml"]), root)
    stubs = tmp_path / "bin"
    path, env = sandbox(rendered_script(tmp_path, "demo-cp-1", data), root, stubs)
    (stubs / "kubeadm").write_text(f'#!/bin/sh\nexec {kubeadm} --rootfs {root} "$@"\n')
    (stubs / "kubeadm").chmod(0o755)
    keys = {p: p.read_text() for p in (root / "etc" / "kubernetes" / "pki").rglob("*.key")}
    before = _expiries(root)

    r = run(path, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing to renew" in r.stdout and "renewing below 30" in r.stdout
    assert _expiries(root) == before

    time.sleep(1.1)   # certificates carry whole seconds: a renewal must show in the dates
    r = run(path, env, CCP_RENEW_BEFORE_DAYS="1000")
    assert r.returncode == 0, r.stdout + r.stderr
    after = _expiries(root)
    cas = {"pki/ca.crt", "pki/etcd/ca.crt", "pki/front-proxy-ca.crt"}
    renewed = {name for name in before if after[name] > before[name]}
    assert renewed == set(before) - cas, f"not renewed: {sorted(set(before) - cas - renewed)}"
    assert all(after[ca] == before[ca] for ca in cas)
    assert "below 1000" in r.stdout and "kubeadm renewed 11 certificates" in r.stdout, r.stdout
    assert r.stdout.splitlines()[-1].startswith("ccp-cert-renew: renewed; the API answers through 10.10.0.10:6443")
    manifests = root / "etc" / "kubernetes" / "manifests"
    assert sorted(p.stem for p in manifests.glob("*.yaml")) == ["etcd", "kube-apiserver", "kube-controller-manager",
                                                                 "kube-scheduler"]
    assert not (manifests.parent / "ccp-parked-manifests").exists()
    logged = r.stdout + r.stderr
    assert "PRIVATE KEY" not in logged
    for text in keys.values():
        for line in text.splitlines()[1:-1]:
            assert line not in logged
