"""ccp.remote.kubelet_serving's rules for approving a kubelet's serving certificate request, over requests
made as a kubelet makes them (real PEM certificate requests): its own name and cluster.yaml address only."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from ccp.remote import kubelet_serving as ks

NODES = {"k-cp-1": "10.9.0.11", "k-worker-1": "10.9.0.21"}


def request(node="k-cp-1", *, cn=None, org="system:nodes", dns=None, ips=None, user=None, groups=("system:nodes",),
            usages=("digital signature", "server auth"), signer=ks.SIGNER, conditions=(), no_names=False) -> dict:
    """A CertificateSigningRequest as the API returns it, its request made like the kubelet's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
               x509.NameAttribute(NameOID.COMMON_NAME, cn or f"system:node:{node}")]
    sans = [x509.DNSName(d) for d in (dns if dns is not None else [node])] + \
        [x509.IPAddress(ipaddress.ip_address(i)) for i in (ips if ips is not None else [NODES.get(node, "10.9.0.99")])]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
    if not no_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    pem = builder.sign(key, hashes.SHA256())
    return {"metadata": {"name": f"csr-{node}"},
            "spec": {"signerName": signer, "username": user or f"system:node:{node}", "groups": list(groups),
                     "usages": list(usages), "request": base64.b64encode(pem.public_bytes(serialization.Encoding.PEM)).decode()},
            "status": {"conditions": list(conditions)}}


def test_a_kubelets_own_request_is_approved():
    assert ks.refusal(request(), NODES) is None
    assert ks.refusal(request("k-worker-1", usages=("digital signature", "key encipherment", "server auth")), NODES) is None


@pytest.mark.parametrize("req, why", [
    (dict(ips=["10.9.0.21"]), "10.9.0.21: only k-cp-1 and 10.9.0.11"),                    # another node's address
    (dict(ips=["10.9.0.11", "10.9.0.5"]), "it asks for 10.9.0.5"),                          # the VIP besides its own
    (dict(dns=["k-cp-1", "kubernetes.default"]), "it asks for kubernetes.default"),
    (dict(user="system:node:k-worker-1"), "not CN=system:node:k-worker-1"),                # asks for another's name
    (dict(node="k-cp-9"), "not a node of cluster.yaml"),
    (dict(user="alice"), "asked by alice"),
    (dict(groups=("system:authenticated",)), "not in the group system:nodes"),
    (dict(usages=("digital signature", "server auth", "client auth")), "client auth"),
    (dict(org="system:masters"), "not CN=system:node:k-cp-1,O=system:nodes"),
    (dict(signer="kubernetes.io/kube-apiserver-client"), "its signer is"),
    (dict(no_names=True), "no DNS name or address"),
])
def test_a_request_for_more_than_its_own_name_and_address_is_refused_with_the_reason(req, why):
    node = req.pop("node", "k-cp-1")
    r = request(node, **req)
    reason = ks.refusal(r, NODES)
    assert reason is not None and why in reason, reason


def test_a_request_that_is_no_pem_is_refused():
    r = request()
    r["spec"]["request"] = base64.b64encode(b"not a request").decode()
    assert "not a PEM certificate request" in ks.refusal(r, NODES)


def test_only_undecided_kubelet_serving_requests_are_pending():
    fresh, done = request("k-cp-1"), request("k-worker-1", conditions=[{"type": "Approved", "status": "True"}])
    other = request("k-cp-1", signer="kubernetes.io/kube-apiserver-client-kubelet")
    assert ks.pending([fresh, done, other]) == [fresh]
    assert ks.node_of(fresh) == "k-cp-1" and ks.node_of(request(user="alice")) == ""


KUBECTL_STAND_IN = '''#!{python}
"""kubectl for approve_script: the jsonpath reads it makes, over the requests in {csrs}; approvals logged."""
import json, sys
args = sys.argv[3:]                          # after --kubeconfig FILE
items = {{c["metadata"]["name"]: c for c in json.load(open("{csrs}"))}}
if args[:2] == ["certificate", "approve"]:
    open("{csrs}.approved", "a").write(args[2] + "\\n")
    sys.exit(0)
path = args[-1].split("=", 1)[1]
if len(args) == 4:                           # get csr -o jsonpath=...: the list
    for c in items.values():
        if c["spec"]["signerName"] == "{signer}":
            print(c["metadata"]["name"], " ".join(x["type"] for x in c["status"]["conditions"]))
    sys.exit(0)
spec = items[args[2]]["spec"]
field = path.split(".spec.")[1].split("[")[0].rstrip("}}")
value = spec[field]
print("\\n".join(value) if isinstance(value, list) else value, end="")
'''


def test_the_timers_approval_in_shell_follows_the_same_rules(tmp_path):
    """approve_script for real (sh, openssl, base64) over a kubectl stand-in: the kubelets' own requests are
    approved, one asking for another address is named and left pending, a decided one is not touched."""
    import json
    import subprocess
    import sys

    csrs = tmp_path / "csrs.json"
    good, worker = request("k-cp-1"), request("k-worker-1", usages=("key encipherment", "digital signature", "server auth"))
    worker["metadata"]["name"] = "csr-w"
    evil = request("k-worker-1", ips=["10.9.0.21", "10.9.0.11"])
    evil["metadata"]["name"] = "csr-evil"
    client = request("k-cp-1", usages=("digital signature", "server auth", "client auth"))
    client["metadata"]["name"] = "csr-client"
    stranger = request("k-cp-9")
    done = request("k-cp-1", conditions=[{"type": "Approved", "status": "True"}])
    done["metadata"]["name"] = "csr-done"
    csrs.write_text(json.dumps([good, worker, evil, client, stranger, done]))
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "kubectl").write_text(KUBECTL_STAND_IN.format(python=sys.executable, csrs=csrs, signer=ks.SIGNER))
    (bin_ / "kubectl").chmod(0o755)
    import os

    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}
    r = subprocess.run(["sh", "-c", ks.approve_script(NODES)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "csrs.json.approved").read_text().split() == ["csr-k-cp-1", "csr-w"], r.stdout + r.stderr
    assert "approved request csr-w: the serving certificate of k-worker-1" in r.stdout
    assert "request csr-evil of k-worker-1 not approved: it asks for IPAddress:10.9.0.11" in r.stderr, r.stderr
    assert "request csr-client of k-cp-1 not approved: it asks for the usages" in r.stderr, r.stderr
    assert "request csr-k-cp-9 of system:node:k-cp-9: not a node of cluster.yaml" in r.stderr, r.stderr
    assert "csr-done" not in r.stdout + r.stderr
