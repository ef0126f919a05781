"""The add-on framework: discovery and order, enablement from cluster.yaml, rendering checked
against each supported Kubernetes version's schema, labels, secrets made only at apply time, images
and the registry mirror; applying, pruning, waiting and deleting against a fake objects port."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml

from ccp import addons
from ccp.addons import apply as addons_apply
from ccp.config import versions
from ccp.config.load import load
from ccp.errors import AddonError
from ccp.remote.kube import ObjectRef, WorkloadState
from tests.conftest import PASSWORD, ROOT, example_data, run_ccp, write_config
from tests.k8s_schema import errors

GOLDEN = ROOT / "tests" / "golden" / "addons"


def cfg_for(tmp_path, **edits):
    data = example_data()
    for path, value in edits.items():
        node = data["spec"]
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return load(write_config(tmp_path / "c.yaml", data)).config


def test_discovery_and_dependency_order():
    found = addons.discover()
    assert {"vsphere-cpi", "vsphere-csi", "local-path", "ingress"} <= set(found)
    names = [a.name for a in addons.order(found)]
    assert names.index("vsphere-cpi") < names.index("vsphere-csi")
    with pytest.raises(Exception) as info:
        addons.order(found, ["nope"])
    assert "unknown add-on nope" in str(info.value)


def test_enablement_follows_cluster_yaml(tmp_path):
    vs = {a.name for a in addons.enabled_addons(cfg_for(tmp_path))}
    assert vs == {"vsphere-cpi", "vsphere-csi", "ingress", "monitoring", "logging"}
    lp = {a.name for a in addons.enabled_addons(cfg_for(tmp_path, **{"addons.storage.provider": "local-path",
                                                                     "addons.ingress.enabled": False,
                                                                     "addons.monitoring.enabled": False,
                                                                     "addons.logging.enabled": False}))}
    assert lp == {"local-path"}


def test_generated_secrets_are_made_once_and_kept(tmp_path):
    cfg = cfg_for(tmp_path)
    bom = versions.bom_for(cfg.spec.kubernetes.version)
    mon = addons.discover()["monitoring"]
    first = addons.render(mon, cfg, bom, with_secrets=True).secret_objects[0]["stringData"]
    assert first["admin-user"] == "admin" and len(first["admin-password"]) >= 24
    again = addons.render(mon, cfg, bom, with_secrets=True).secret_objects[0]["stringData"]
    assert again["admin-password"] != first["admin-password"], "a new cluster gets a new password"
    kept = addons.render(mon, cfg, bom, with_secrets=True,
                         existing=lambda ns, name: first if (ns, name) == ("monitoring", "grafana-admin") else None)
    assert kept.secret_objects[0]["stringData"] == first, "an existing password is never rotated by a re-apply"


def test_monitoring_config_follows_cluster_yaml(tmp_path):
    cfg = cfg_for(tmp_path, **{"addons.monitoring.retention": "30d", "addons.monitoring.storage": "80Gi"})
    r = addons.render(addons.discover()["monitoring"], cfg, versions.bom_for(cfg.spec.kubernetes.version))
    sts = next(o for o in r.objects if o["kind"] == "StatefulSet")
    assert "--storage.tsdb.retention.time=30d" in sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "80Gi"
    prom = yaml.safe_load(next(o for o in r.objects if o["metadata"]["name"] == "prometheus-config")["data"]["prometheus.yml"])
    assert {j["job_name"] for j in prom["scrape_configs"]} >= {"apiserver", "kubelet", "cadvisor", "node-exporter",
                                                               "kube-state-metrics", "pods"}
    rules = yaml.safe_load(next(o for o in r.objects if o["metadata"]["name"] == "prometheus-config")["data"]["alerts.yml"])
    names = {x["alert"] for g in rules["groups"] for x in g["rules"]}
    assert {"NodeNotReady", "PersistentVolumeAlmostFull", "TargetDown"} <= names and any("Certificate" in n for n in names)


@pytest.mark.parametrize("minor", versions.supported_minors())
@pytest.mark.parametrize("storage", ["vsphere-csi", "local-path"])
def test_every_manifest_matches_the_kubernetes_schema(tmp_path, minor, storage):
    cfg = cfg_for(tmp_path, **{"kubernetes.version": f"{minor}.0", "addons.storage.provider": storage})
    bom = versions.bom_for(cfg.spec.kubernetes.version)
    problems = []
    for addon in addons.enabled_addons(cfg):
        r = addons.render(addon, cfg, bom, with_secrets=True)
        for obj in [*r.objects, *r.secret_objects, addons_apply.marker(r)]:
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ccp"
            assert obj["metadata"]["labels"]["ccp.io/addon"] == addon.name
            problems += errors(obj, minor)
    assert problems == []


def test_golden_render(tmp_path):
    cfg = cfg_for(tmp_path)
    bom = versions.bom_for(cfg.spec.kubernetes.version)
    texts = {a.name: addons.render(a, cfg, bom).text() for a in addons.enabled_addons(cfg)}
    if os.environ.get("CCP_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        GOLDEN.mkdir(parents=True)
        for name, text in texts.items():
            (GOLDEN / f"{name}.yaml").write_text(text)
    assert {p.stem for p in GOLDEN.glob("*.yaml")} == set(texts)
    for name, text in texts.items():
        assert (GOLDEN / f"{name}.yaml").read_text() == text, f"{name} differs from tests/golden/addons (CCP_UPDATE_GOLDEN=1)"


def test_secrets_exist_only_at_apply_time(tmp_path):
    cfg = cfg_for(tmp_path)
    bom = versions.bom_for(cfg.spec.kubernetes.version)
    csi = addons.discover()["vsphere-csi"]
    assert PASSWORD not in addons.render(csi, cfg, bom).text()
    assert "# + Secret vsphere-csi-config" in addons.render(csi, cfg, bom).text()
    secret = addons.render(csi, cfg, bom, with_secrets=True).secret_objects[0]
    assert secret["kind"] == "Secret" and PASSWORD in secret["stringData"]["csi-vsphere.conf"]
    r = run_ccp("addons", "render", "--config", write_config(tmp_path / "c2.yaml", example_data()))
    assert r.code == 0 and PASSWORD not in r.text and "kind: CSIDriver" in r.out


def test_images_and_registry_mirror(tmp_path):
    cfg = cfg_for(tmp_path, registryMirror="mirror.example.net:5000/ccp")
    bom = versions.bom_for(cfg.spec.kubernetes.version)
    found = addons.all_images(cfg, bom)
    assert all(i.startswith("mirror.example.net:5000/ccp/") for i in found)
    assert "mirror.example.net:5000/ccp/sig-storage/csi-attacher:v4.10.0" in found
    assert "mirror.example.net:5000/ccp/coredns:v1.14.3" in found        # where kubeadm looks with a custom repository
    ingress = addons.render(addons.discover()["ingress"], cfg, bom)
    deploy = next(o for o in ingress.objects if o["kind"] == "Deployment")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror.example.net:5000/ccp/nginx/nginx-ingress:5.4.3"
    r = run_ccp("images", "--config", write_config(tmp_path / "m.yaml", example_data()), "--output", "json")
    assert "registry.k8s.io/kube-apiserver:v1.37.1" in r.out


class ObjectsPortFake:
    """A fake cluster for the framework's logic: objects in a dict, workload readiness scripted."""

    def __init__(self, ready=lambda ref, n: True):
        self.objects: dict[ObjectRef, dict] = {}
        self.calls: list[str] = []
        self.ready, self.polls = ready, {}

    def apply_objects(self, objs):
        for o in objs:
            self.objects[ObjectRef.of(o)] = o
            self.calls.append(f"apply {ObjectRef.of(o)}")

    def list_labelled(self, api_version, kind, labels):
        return [ref for ref, o in self.objects.items() if ref.kind == kind and ref.api_version == api_version
                and all(o["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())]

    def delete(self, ref):
        self.objects.pop(ref, None)
        self.calls.append(f"delete {ref}")

    def workload(self, ref):
        self.polls[ref] = self.polls.get(ref, 0) + 1
        ok = self.ready(ref, self.polls[ref])
        return WorkloadState(ok, "2/2 ready" if ok else "0/2 ready; Available=False: MinimumReplicasUnavailable")

    def warning_events(self, ref, limit=3):
        return [f"Pod {ref.name}-abc: Failed: Failed to pull image \"x\": not found"]

    def get_data(self, namespace, name):
        o = self.objects.get(ObjectRef("v1", "ConfigMap", namespace, name))
        return o["data"] if o else None


def rendered(tmp_path, name, **edits):
    cfg = cfg_for(tmp_path, **edits)
    return addons.render(addons.discover()[name], cfg, versions.bom_for(cfg.spec.kubernetes.version), with_secrets=True)


def test_apply_then_prune_only_what_is_no_longer_rendered(tmp_path):
    port = ObjectsPortFake()
    first = rendered(tmp_path, "ingress")
    res = addons_apply.apply_one(port, first, wait=True, timeout=60, sleep=lambda s: None)
    assert res.pruned == [] and res.ready == ["Deployment nginx-ingress/nginx-ingress"]
    foreign = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "users-own", "namespace": "nginx-ingress"}}
    port.apply_objects([foreign])
    cm = ObjectRef("v1", "ConfigMap", "nginx-ingress", "nginx-config")
    smaller = rendered(tmp_path, "ingress")
    smaller.objects = [o for o in smaller.objects if ObjectRef.of(o) != cm]
    res = addons_apply.apply_one(port, smaller, wait=False, timeout=60)
    assert res.pruned == ["ConfigMap nginx-ingress/nginx-config"]
    assert ObjectRef.of(foreign) in port.objects, "objects ccp did not label are never pruned"
    assert port.get_data("nginx-ingress", "ccp-addon-ingress")["digest"] == smaller.digest


def test_timeout_names_the_stuck_object_its_state_and_events(tmp_path):
    port = ObjectsPortFake(ready=lambda ref, n: False)
    now = [0.0]
    with pytest.raises(AddonError) as info:
        addons_apply.apply_one(port, rendered(tmp_path, "ingress"), wait=True, timeout=30,
                               clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    err = info.value
    assert "add-on ingress is not ready after 30s: Deployment nginx-ingress/nginx-ingress" in err.message
    assert err.details[0] == "Deployment nginx-ingress/nginx-ingress: 0/2 ready; Available=False: MinimumReplicasUnavailable"
    assert "Failed to pull image" in err.details[1]
    assert err.code == 7


def test_waits_until_ready(tmp_path):
    port = ObjectsPortFake(ready=lambda ref, n: n >= 3)
    now = [0.0]
    addons_apply.apply_one(port, rendered(tmp_path, "ingress"), wait=True, timeout=60,
                           clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert now[0] == 4   # two polls of 2 s before the third finds it ready


def test_status_and_delete(tmp_path):
    port = ObjectsPortFake()
    r = rendered(tmp_path, "ingress")
    addons_apply.apply_one(port, r, wait=False, timeout=1)
    every = addons.order(addons.discover())
    rows = {x["addon"]: x for x in addons_apply.status(port, every, {"ingress"}, {"ingress": r.digest})}
    assert rows["ingress"]["state"] == "healthy" and rows["ingress"]["upToDate"] is True
    assert rows["local-path"]["state"] == "not installed"
    gone = addons_apply.delete(port, addons.discover()["ingress"])
    assert gone[-1] == "Namespace nginx-ingress", "namespaces go last"
    assert not [ref for ref, o in port.objects.items() if o["metadata"].get("labels", {}).get("ccp.io/addon") == "ingress"]


def test_logging_tls_passwords_retention_and_guard(tmp_path):
    from cryptography import x509

    cfg = cfg_for(tmp_path, **{"addons.logging.retention": "2w", "addons.logging.replicas": 3})
    bom = versions.bom_for(cfg.spec.kubernetes.version)
    log = addons.discover()["logging"]
    r = addons.render(log, cfg, bom, with_secrets=True)
    creds, certs = r.secret_objects
    assert set(creds["stringData"]) == {"elastic-password", "kibana-password", "logstash-password", "kibana-encryption-key"}
    ca = x509.load_pem_x509_certificate(certs["stringData"]["ca.crt"].encode())
    leaf = x509.load_pem_x509_certificate(certs["stringData"]["tls.crt"].encode())
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "elasticsearch.logging.svc" in sans and "*.elasticsearch-headless.logging.svc" in sans
    assert not any(v in r.text() for v in (*creds["stringData"].values(), certs["stringData"]["tls.key"]))

    sts = next(o for o in r.objects if o["kind"] == "StatefulSet")
    env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["cluster.initial_master_nodes"] == "elasticsearch-0,elasticsearch-1,elasticsearch-2"
    assert env["ES_JAVA_OPTS"] == "-Xms2048m -Xmx2048m"     # half the container's memory
    guard = sts["spec"]["template"]["spec"]["initContainers"][0]
    assert "262144" in guard["command"][2] and "sysctl -w vm.max_map_count=262144" in guard["command"][2]
    setup = next(o for o in r.objects if o["kind"] == "Job" and o["metadata"]["name"].startswith("elasticsearch-setup-"))
    assert '"min_age":"14d"' in setup["spec"]["template"]["spec"]["containers"][0]["command"][2]

    kept = addons.render(log, cfg, bom, with_secrets=True,
                         existing=lambda ns, name: {"elastic-credentials": creds["stringData"],
                                                    "elasticsearch-certs": certs["stringData"]}.get(name))
    assert kept.secret_objects == [creds, certs], "passwords and certificates survive a re-apply"
    single = addons.render(log, cfg_for(tmp_path, **{"addons.logging.replicas": 1}), bom)
    env1 = {e["name"]: e.get("value") for e in next(o for o in single.objects if o["kind"] == "StatefulSet")
            ["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env1["discovery.type"] == "single-node"


def test_changed_retention_renames_the_setup_job(tmp_path):
    bom_cfg = cfg_for(tmp_path)
    bom = versions.bom_for(bom_cfg.spec.kubernetes.version)
    log = addons.discover()["logging"]
    job = lambda cfg: next(o["metadata"]["name"] for o in addons.render(log, cfg, bom).objects  # noqa: E731
                           if o["metadata"]["name"].startswith("elasticsearch-setup-"))
    assert job(bom_cfg) != job(cfg_for(tmp_path, **{"addons.logging.retention": "30d"}))


def test_local_path_helper_pods_run_as_the_provisioners_own_account(tmp_path):
    """Found on real nodes: the provisioner names its helper pods' ServiceAccount itself, and its default
    (local-path-provisioner-service-account) does not exist, so every volume failed to provision."""
    cfg = cfg_for(tmp_path, **{"addons.storage.provider": "local-path"})
    (addon,) = [a for a in addons.enabled_addons(cfg) if a.name == "local-path"]
    objs = addons.render(addon, cfg, versions.bom_for(cfg.spec.kubernetes.version)).objects
    accounts = {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"}
    (deploy,) = [o for o in objs if o["kind"] == "Deployment"]
    pod = deploy["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert pod["serviceAccountName"] in accounts
    assert env["SERVICE_ACCOUNT_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.serviceAccountName"
