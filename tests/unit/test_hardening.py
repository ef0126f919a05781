"""The hardening section's logic over node output the tests write (manifests, kubelet configuration and flags,
file modes, as the node script prints them) and RBAC bindings as the API returns them: a kubeadm-shaped cluster
as ccp sets it up passes every check; each planted weakness is named with what to change, at its severity.
tests/e2e/test_hardening_real.py runs the node script over what the real kubeadm makes from ccp's configuration."""

from __future__ import annotations

import pytest
import yaml

from ccp.config.model_security import Security
from ccp.diagnose import hardening

API = ["kube-apiserver", "--advertise-address=10.0.0.11", "--allow-privileged=true", "--authorization-mode=Node,RBAC",
       "--client-ca-file=/etc/kubernetes/pki/ca.crt", "--enable-admission-plugins=NodeRestriction",
       "--enable-bootstrap-token-auth=true", "--profiling=false", "--secure-port=6443",
       "--encryption-provider-config=/etc/kubernetes/ccp/encryption-config.yaml",
       "--audit-policy-file=/etc/kubernetes/ccp/audit-policy.yaml", "--audit-log-path=/var/log/kubernetes/audit/audit.log"]
CM = ["kube-controller-manager", "--bind-address=127.0.0.1", "--profiling=false", "--use-service-account-credentials=true"]
SCHED = ["kube-scheduler", "--bind-address=127.0.0.1", "--profiling=false"]
ETCD = ["etcd", "--client-cert-auth=true", "--peer-client-cert-auth=true",
        "--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.11:2379", "--listen-peer-urls=https://10.0.0.11:2380",
        "--listen-metrics-urls=http://127.0.0.1:2381"]
KUBELET = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
           "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True}},
           "authorization": {"mode": "Webhook"}, "rotateCertificates": True, "serverTLSBootstrap": True, "cgroupDriver": "systemd"}
KUBEADM_FLAGS = 'KUBELET_KUBEADM_ARGS="--node-ip=10.0.0.11 --pod-infra-container-image=registry.k8s.io/pause:3.10.1"'
KEYS = ["/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/apiserver.key", "/etc/kubernetes/pki/etcd/server.key",
        "/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/ccp/encryption-config.yaml",
        "/var/lib/kubelet/pki/kubelet.key", "/var/lib/kubelet/pki/kubelet-client-2026-12-03-10-00-00.pem"]
KUBEADM_BINDINGS = [
    {"kind": "ClusterRoleBinding", "metadata": {"name": "system:public-info-viewer"},
     "roleRef": {"kind": "ClusterRole", "name": "system:public-info-viewer"},
     "subjects": [{"kind": "Group", "name": "system:authenticated"}, {"kind": "Group", "name": "system:unauthenticated"}]},
    {"kind": "RoleBinding", "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
     "roleRef": {"kind": "Role", "name": "kubeadm:bootstrap-signer-clusterinfo"},
     "subjects": [{"kind": "User", "name": "system:anonymous"}]},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "cluster-admin"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
     "subjects": [{"kind": "Group", "name": "system:masters"}]}]


def pod(command: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": command[0], "namespace": "kube-system"},
            "spec": {"containers": [{"name": command[0], "command": command, "env": [{"name": "X", "value": "y"}]}]}}


def node_output(control_plane=True, api=API, cm=CM, sched=SCHED, etcd=ETCD, kubelet=KUBELET, flags=KUBEADM_FLAGS,
                modes: dict[str, str] | None = None) -> str:
    """What NODE_SCRIPT prints on a node."""
    files = {}
    if control_plane:
        for command in (api, cm, sched, etcd):
            files[f"/etc/kubernetes/manifests/{command[0]}.yaml"] = yaml.safe_dump(pod(command))
    files["/var/lib/kubelet/config.yaml"] = yaml.safe_dump(kubelet)
    files["/var/lib/kubelet/kubeadm-flags.env"] = flags
    keys = [k for k in KEYS if control_plane or not k.startswith(("/etc/kubernetes/pki", "/etc/kubernetes/admin",
                                                                    "/etc/kubernetes/ccp"))]
    listing = {k: "600 root" for k in keys} | (modes or {})
    return "".join(f"==> {p}\n{t}\n" for p, t in files.items()) + "==> modes\n" + \
        "".join(f"{m} {p}\n" for p, m in listing.items())


def run(cp=None, worker=None, security=None, bindings=KUBEADM_BINDINGS, unread=()) -> dict[str, hardening.Finding]:
    views = {"cp-1": hardening.parse(cp or node_output()), "w-1": hardening.parse(worker or node_output(False))}
    found = hardening.findings(views, {"cp-1"}, security or Security(), bindings, list(unread))
    assert all(f.section == "hardening" for f in found)
    by = {f.check: f for f in found}
    assert len(by) == len(found), "one finding per check"
    return by


def test_a_cluster_as_ccp_sets_it_up_passes_every_check():
    by = run()
    assert {c: f.severity for c, f in by.items() if f.severity != "ok"} == {}
    assert set(by) == {"anonymous-auth", "profiling", "insecure-port", "admission-plugins", "authorization-mode", "audit",
                       "encryption", "file-modes", "kubelet-anonymous-auth", "kubelet-read-only-port",
                       "kubelet-authorization", "kubelet-certificate-rotation", "kubelet-serving-certificate",
                       "etcd-client-tls"}
    assert "11 private keys, kubeconfigs and backups on 2 node(s)" in by["file-modes"].what
    assert "2 kubelet(s)" in by["kubelet-read-only-port"].what


def test_the_node_output_parses_flags_config_and_modes():
    view = hardening.parse(node_output())
    assert view.flags["kube-apiserver"]["authorization-mode"] == "Node,RBAC" and view.flags["etcd"]["client-cert-auth"] == "true"
    assert view.kubelet["authorization"]["mode"] == "Webhook" and view.kubelet_flags["node-ip"] == "10.0.0.11"
    assert (0o600, "root", "/etc/kubernetes/pki/ca.key") in view.modes
    broken = hardening.parse("==> /etc/kubernetes/manifests/etcd.yaml\n{not: [yaml\n==> modes\nxyz root /a\n")
    assert broken.flags == {} and broken.modes == []


def test_a_world_readable_key_is_named_with_what_to_do():
    by = run(cp=node_output(modes={"/etc/kubernetes/pki/ccp-planted.key": "644 root",
                                   "/etc/kubernetes/admin.conf": "640 ccp"}))
    f = by["file-modes"]
    assert f.severity == "fail" and "/etc/kubernetes/pki/ccp-planted.key" in f.what and "2 file(s)" in f.what
    assert "cp-1: /etc/kubernetes/pki/ccp-planted.key is 644, owned by root" in f.evidence
    assert "cp-1: /etc/kubernetes/admin.conf is 640, owned by ccp" in f.evidence
    assert f.remediation.startswith("chmod 600 and chown root:root")


def test_a_backup_readable_by_others_is_named():
    by = run(cp=node_output(modes={"/var/lib/ccp/backups/20261203T020000.000Z.db": "644 root"}))
    assert by["file-modes"].severity == "fail" and "/var/lib/ccp/backups/20261203T020000.000Z.db" in by["file-modes"].what


@pytest.mark.parametrize("api, check, severity, words", [
    ([a for a in API if a != "--profiling=false"], "profiling", "warn", "cp-1: kube-apiserver"),
    (API + ["--profiling=true"], "profiling", "warn", "cp-1: kube-apiserver"),
    (API + ["--insecure-port=8080"], "insecure-port", "fail", "cp-1: --insecure-port=8080"),
    (API + ["--insecure-bind-address=0.0.0.0"], "insecure-port", "fail", "--insecure-bind-address=0.0.0.0"),
    ([a for a in API if "admission" not in a], "admission-plugins", "fail", "NodeRestriction is not enabled"),
    (API + ["--disable-admission-plugins=NodeRestriction"], "admission-plugins", "fail", "NodeRestriction is not enabled"),
    (API + ["--enable-admission-plugins=NodeRestriction,AlwaysAdmit"], "admission-plugins", "fail", "AlwaysAdmit is enabled"),
    (API + ["--authorization-mode=AlwaysAllow"], "authorization-mode", "fail", "--authorization-mode=AlwaysAllow"),
    (API + ["--authorization-mode=RBAC"], "authorization-mode", "fail", "--authorization-mode=RBAC"),
    ([a for a in API if "audit" not in a], "audit", "fail", "cp-1: no --audit-log-path"),
    ([a for a in API if "encryption" not in a], "encryption", "fail", "cp-1: no --encryption-provider-config"),
])
def test_each_api_server_weakness(api, check, severity, words):
    f = run(cp=node_output(api=api))[check]
    assert f.severity == severity and any(words in e for e in f.evidence), f
    assert f.remediation and "/etc/kubernetes/manifests" in f.remediation


def test_profiling_of_the_controller_manager_and_scheduler_too():
    f = run(cp=node_output(cm=CM[:1], sched=SCHED[:1]))["profiling"]
    assert f.evidence == ["cp-1: kube-controller-manager", "cp-1: kube-scheduler"]


def test_audit_and_encryption_turned_off_in_the_config_are_warnings_and_missing_ones_failures():
    bare = [a for a in API if "audit" not in a and "encryption" not in a]
    off = Security.model_validate({"audit": {"enabled": False}, "encryption": {"enabled": False}})
    by = run(cp=node_output(api=bare), security=off)
    assert by["audit"].severity == "warn" and "spec.security.audit.enabled: false" in by["audit"].what
    assert by["encryption"].severity == "warn"
    by = run(cp=node_output(api=bare))
    assert by["encryption"].severity == "fail" and "though cluster.yaml asks for it" in by["encryption"].what


def test_anonymous_requests_judged_by_what_rbac_grants_them():
    assert run()["anonymous-auth"].severity == "ok"
    extra = {"kind": "ClusterRoleBinding", "metadata": {"name": "oops"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
             "subjects": [{"kind": "Group", "name": "system:unauthenticated"}]}
    ns = {"kind": "RoleBinding", "metadata": {"name": "anon", "namespace": "default"},
          "roleRef": {"kind": "ClusterRole", "name": "edit"}, "subjects": [{"kind": "User", "name": "system:anonymous"}]}
    f = run(bindings=KUBEADM_BINDINGS + [extra, ns])["anonymous-auth"]
    assert f.severity == "fail" and "2 binding(s)" in f.what
    assert f.evidence == ["ClusterRoleBinding oops: system:unauthenticated -> ClusterRole view",
                          "RoleBinding default/anon: system:anonymous -> ClusterRole edit"]
    assert "delete these bindings" in f.remediation
    assert run(bindings=None)["anonymous-auth"].severity == "warn"     # no kubeconfig: RBAC not read
    assert run(cp=node_output(api=API + ["--anonymous-auth=false"]), bindings=None)["anonymous-auth"].severity == "ok"


@pytest.mark.parametrize("kubelet, flags, check, words", [
    ({**KUBELET, "authentication": {"anonymous": {"enabled": True}}}, KUBEADM_FLAGS, "kubelet-anonymous-auth", "is True"),
    (KUBELET, 'KUBELET_EXTRA_ARGS="--anonymous-auth=true"', "kubelet-anonymous-auth", "--anonymous-auth=true"),
    ({**KUBELET, "readOnlyPort": 10255}, KUBEADM_FLAGS, "kubelet-read-only-port", "read-only port 10255"),
    (KUBELET, "KUBELET_EXTRA_ARGS=--read-only-port=10255", "kubelet-read-only-port", "read-only port 10255"),
    ({**KUBELET, "authorization": {"mode": "AlwaysAllow"}}, KUBEADM_FLAGS, "kubelet-authorization", "AlwaysAllow"),
    ({**KUBELET, "rotateCertificates": False}, KUBEADM_FLAGS, "kubelet-certificate-rotation", "rotateCertificates is False"),
    ({**KUBELET, "serverTLSBootstrap": False}, KUBEADM_FLAGS, "kubelet-serving-certificate", "serverTLSBootstrap is False"),
])
def test_each_kubelet_weakness_on_a_worker(kubelet, flags, check, words):
    f = run(worker=node_output(False, kubelet=kubelet, flags=flags))[check]
    assert f.severity in ("fail", "warn") and f.evidence[0].startswith("w-1: ") and words in f.evidence[0], f
    assert "/var/lib/kubelet/config.yaml" in f.remediation


@pytest.mark.parametrize("etcd, words", [
    ([a for a in ETCD if "--client-cert-auth" not in a], "--client-cert-auth=(unset)"),
    (ETCD + ["--peer-client-cert-auth=false"], "--peer-client-cert-auth=false"),
    (ETCD + ["--listen-client-urls=http://0.0.0.0:2379"], "--listen-client-urls=http://0.0.0.0:2379"),
    (ETCD + ["--auto-tls=true"], "--auto-tls=true"),
])
def test_each_etcd_weakness(etcd, words):
    f = run(cp=node_output(etcd=etcd))["etcd-client-tls"]
    assert f.severity == "fail" and any(words in e for e in f.evidence), f.evidence


def test_a_node_not_read_or_without_manifests_is_a_warning():
    views = {"cp-1": hardening.parse(node_output(api=API)), "cp-2": hardening.parse("==> modes\n")}
    by = {f.check: f for f in hardening.findings(views, {"cp-1", "cp-2"}, Security(), KUBEADM_BINDINGS, ["w-9"])}
    assert by["manifests"].severity == "warn" and "cp-2: no kube-apiserver manifest in /etc/kubernetes/manifests" in by["manifests"].evidence
    assert by["read"].severity == "warn" and "w-9" in by["read"].what
    assert by["profiling"].severity == "ok"


def test_the_node_script_lists_key_files_without_reading_them():
    script = hardening.NODE_SCRIPT
    cats = script.split("; do", 1)[0]
    assert ".key" not in cats and ".conf" not in cats and "encryption-config" not in cats
    assert "-printf '%m %u %p\\n'" in script
