"""Changing the API servers' encryption configuration safely (ccp.cluster.encryption), the state directory's
keyring (ccp.cluster.keyring), and the edits of kube-apiserver's manifest and kubeadm's ClusterConfiguration
(ccp.cluster.apiserver).

The stages are checked by simulation, for hand-picked changes and for random ones: N API servers over one store,
moved one at a time through each stage, every server writing an object of every resource after each move (as
controllers do); at every moment every stored object must be readable through every server, and at the end each
is stored as the target says."""

from __future__ import annotations

import base64

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ccp.cluster import apiserver, encryption, keyring
from ccp.cluster.encryption import IDENTITY, readers, rotation, transition, writer

SB1, SB2, AC1 = "secretbox:ccp-1", "secretbox:ccp-2", "aescbc:ccp-1"
KEYS = {"ccp-1": base64.b64encode(b"1" * 32).decode(), "ccp-2": base64.b64encode(b"2" * 32).decode()}


def simulate(start: dict, tr: encryption.Transition, target: dict, servers: int = 3) -> list[str]:
    """Roll ``tr`` over ``servers`` API servers; -> the problems found (empty: safe and complete)."""
    shapes = [dict(start) for _ in range(servers)]
    resources = sorted({r for s in [start, target, *[sh for _, sh in tr.stages]] for r in s} | {"secrets"})
    store: dict[str, str] = {}
    problems = []
    n = 0

    def writes(when):
        nonlocal n
        for i, shape in enumerate(shapes):
            for r in resources:
                n += 1
                store[f"{r}/{n}"] = writer(shape, r)
        for i, shape in enumerate(shapes):
            for obj, how in store.items():
                if how not in readers(shape, obj.split("/")[0]):
                    problems.append(f"{when}: server {i} cannot read {obj} stored with {how}")

    def rewrite():
        for obj in store:
            store[obj] = writer(shapes[0], obj.split("/")[0])

    writes("before")
    rewritten = False
    for name, shape in tr.stages:
        if name == "final" and tr.rewrite:
            rewrite()
            rewritten = True
        for i in range(servers):
            shapes[i] = dict(shape)
            writes(f"{name}, server {i} moved")
    if tr.rewrite and not rewritten:
        rewrite()
    writes("after")
    for obj, how in store.items():
        if how != writer(target, obj.split("/")[0]):
            problems.append(f"{obj} ends stored with {how}, not {writer(target, obj.split('/')[0])}")
    if not all(encryption.same(s, target) for s in shapes):
        problems.append(f"the servers end with {shapes[0]}, not {target}")
    return problems


CASES = {
    "rotation": ({"secrets": (SB1, IDENTITY)}, {"secrets": (SB2, IDENTITY)}),
    "encryption on": ({}, {"secrets": (SB1, IDENTITY)}),
    "encryption off": ({"secrets": (SB1, IDENTITY)}, {}),
    "configmaps added": ({"secrets": (SB1, IDENTITY)}, {"secrets": (SB1, IDENTITY), "configmaps": (SB1, IDENTITY)}),
    "configmaps dropped": ({"secrets": (SB1, IDENTITY), "configmaps": (SB1, IDENTITY)}, {"secrets": (SB1, IDENTITY)}),
    "aescbc": ({"secrets": (SB1, IDENTITY)}, {"secrets": (AC1, IDENTITY)}),
    "restored key dropped": ({"secrets": (SB2, SB1, IDENTITY)}, {"secrets": (SB2, IDENTITY)}),
    "nothing": ({"secrets": (SB1, IDENTITY)}, {"secrets": (SB1, IDENTITY)}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_change_keeps_every_object_readable_and_ends_as_asked(case):
    start, target = CASES[case]
    tr = transition([start], target)
    assert simulate(start, tr, target) == []
    if case == "nothing":
        assert tr.stages == [] and tr.rewrite == []


def test_the_rotation_is_the_one_kubernetes_documents():
    tr = rotation({"secrets": (SB1, IDENTITY)}, "ccp-2")
    assert tr.stages == [("readers", {"secrets": (SB1, SB2, IDENTITY)}),     # the new key second
                         ("writers", {"secrets": (SB2, SB1, IDENTITY)}),     # then first
                         ("final", {"secrets": (SB2, IDENTITY)})]            # the old one gone (after the rewrite)
    assert tr.rewrite == ["secrets"] and tr.dropped == [SB1]
    assert simulate({"secrets": (SB1, IDENTITY)}, tr, {"secrets": (SB2, IDENTITY)}) == []


def test_turning_encryption_on_reads_before_it_writes():
    tr = transition([{}], {"secrets": (SB1, IDENTITY)})
    assert [n for n, _ in tr.stages] == ["readers", "writers"] and tr.stages[0][1] == {"secrets": (IDENTITY, SB1)}
    assert tr.rewrite == ["secrets"] and tr.dropped == []


def test_control_planes_left_different_are_all_made_to_read_everything_first():
    current = [{"secrets": (SB1, SB2, IDENTITY)}, {"secrets": (SB1, IDENTITY)}]
    tr = transition(current, {"secrets": (SB2, IDENTITY)})
    assert tr.stages[0] == ("readers", {"secrets": (SB1, SB2, IDENTITY)})


PROVIDERS = st.sampled_from([SB1, SB2, AC1])
SHAPES = st.dictionaries(st.sampled_from(["secrets", "configmaps", "deployments.apps"]),
                         st.tuples(PROVIDERS, st.booleans()).map(lambda t: (t[0], IDENTITY) if t[1] else (t[0],)),
                         max_size=3)


@settings(max_examples=300, deadline=None)
@given(start=SHAPES, target=SHAPES, servers=st.integers(1, 4))
def test_any_change_is_safe_and_complete(start, target, servers):
    tr = transition([start], target)
    assert simulate(start, tr, target, servers) == []


@settings(max_examples=100, deadline=None)
@given(start=SHAPES.filter(lambda s: any(ps[0] != IDENTITY for ps in s.values())))
def test_any_rotation_is_safe_and_leaves_only_the_new_key(start):
    tr = rotation(start, "ccp-9")
    end = tr.stages[-1][1]
    assert simulate(start, tr, end) == []
    assert {p.split(":")[1] for ps in end.values() for p in ps if p != IDENTITY} == {"ccp-9"}


def test_render_and_parse_agree_and_mask_the_keys():
    from ccp import redact

    for shape in [{"secrets": (SB2, SB1, IDENTITY)}, {"secrets": (IDENTITY, SB1), "configmaps": (SB1, IDENTITY)},
                  {"secrets": (AC1, SB1, IDENTITY)}]:
        text = encryption.render(shape, KEYS)
        got = encryption.parse(text)
        assert got.shape == shape and got.keys == {n: KEYS[n] for n in encryption.key_names(shape)}
        doc = yaml.safe_load(text)
        assert doc["kind"] == "EncryptionConfiguration" and doc["apiVersion"] == "apiserver.config.k8s.io/v1"
    assert redact.scrub(KEYS["ccp-1"]) == redact.MASK
    assert encryption.parse(None).shape == {} and encryption.parse("kind: Other\n") is None
    kms = "kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{kms: {name: x}}]}]\n"
    assert encryption.parse(kms) is None, "not a provider ccp manages"


def test_the_rendered_configuration_filled_with_one_named_key_is_what_install_uploaded():
    from ccp import render_security

    text = "keys:\n            - name: ccp-1\n              secret: \"${CCP_ENCRYPTION_KEY}\"\n      - identity: {}\n"
    assert render_security.fill_keys(text, [("ccp-1", KEYS["ccp-1"])]) == render_security.fill_key(text, KEYS["ccp-1"])
    two = render_security.fill_keys(text, [("ccp-2", KEYS["ccp-2"]), ("ccp-1", KEYS["ccp-1"])])
    assert two.index("ccp-2") < two.index("ccp-1") and "${" not in two


# ------------------------------------------------------------------ the keyring

def test_keyring_of_an_older_state_directory_and_its_changes(tmp_path):
    state = tmp_path / "state"
    (state / "secrets").mkdir(parents=True, mode=0o700)
    (state / "secrets" / "encryption-key").write_text(KEYS["ccp-1"] + "\n")
    assert keyring.keys(state) == {"ccp-1": KEYS["ccp-1"]} and keyring.primary(state) == ("ccp-1", KEYS["ccp-1"])
    assert not (state / "secrets" / "encryption-keys").exists(), "reading writes nothing"

    keyring.store(state, "ccp-2", KEYS["ccp-2"])
    ring = state / "secrets" / "encryption-keys"
    assert sorted(p.name for p in ring.iterdir()) == ["ccp-1", "ccp-2"], "the old key got its own file first"
    assert {p.stat().st_mode & 0o777 for p in ring.iterdir()} == {0o600} and ring.stat().st_mode & 0o777 == 0o700
    assert keyring.primary(state)[0] == "ccp-1"
    keyring.make_primary(state, "ccp-2")
    assert keyring.primary(state) == ("ccp-2", KEYS["ccp-2"]) and set(keyring.keys(state)) == {"ccp-1", "ccp-2"}
    with pytest.raises(Exception, match="the cluster encrypts with it"):
        keyring.forget(state, ["ccp-2"])
    assert keyring.forget(state, ["ccp-1"]) == ["ccp-1"]
    assert keyring.keys(state) == {"ccp-2": KEYS["ccp-2"]}
    assert keyring.next_name(["ccp-2", "ccp-10", "other"]) == "ccp-11" and keyring.next_name([]) == "ccp-1"


def test_a_fresh_clusters_key_is_encryption_key_alone_and_two_keys_of_one_name_are_refused(tmp_path):
    from ccp.errors import ConfigError

    state = tmp_path / "state"
    keyring.store(state, "ccp-1", KEYS["ccp-1"])
    assert [p.name for p in (state / "secrets").iterdir()] == ["encryption-key"]
    with pytest.raises(ConfigError, match="another key named ccp-1"):
        keyring.store(state, "ccp-1", KEYS["ccp-2"])


# ------------------------------------------------------------------ kube-apiserver's manifest and kubeadm-config

MANIFEST = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-apiserver"},
            "spec": {"containers": [{"name": "kube-apiserver", "command": ["kube-apiserver", "--advertise-address=10.0.0.1",
                                                                           "--audit-log-maxsize=5", "--profiling=false"],
                                     "volumeMounts": [{"mountPath": "/etc/kubernetes/pki", "name": "k8s-certs", "readOnly": True}]}],
                     "volumes": [{"hostPath": {"path": "/etc/kubernetes/pki", "type": "DirectoryOrCreate"}, "name": "k8s-certs"}]}}


def _security(tmp_path, **sections):
    from ccp.config.load import load
    from tests.conftest import example_data, write_config

    data = example_data()
    data["spec"]["security"] = sections
    tmp_path.mkdir(parents=True, exist_ok=True)
    return load(write_config(tmp_path / "c.yaml", data)).config.spec.security


def test_the_manifest_edit_touches_only_spec_securitys_flags_and_volumes(tmp_path):
    sec = _security(tmp_path, audit={"maxSizeMB": 200})
    want = apiserver.wanted(sec, encrypt=True)
    text = apiserver.edit_manifest(yaml.safe_dump(MANIFEST), want)
    pod = yaml.safe_load(text)
    command = pod["spec"]["containers"][0]["command"]
    assert command[0] == "kube-apiserver" and command[1:] == sorted(command[1:], key=lambda a: a.split("=")[0])
    assert "--profiling=false" in command and "--advertise-address=10.0.0.1" in command
    assert "--audit-log-maxsize=200" in command and "--audit-log-maxsize=5" not in command
    assert apiserver.managed(text) == apiserver.expected(want)
    assert apiserver.edit_manifest(text, want) == text, "a second edit changes nothing"
    off = apiserver.edit_manifest(text, apiserver.wanted(_security(tmp_path / "x", **{n: {"enabled": False} for n in
                                                                                       ("encryption", "audit", "podSecurity")}), False))
    assert yaml.safe_load(off) == yaml.safe_load(yaml.safe_dump({**MANIFEST, "spec": {**MANIFEST["spec"], "containers": [
        {**MANIFEST["spec"]["containers"][0], "command": ["kube-apiserver", "--advertise-address=10.0.0.1", "--profiling=false"]}]}}))
    # the encryption flag follows ``encrypt``, not cluster.yaml: turning encryption off keeps it until nothing is encrypted
    assert "encryption-provider-config" in apiserver.managed(apiserver.edit_manifest(text, apiserver.wanted(
        _security(tmp_path / "y", encryption={"enabled": False}), True)))[0]


@pytest.mark.parametrize("version", ["v1beta4", "v1beta3"])
def test_the_cluster_configuration_edit_keeps_everything_else(tmp_path, version):
    sec = _security(tmp_path)
    extra = ([{"name": "profiling", "value": "false"}, {"name": "audit-log-maxsize", "value": "5"}] if version == "v1beta4"
             else {"profiling": "false", "audit-log-maxsize": "5"})
    doc = {"apiVersion": f"kubeadm.k8s.io/{version}", "kind": "ClusterConfiguration", "clusterName": "demo",
           "apiServer": {"certSANs": ["10.0.0.10"], "extraArgs": extra}}
    want = apiserver.wanted(sec, True)
    text = apiserver.edit_cluster_configuration(yaml.safe_dump(doc), want)
    out = yaml.safe_load(text)
    assert out["clusterName"] == "demo" and out["apiServer"]["certSANs"] == ["10.0.0.10"]
    assert apiserver.cluster_configuration_managed(text) == apiserver.expected(want)
    args = out["apiServer"]["extraArgs"]
    pairs = args.items() if isinstance(args, dict) else [(a["name"], a["value"]) for a in args]
    assert ("profiling", "false") in pairs and ("audit-log-maxsize", "100") in pairs


def test_the_rewrite_and_count_scripts_say_what_they_did():
    from ccp.cluster import reencrypt

    script = reencrypt.rewrite_script(["secrets", "deployments.apps"])
    assert "get \"$1\" --all-namespaces -o json" in script and script.rstrip().endswith("one deployments.apps")
    assert reencrypt.parse_counts("noise\nccp-rewrite secrets 12 1 0\nccp-rewrite deployments.apps 0 0 0\n") == {
        "secrets": (12, 1, 0), "deployments.apps": (0, 0, 0)}
    assert reencrypt.prefixes([SB1, AC1]) == ["k8s:enc:secretbox:v1:ccp-1:", "k8s:enc:aescbc:v1:ccp-1:"]
    assert "-e k8s:enc:secretbox:v1:ccp-1:" in reencrypt.count_script([SB1], etcdctl="etcdctl")
