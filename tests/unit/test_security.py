"""spec.security: the model's defaults and checks, the three files rendered for the control planes (parsed and
checked field by field), the kubeadm apiServer flags and mounts that point at them, the state directory's
encryption key, and Pod Security's baseline against every pod ccp's add-ons and CNIs run."""

from __future__ import annotations

import base64
import re

import pytest
import yaml

from ccp import render, render_security
from ccp.config.load import load
from ccp.errors import ConfigError
from tests.conftest import example_data, small_config, write_config

BASE64_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")   # 32 bytes in base64


def loaded(tmp_path, edit=None, data=None):
    data = data or example_data()
    if edit:
        edit(data["spec"])
    return load(write_config(tmp_path / "c.yaml", data))


def config_errors(tmp_path, edit) -> str:
    with pytest.raises(ConfigError) as info:
        loaded(tmp_path, edit)
    assert info.value.code == 2
    return "\n".join(info.value.details) + info.value.message


def security(spec, **sections):
    spec["security"] = sections


def docs(text: str) -> dict:
    return {d["kind"]: d for d in yaml.safe_load_all(text) if d}


# ------------------------------------------------------------------ the model

def test_on_by_default(tmp_path):
    sec = loaded(tmp_path).config.spec.security
    assert sec.encryption.enabled and sec.audit.enabled and sec.podSecurity.enabled
    assert sec.encryption.provider == "secretbox" and sec.encryption.resources == ["secrets"]
    assert (sec.podSecurity.enforce, sec.podSecurity.warn, sec.podSecurity.audit) == ("baseline", "restricted", "restricted")
    assert (sec.audit.maxAgeDays, sec.audit.maxBackups, sec.audit.maxSizeMB) == (30, 10, 100)
    certs = sec.certificates
    assert (certs.autoRenew, certs.renewBeforeDays, certs.dailyAt, certs.staggerMinutes) == (True, 30, "03:00", 20)


@pytest.mark.parametrize("sections, words", [
    ({"encryption": {"resources": ["configmaps"]}}, "Secrets are always encrypted"),
    ({"encryption": {"resources": ["secrets", "secrets"]}}, "secrets listed twice"),
    ({"encryption": {"resources": ["secrets", "Deployments.apps"]}}, "spec.security.encryption.resources[1]"),
    ({"encryption": {"resources": ["secrets", "*.*"]}}, "spec.security.encryption.resources[1]"),
    ({"encryption": {"resources": ["secrets", "events.events.k8s.io"]}}, "write events instead"),
    ({"encryption": {"resources": ["secrets", "ingresses.extensions"]}}, "extensions API group has been removed"),
    ({"encryption": {"resources": []}}, "spec.security.encryption.resources"),
    ({"encryption": {"provider": "aesgcm"}}, "spec.security.encryption.provider"),
    ({"audit": {"maxSizeMB": 0}}, "spec.security.audit.maxSizeMB"),
    ({"audit": {"maxBackups": 0}}, "spec.security.audit.maxBackups"),
    ({"podSecurity": {"enforce": "strict"}}, "spec.security.podSecurity.enforce"),
    ({"podSecurity": {"exemptNamespaces": ["tools", "tools"]}}, "tools listed twice"),
    ({"podSecurity": {"exemptNamespaces": ["Not_A_Namespace"]}}, "spec.security.podSecurity.exemptNamespaces[0]"),
    ({"audit": {"enable": True}}, "spec.security.audit.enable"),
    ({"certificates": {"dailyAt": "3pm"}}, "'3pm' is not a time of day"),
    ({"certificates": {"dailyAt": "24:00"}}, "write it as HH:MM"),
    ({"certificates": {"renewBeforeDays": 5}}, "spec.security.certificates.renewBeforeDays"),
    ({"certificates": {"renewBeforeDays": 400}}, "spec.security.certificates.renewBeforeDays"),
    ({"certificates": {"staggerMinutes": 0}}, "spec.security.certificates.staggerMinutes"),
])
def test_mistakes_are_config_errors_at_the_field(tmp_path, sections, words):
    assert words in config_errors(tmp_path, lambda spec: security(spec, **sections))


def test_the_audit_log_cannot_take_more_than_a_quarter_of_a_control_planes_disk(tmp_path):
    text = config_errors(tmp_path, lambda spec: security(spec, audit={"maxSizeMB": 1000, "maxBackups": 20}))
    assert "21000 MB" in text and "60 GiB" in text and "spec.security.audit.maxSizeMB" in text
    ok = loaded(tmp_path, lambda spec: security(spec, audit={"maxSizeMB": 1000, "maxBackups": 14}))   # 15 of 60 GiB
    assert ok.config.spec.security.audit.budget_mb == 15000


def test_the_schema_documents_the_section():
    from ccp.config.schema import json_schema

    defs = json_schema()["$defs"]
    assert set(defs["Security"]["properties"]) == {"encryption", "audit", "podSecurity", "certificates"}
    assert set(defs["Certificates"]["properties"]) == {"autoRenew", "renewBeforeDays", "dailyAt", "staggerMinutes", "kubeletServing"}
    assert all(p.get("description") for p in defs["Certificates"]["properties"].values())
    assert {"enabled", "provider", "resources"} == set(defs["Encryption"]["properties"])
    assert {"enabled", "enforce", "audit", "warn", "exemptNamespaces"} == set(defs["PodSecurity"]["properties"])
    assert all(p.get("description") for p in defs["Audit"]["properties"].values())


def test_each_control_plane_checks_its_certificates_stagger_minutes_after_the_one_before(tmp_path):
    certs = loaded(tmp_path, lambda spec: security(spec, certificates={"dailyAt": "23:30", "staggerMinutes": 20})
                   ).config.spec.security.certificates
    assert [certs.check_time(i) for i in range(3)] == ["23:30", "23:50", "00:10"]   # past midnight: the next day
    most = loaded(tmp_path, lambda spec: security(spec, certificates={"staggerMinutes": 120})).config.spec.security.certificates
    assert len({most.check_time(i) for i in range(9)}) == 9, "9 control planes (the most) at 9 different times"


# ------------------------------------------------------------------ rendering

def test_profiling_is_off_in_every_control_plane_component(tmp_path):
    cluster_cfg = docs(render.render_all(loaded(tmp_path)).files["kubeadm/demo-cp-1/init.yaml"])["ClusterConfiguration"]
    for component in ("apiServer", "controllerManager", "scheduler"):
        assert {"name": "profiling", "value": "false"} in cluster_cfg[component]["extraArgs"], component


def test_the_three_files_parse_and_say_what_the_config_says(tmp_path):
    def edit(spec):
        security(spec, encryption={"provider": "aescbc", "resources": ["secrets", "configmaps"]},
                 podSecurity={"enforce": "restricted", "warn": "restricted", "audit": "baseline", "exemptNamespaces": ["tools"]})
    out = render.render_all(loaded(tmp_path, edit))
    enc = docs(out.files["security/encryption-config.yaml"])["EncryptionConfiguration"]
    assert enc["apiVersion"] == "apiserver.config.k8s.io/v1"
    (rule,) = enc["resources"]
    assert rule["resources"] == ["secrets", "configmaps"]
    assert rule["providers"][0] == {"aescbc": {"keys": [{"name": "ccp-1", "secret": "${CCP_ENCRYPTION_KEY}"}]}}
    assert rule["providers"][-1] == {"identity": {}}, "identity last: it reads what was stored unencrypted"

    adm = docs(out.files["security/admission-config.yaml"])["AdmissionConfiguration"]
    (plugin,) = adm["plugins"]
    conf = plugin["configuration"]
    assert plugin["name"] == "PodSecurity" and conf["apiVersion"] == "pod-security.admission.config.k8s.io/v1"
    assert conf["defaults"] == {"enforce": "restricted", "enforce-version": "latest", "audit": "baseline",
                                "audit-version": "latest", "warn": "restricted", "warn-version": "latest"}
    assert conf["exemptions"] == {"usernames": [], "runtimeClasses": [], "namespaces": ["kube-system", "tools"]}


def test_the_audit_policy_never_logs_a_body_and_skips_the_noise(tmp_path):
    out = render.render_all(loaded(tmp_path))
    policy = docs(out.files["security/audit-policy.yaml"])["Policy"]
    assert policy["apiVersion"] == "audit.k8s.io/v1" and policy["omitStages"] == ["RequestReceived"]
    rules = policy["rules"]
    assert {r["level"] for r in rules} == {"None", "Metadata"}, "no rule records a request or response body"
    assert rules[-1] == {"level": "Metadata"}, "the catch-all: everything not skipped is logged"

    def level_for(group, resource, verb="get", user="alice", groups=()):
        """The first rule that matches, as the API server's policy checker picks it (resource requests)."""
        for r in rules:
            if "nonResourceURLs" in r and "resources" not in r:
                continue
            if r.get("verbs") and verb not in r["verbs"]:
                continue
            if r.get("users") and user not in r["users"]:
                continue
            if r.get("userGroups") and not set(groups) & set(r["userGroups"]):
                continue
            if r.get("resources") and not any(g["group"] == group and resource in g["resources"] for g in r["resources"]):
                continue
            return r["level"]
    for group, resource in (("", "secrets"), ("", "configmaps"), ("authentication.k8s.io", "tokenreviews")):
        assert level_for(group, resource, "create") == "Metadata"
        assert level_for(group, resource, "get") == "Metadata"
    assert level_for("", "pods", "create") == "Metadata"
    assert level_for("", "events", "create") == "None"
    assert level_for("", "pods", "watch", "system:node:cp-1", ["system:nodes"]) == "None"
    assert level_for("", "pods", "delete", "system:node:cp-1", ["system:nodes"]) == "Metadata"
    health = next(r for r in rules if "nonResourceURLs" in r)
    assert health["level"] == "None" and {"/healthz*", "/livez*", "/readyz*"} <= set(health["nonResourceURLs"])


def test_kubeadm_points_the_api_server_at_the_files(tmp_path):
    cfg = loaded(tmp_path)
    out = render.render_all(cfg)
    api = docs(out.files["kubeadm/demo-cp-1/init.yaml"])["ClusterConfiguration"]["apiServer"]
    args = {a["name"]: a["value"] for a in api["extraArgs"]}
    assert args == {"profiling": "false", "encryption-provider-config": "/etc/kubernetes/ccp/encryption-config.yaml",
                    "audit-policy-file": "/etc/kubernetes/ccp/audit-policy.yaml",
                    "audit-log-path": "/var/log/kubernetes/audit/audit.log",
                    "audit-log-maxage": "30", "audit-log-maxbackup": "10", "audit-log-maxsize": "100",
                    "audit-log-compress": "true",
                    "admission-control-config-file": "/etc/kubernetes/ccp/admission-config.yaml"}
    mounts = {v["name"]: v for v in api["extraVolumes"]}
    assert mounts["ccp-security"] == {"name": "ccp-security", "hostPath": "/etc/kubernetes/ccp",
                                      "mountPath": "/etc/kubernetes/ccp", "readOnly": True, "pathType": "Directory"}
    assert mounts["audit-log"]["readOnly"] is False and mounts["audit-log"]["hostPath"] == "/var/log/kubernetes/audit"
    files = render_security.files(cfg.config.spec.security)
    assert set(files.values()) == {args["encryption-provider-config"], args["audit-policy-file"],
                                   args["admission-control-config-file"]}
    assert all(rel in out.files for rel in files)
    for node in ("demo-cp-2", "demo-default-1"):   # joins take the cluster's ClusterConfiguration
        assert "extraArgs" not in out.files[f"kubeadm/{node}/join.yaml"]


def test_each_control_plane_gets_its_renewal_timer_at_its_own_time(tmp_path):
    out = render.render_all(loaded(tmp_path, lambda spec: security(spec, certificates={"renewBeforeDays": 45})))
    cps = {"demo-cp-1": "10.10.0.22", "demo-cp-2": "10.10.0.23", "demo-cp-3": "10.10.0.24"}
    renewal = sorted(p for p in out.files if "cert-renew" in p)
    assert renewal == sorted(f"{d}/{n}/{f}" for n in cps for d, f in (("scripts", "cert-renew.sh"),
                             ("systemd", "ccp-cert-renew.service"), ("systemd", "ccp-cert-renew.timer")))
    for i, (node, address) in enumerate(cps.items()):
        timer = out.files[f"systemd/{node}/ccp-cert-renew.timer"]
        assert f"OnCalendar=*-*-* 03:{20 * i:02d}:00" in timer and "Persistent" not in timer.split("[Timer]")[1]
        service = out.files[f"systemd/{node}/ccp-cert-renew.service"]
        assert f"ExecStart={render_security.RENEW_SCRIPT}" in service and f"EnvironmentFile=-{render_security.RENEW_ENV}" in service
        script = out.files[f"scripts/{node}/cert-renew.sh"]
        assert "before_days=${CCP_RENEW_BEFORE_DAYS:-45}" in script and "kubeadm certs renew all" in script
        # the other control planes' API servers are checked first, not its own; the same restart as ccp certs renew
        assert f"https://{address}:6443/readyz" not in script
        assert all(f"https://{a}:6443/readyz" in script for n, a in cps.items() if n != node)
        assert "ccp-parked-manifests" in script and "10.10.0.10:6443/readyz" in script
    assert "PRIVATE KEY" not in "".join(out.files[p] for p in renewal)


def test_auto_renew_off_renders_no_timer(tmp_path):
    out = render.render_all(loaded(tmp_path, lambda spec: security(spec, certificates={"autoRenew": False})))
    assert not [p for p in out.files if "cert-renew" in p]


@pytest.mark.parametrize("on", [(), ("audit",), ("encryption",), ("podSecurity",), ("encryption", "podSecurity")])
def test_each_setting_turns_on_only_its_own_files_and_flags(tmp_path, on):
    def edit(spec):
        security(spec, **{name: {"enabled": name in on} for name in ("encryption", "audit", "podSecurity")})
    out = render.render_all(loaded(tmp_path, edit, small_config()))
    assert {p for p in out.files if p.startswith("security/")} == {render_security.FILES[n][0] for n in on}
    api = docs(out.files["kubeadm/lab-cp-1/init.yaml"])["ClusterConfiguration"]["apiServer"]
    flags = {a["name"] for a in api.get("extraArgs", [])}
    assert "profiling" in flags, "profiling is off whatever spec.security says"
    assert ("encryption-provider-config" in flags) == ("encryption" in on)
    assert ("audit-policy-file" in flags) == ("audit" in on) == ("audit-log-path" in flags)
    assert ("admission-control-config-file" in flags) == ("podSecurity" in on)
    assert {v["name"] for v in api.get("extraVolumes", [])} == ({"ccp-security"} if on else set()) | \
        ({"audit-log"} if "audit" in on else set())


def test_no_key_in_any_rendered_file(tmp_path):
    out = render.render_all(loaded(tmp_path))
    for rel, text in out.files.items():
        if rel.startswith(("security/", "kubeadm/")):
            assert not BASE64_KEY.search(text), rel
    (key,) = yaml.safe_load(out.files["security/encryption-config.yaml"])["resources"][0]["providers"][0]["secretbox"]["keys"]
    assert key["secret"] == "${CCP_ENCRYPTION_KEY}"


def test_fill_key_needs_the_placeholder():
    from ccp.errors import InternalError

    assert render_security.fill_key('secret: "${CCP_ENCRYPTION_KEY}"', "k" * 44) == f'secret: "{"k" * 44}"'
    with pytest.raises(InternalError):
        render_security.fill_key("secret: none", "k" * 44)


# ------------------------------------------------------------------ the key in the state directory

def _ctx(tmp_path):
    from ccp.context import ClusterContext

    return ClusterContext(state_dir=tmp_path / "state", loaded=loaded(tmp_path))


def test_the_key_is_made_once_private_and_masked(tmp_path):
    from ccp import redact
    from ccp.cluster import security as sec

    ctx = _ctx(tmp_path)
    assert sec.stored_key(ctx) is None
    assert [a.verb for a in sec.init_actions(ctx, "demo-cp-1")] == ["generate", "upload"]
    key = sec.ensure_key(ctx)
    assert len(base64.b64decode(key)) == 32
    path = sec.key_path(ctx)
    assert path == tmp_path / "state" / "secrets" / "encryption-key"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert sec.ensure_key(ctx) == key and sec.stored_key(ctx) == key, "made once, then kept"
    assert redact.scrub(f"the key is {key}") == f"the key is {redact.MASK}"
    assert [a.verb for a in sec.init_actions(ctx, "demo-cp-1")] == ["upload"]
    (tmp_path / "other").mkdir()
    assert sec.ensure_key(_ctx(tmp_path / "other")) != key, "every cluster has its own"


def test_a_damaged_key_file_is_a_config_error_that_says_what_to_do(tmp_path):
    from ccp.cluster import security as sec

    ctx = _ctx(tmp_path)
    sec.key_path(ctx).parent.mkdir(parents=True)
    sec.key_path(ctx).write_text("not-a-key\n")
    with pytest.raises(ConfigError) as info:
        sec.ensure_key(ctx)
    assert "32-byte base64 key" in info.value.message and "restore it" in info.value.resolution


# ------------------------------------------------------------------ Pod Security against the add-ons

# What Pod Security's baseline level forbids that ccp's manifests could contain (hostPath, host namespaces,
# privileged, added capabilities beyond the baseline set, host ports).
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                 "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def baseline_violations(spec: dict) -> list[str]:
    found = [f for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f)]
    found += [f"hostPath volume {v['name']}" for v in spec.get("volumes", []) if "hostPath" in v]
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"{c['name']}: privileged")
        extra = set((sc.get("capabilities") or {}).get("add", [])) - BASELINE_CAPS
        if extra:
            found.append(f"{c['name']}: capabilities {sorted(extra)}")
        found += [f"{c['name']}: hostPort {p['hostPort']}" for p in c.get("ports", []) if p.get("hostPort")]
    return found


def _pod_spec(obj: dict) -> dict | None:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


@pytest.mark.parametrize("storage, cni", [("vsphere-csi", "kube-router"), ("local-path", "flannel")])
def test_every_pod_that_needs_privileges_lives_where_pod_security_lets_it(tmp_path, storage, cni):
    """With enforce: baseline, a privileged add-on pod must sit in an exempt namespace (kube-system) or one its
    add-on labels pod-security.kubernetes.io/enforce: privileged; every other pod must pass baseline."""
    from ccp import addons
    from ccp.config import versions

    ld = loaded(tmp_path, lambda spec: spec["addons"].update(storage={"provider": storage}, cni={"name": cni}))
    cfg = ld.config
    bom = versions.bom_of(cfg)
    objects = [d for d in yaml.safe_load_all(render.render_all(ld).files[f"cni/{cni}.yaml"]) if d]
    for addon in addons.enabled_addons(cfg):
        objects += addons.render(addon, cfg, bom).objects
    privileged = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"
                  and o["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "privileged"}
    exempt = set(render_security.exempt_namespaces(cfg.spec.security))
    checked, refused = 0, []
    for obj in objects:
        spec = _pod_spec(obj)
        if spec is None:
            continue
        checked += 1
        ns = obj["metadata"].get("namespace", "default")
        bad = baseline_violations(spec)
        if bad and ns not in privileged | exempt:
            refused.append(f"{obj['kind']} {ns}/{obj['metadata']['name']}: {bad}")
    assert checked >= 8 and refused == []
    assert privileged >= ({"local-path-storage"} if storage == "local-path" else {"vmware-system-csi"})
