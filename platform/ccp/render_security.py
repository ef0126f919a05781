"""spec.security as the API server gets it: three files for /etc/kubernetes/ccp on every control plane (the
encryption configuration, the audit policy, the Pod Security admission configuration) and the kubeadm
ClusterConfiguration's apiServer extraArgs and extraVolumes that point kube-apiserver at them.

The encryption configuration is rendered with ${CCP_ENCRYPTION_KEY} in place of the key: the key is
filled in only in the copy uploaded to the control planes (ccp.cluster.security), never on this
machine's disk outside <state>/secrets.

spec.security.certificates: the certificate renewal script and its systemd service and timer, per control
plane (render_renewal); the phase certs/auto-renew installs them.
"""

from __future__ import annotations

import re
import shlex

NODE_DIR = "/etc/kubernetes/ccp"
ENCRYPTION_CONFIG = f"{NODE_DIR}/encryption-config.yaml"
AUDIT_POLICY = f"{NODE_DIR}/audit-policy.yaml"
ADMISSION_CONFIG = f"{NODE_DIR}/admission-config.yaml"
AUDIT_LOG_DIR = "/var/log/kubernetes/audit"
AUDIT_LOG = f"{AUDIT_LOG_DIR}/audit.log"
KEY_PLACEHOLDER = "${CCP_ENCRYPTION_KEY}"
KEY_NAME = "ccp-1"                       # the first key's name; in every stored value's prefix: k8s:enc:<provider>:v1:<name>:
ALWAYS_EXEMPT = ("kube-system",)         # the control plane's own pods, kube-proxy, the CNI, vSphere CPI

RENEW_UNIT = "ccp-cert-renew"
RENEW_SCRIPT = "/usr/local/sbin/ccp-cert-renew"
RENEW_ENV = "/etc/ccp/cert-renew.env"     # optional: CCP_RENEW_BEFORE_DAYS for the service (a forced renewal)
# rendered file (per node) -> where it goes on the control plane, and its mode
RENEW_FILES = [("scripts/{n}/cert-renew.sh", RENEW_SCRIPT, 0o700),
               ("systemd/{n}/ccp-cert-renew.service", f"/etc/systemd/system/{RENEW_UNIT}.service", 0o644),
               ("systemd/{n}/ccp-cert-renew.timer", f"/etc/systemd/system/{RENEW_UNIT}.timer", 0o644)]
RESTART_PAUSE, API_WAIT = 3, 300           # as `ccp certs renew`: seconds the static pods stay stopped at least; API wait

# rendered file (under <state>/rendered) -> where it goes on a control plane, by the setting that turns it on
FILES = {"encryption": ("security/encryption-config.yaml", ENCRYPTION_CONFIG),
         "audit": ("security/audit-policy.yaml", AUDIT_POLICY),
         "podSecurity": ("security/admission-config.yaml", ADMISSION_CONFIG)}


def enabled(security) -> list[str]:
    """The settings that are on, in FILES order."""
    return [name for name in FILES if getattr(security, name).enabled]


def files(security) -> dict[str, str]:
    """Rendered path -> path on a control plane, for the settings that are on."""
    return dict(FILES[name] for name in enabled(security))


def exempt_namespaces(security) -> list[str]:
    return list(ALWAYS_EXEMPT) + [n for n in security.podSecurity.exemptNamespaces if n not in ALWAYS_EXEMPT]


def render(render_file, security) -> None:
    """Render the files of the settings that are on, through render.render_all's ``render``."""
    on = enabled(security)
    if "encryption" in on:
        render_file("security/encryption-config.yaml.j2", FILES["encryption"][0], node_path=ENCRYPTION_CONFIG,
                    encryption=security.encryption, key_name=KEY_NAME)
    if "audit" in on:
        render_file("security/audit-policy.yaml.j2", FILES["audit"][0], node_path=AUDIT_POLICY,
                    audit=security.audit, audit_log=AUDIT_LOG)
    if "podSecurity" in on:
        render_file("security/admission-config.yaml.j2", FILES["podSecurity"][0], node_path=ADMISSION_CONFIG,
                    pod_security=security.podSecurity, exempt_namespaces=exempt_namespaces(security))


# Always, for kube-apiserver, kube-controller-manager and kube-scheduler: their profiling endpoints (/debug/pprof)
# off. They default to on, and `ccp diagnose`'s hardening section (like the CIS benchmark) wants them off.
HARDENING_ARGS = ({"name": "profiling", "value": "false"},)


def api_server(security) -> dict[str, list[dict]]:
    """kubeadm v1beta4 apiServer extraArgs ({name, value}) and extraVolumes (hostPath mounts): profiling off, and
    the settings that are on. The static pod sees /etc/kubernetes/ccp read-only and writes its audit log to the host."""
    on = enabled(security)
    args: list[dict] = list(HARDENING_ARGS)
    volumes: list[dict] = []
    if "encryption" in on:
        args.append({"name": "encryption-provider-config", "value": ENCRYPTION_CONFIG})
    if "audit" in on:
        a = security.audit
        args += [{"name": "audit-policy-file", "value": AUDIT_POLICY},
                 {"name": "audit-log-path", "value": AUDIT_LOG},
                 {"name": "audit-log-maxage", "value": str(a.maxAgeDays)},
                 {"name": "audit-log-maxbackup", "value": str(a.maxBackups)},
                 {"name": "audit-log-maxsize", "value": str(a.maxSizeMB)},
                 {"name": "audit-log-compress", "value": "true"}]
    if "podSecurity" in on:
        args.append({"name": "admission-control-config-file", "value": ADMISSION_CONFIG})
    if on:
        volumes.append({"name": "ccp-security", "hostPath": NODE_DIR, "mountPath": NODE_DIR, "readOnly": True,
                        "pathType": "Directory"})
    if "audit" in on:
        volumes.append({"name": "audit-log", "hostPath": AUDIT_LOG_DIR, "mountPath": AUDIT_LOG_DIR, "readOnly": False,
                        "pathType": "DirectoryOrCreate"})
    return {"args": args, "volumes": volumes}


# kube-apiserver flags and volumes ccp's ClusterConfiguration sets (profiling off, spec.security's): what `ccp apply`
# may add to, change in or remove from a running API server's static pod and kubeadm-config (every other flag is left
# as it is). A cluster installed before profiling was turned off gets --profiling=false from its next `ccp apply`.
MANAGED_ARGS = (*(a["name"] for a in HARDENING_ARGS), "encryption-provider-config", "audit-policy-file", "audit-log-path", "audit-log-maxage",
                "audit-log-maxbackup", "audit-log-maxsize", "audit-log-compress", "admission-control-config-file")
MANAGED_VOLUMES = ("ccp-security", "audit-log")
_KEY_ENTRY = re.compile(r'^(?P<indent>[ \t]*)- name: \S+\n(?P=indent)  secret: "\$\{CCP_ENCRYPTION_KEY\}"$', re.M)


def fill_key(text: str, key: str) -> str:
    """The encryption configuration as uploaded: the placeholder replaced by the key (in memory only)."""
    if KEY_PLACEHOLDER not in text:
        from ccp.errors import InternalError

        raise InternalError("the rendered encryption configuration has no key placeholder",
                            "this is a ccp bug; run the render phase again, then report it")
    return text.replace(KEY_PLACEHOLDER, key)


def fill_keys(text: str, keys: list[tuple[str, str]]) -> str:
    """The rendered configuration's one key entry replaced by ``keys`` ((name, secret), the one that encrypts
    first), in memory only; with a single key named as rendered, exactly the placeholder filled in."""
    found = _KEY_ENTRY.search(text)
    if found is None or not keys:
        from ccp.errors import InternalError

        raise InternalError("the rendered encryption configuration has no key placeholder",
                            "this is a ccp bug; run the render phase again, then report it")
    pad = found.group("indent")
    entries = "\n".join(f'{pad}- name: {name}\n{pad}  secret: "{secret}"' for name, secret in keys)
    return text[:found.start()] + entries + text[found.end():]


def render_renewal(render_file, certificates, control_planes, endpoint: str, kube_nodes=()) -> None:
    """With autoRenew: for each control plane (in inventory order, which sets its check time) the renewal script
    (which knows the other control planes, to check their API servers first) and its service and timer. With
    kubeletServing, the script first approves the kubelets' serving certificate requests that name only their
    own node of ``kube_nodes`` (every Kubernetes node) and its address."""
    if not certificates.autoRenew:
        return
    from ccp.remote.kubelet_serving import approve_script
    from ccp.remote.static_pods import LOCK, LOCK_WAIT, MANIFESTS, PARKED, restart_script, wait_script

    serving = approve_script({n.name: str(n.address) for n in kube_nodes}) if certificates.kubeletServing else ""
    steps = {"restart": f"sh -c {shlex.quote(restart_script(RESTART_PAUSE))}",
             "wait_local": f"sh -c {shlex.quote(wait_script('127.0.0.1:6443', API_WAIT))}",
             "wait_endpoint": f"sh -c {shlex.quote(wait_script(endpoint, API_WAIT))}",
             "approve_serving": f"sh -c {shlex.quote(serving)}" if serving else ""}
    for i, node in enumerate(control_planes):
        extra = {"node": node, "index": i, "count": len(control_planes), "at": certificates.check_time(i),
                 "stagger": certificates.staggerMinutes, "before_days": certificates.renewBeforeDays,
                 "peers": [n for n in control_planes if n.name != node.name],
                 "manifests": MANIFESTS, "parked": PARKED, "lock": LOCK, "lock_wait": LOCK_WAIT, "env_file": RENEW_ENV, "script_path": RENEW_SCRIPT, **steps}
        for template, (dest, _, _) in zip(("scripts/cert-renew.sh.j2", "systemd/ccp-cert-renew.service.j2",
                                           "systemd/ccp-cert-renew.timer.j2"), RENEW_FILES):
            render_file(template, dest.format(n=node.name), **extra)
