"""The hardening section of `ccp diagnose`: how the control plane, the kubelets and etcd are configured, read on
the nodes themselves — kubeadm's static pod manifests on each control plane, each kubelet's configuration and
flags, and the modes of the files that hold a key (private keys, kubeconfigs, the encryption configuration, the
scheduled backups) — plus, from the API, what RBAC grants anonymous requests. Every finding says what is wrong
and what to change; a check that finds nothing wrong says what it checked.

Nothing here prints a key: the node script cats only the four kubeadm manifests and the kubelet's configuration
and flags (paths and settings), and lists the other files' modes with `find -printf` (never their content).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ccp.diagnose.base import Finding, sample

MANIFESTS = "/etc/kubernetes/manifests"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBELET_FLAGS = ("/var/lib/kubelet/kubeadm-flags.env", "/etc/default/kubelet")
# Run with sudo on every Kubernetes node. "==> PATH" then the file; "==> modes" then "MODE OWNER PATH" lines.
NODE_SCRIPT = (
    "for f in " + " ".join(f"{MANIFESTS}/{c}.yaml" for c in COMPONENTS) + f" {KUBELET_CONFIG} " + " ".join(KUBELET_FLAGS)
    + "; do [ -f \"$f\" ] && { echo \"==> $f\"; cat \"$f\"; echo; }; done\n"
    "echo '==> modes'\n"
    "find /etc/kubernetes -maxdepth 3 -type f \\( -name '*.key' -o -name '*.conf' -o -name '*.pem' "
    "-o -path /etc/kubernetes/ccp/encryption-config.yaml \\) -printf '%m %u %p\\n' 2>/dev/null\n"
    "find /var/lib/kubelet/pki -maxdepth 1 -type f \\( -name '*.key' -o -name 'kubelet-client-*.pem' \\) "
    "-printf '%m %u %p\\n' 2>/dev/null\n"
    "find /var/lib/ccp/backups -maxdepth 1 -type f -printf '%m %u %p\\n' 2>/dev/null\n"
    "true")
# What RBAC may grant anonymous requests on a kubeadm cluster: the health, version and discovery info everyone reads
# (the kubelet's probes and the load balancer's health checks need it), and the cluster-info ConfigMap that
# `kubeadm join` reads before it has credentials.
ANONYMOUS = {("User", "system:anonymous"), ("Group", "system:unauthenticated")}
ANONYMOUS_ALLOWED = {("ClusterRole", "system:public-info-viewer", ""),
                     ("Role", "kubeadm:bootstrap-signer-clusterinfo", "kube-public")}


@dataclass
class NodeView:
    """What the node script printed, parsed: each component's flags, the kubelet's configuration and extra
    flags, and the key-holding files' modes."""
    flags: dict[str, dict[str, str]] = field(default_factory=dict)     # component -> {flag: value}
    kubelet: dict | None = None
    kubelet_flags: dict[str, str] = field(default_factory=dict)
    modes: list[tuple[int, str, str]] = field(default_factory=list)    # (mode, owner, path)


def _flags(command: list) -> dict[str, str]:
    out = {}
    for arg in command or []:
        if isinstance(arg, str) and arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            out[name] = value if sep else "true"
    return out


def parse(text: str) -> NodeView:
    import shlex

    import yaml

    view = NodeView()
    for chunk in text.split("==> ")[1:]:
        path, _, body = chunk.partition("\n")
        path = path.strip()
        if path == "modes":
            for line in body.splitlines():
                mode, owner, file = (line.split(" ", 2) + ["", ""])[:3]
                try:
                    view.modes.append((int(mode, 8), owner, file))
                except ValueError:
                    continue
            continue
        try:
            if path in KUBELET_FLAGS:   # KUBELET_KUBEADM_ARGS="--a=b ..." / KUBELET_EXTRA_ARGS=...
                for line in body.splitlines():
                    value = line.partition("=")[2].strip()
                    view.kubelet_flags.update(_flags(shlex.split(value)[0].split() if value.startswith(('"', "'"))
                                                     else value.split()))
                continue
            doc = yaml.safe_load(body) or {}
        except (ValueError, yaml.YAMLError):
            continue
        if path == KUBELET_CONFIG:
            view.kubelet = doc if isinstance(doc, dict) else None
        else:
            containers = ((doc.get("spec") or {}).get("containers") or [{}]) if isinstance(doc, dict) else [{}]
            component = path.rsplit("/", 1)[-1].removesuffix(".yaml")
            view.flags[component] = _flags((containers[0] or {}).get("command"))
    return view


def anonymous_grants(bindings: list[dict]) -> list[str]:
    """The RoleBindings and ClusterRoleBindings that give anonymous requests more than kubeadm's own."""
    out = []
    for b in bindings:
        meta, ref = b.get("metadata") or {}, b.get("roleRef") or {}
        ns = meta.get("namespace", "")
        subjects = {(s.get("kind"), s.get("name")) for s in b.get("subjects") or []}
        if subjects & ANONYMOUS and (ref.get("kind"), ref.get("name"), ns) not in ANONYMOUS_ALLOWED:
            who = ", ".join(sorted(n for _, n in subjects & ANONYMOUS))
            out.append(f"{b.get('kind', 'binding')} {ns + '/' if ns else ''}{meta.get('name')}: {who} -> "
                       f"{ref.get('kind')} {ref.get('name')}")
    return sorted(out)


# ------------------------------------------------------------------ the checks

def findings(views: dict[str, NodeView], control_planes: set[str], security=None, bindings: list[dict] | None = None,
             unread: list[str] = ()) -> list[Finding]:
    """``views``: node -> its parsed facts (Kubernetes nodes only); ``security``: spec.security (None: unknown);
    ``bindings``: every RoleBinding and ClusterRoleBinding (None: the API was not asked); ``unread``: nodes whose
    facts could not be read."""
    cps = {n: v for n, v in sorted(views.items()) if n in control_planes}
    out: list[Finding] = []
    missing = [f"{n}: no {c} manifest in {MANIFESTS}" for n, v in cps.items() for c in COMPONENTS if c not in v.flags]
    missing += [f"{n}: no {KUBELET_CONFIG}" for n, v in sorted(views.items()) if v.kubelet is None]
    if missing:
        out.append(_bad("manifests", "warn", "some configuration to check is not on the nodes", missing,
                        "a node still joining has none yet; otherwise look at the node (ccp diagnose --only hosts)"))
    for node in unread:
        out.append(_bad("read", "warn", f"{node}: its configuration was not read", [],
                        "the node could not be reached, or sudo failed there: ccp diagnose --only hosts"))
    api = {n: v.flags["kube-apiserver"] for n, v in cps.items() if "kube-apiserver" in v.flags}
    etcd = {n: v.flags["etcd"] for n, v in cps.items() if "etcd" in v.flags}
    kubelets = {n: v for n, v in sorted(views.items()) if v.kubelet is not None}
    for check in (_anonymous(api, bindings), _profiling(cps), _insecure_port(api), _admission(api), _authorization(api),
                  _feature(api, security, "audit", ("audit-log-path", "audit-policy-file"), "the audit log"),
                  _feature(api, security, "encryption", ("encryption-provider-config",), "encryption of Secrets at rest"),
                  _file_modes(views), _kubelet_anonymous(kubelets), _kubelet_read_only(kubelets),
                  _kubelet_authorization(kubelets), _kubelet_rotation(kubelets), _kubelet_serving(kubelets, security),
                  _etcd_tls(etcd)):
        out += check
    return out


def _ok(check: str, what: str, evidence: list[str] = ()) -> list[Finding]:
    return [Finding("hardening", check, "ok", what, list(evidence))]


def _bad(check: str, severity: str, what: str, evidence: list[str], fix: str) -> Finding:
    return Finding("hardening", check, severity, what, sample(evidence), fix)


def _nodes(bad: list[str]) -> str:
    names = sorted({b.split(":", 1)[0] for b in bad})
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _anonymous(api: dict[str, dict], bindings) -> list[Finding]:
    if not api:
        return []
    off = [n for n, f in api.items() if f.get("anonymous-auth", "true") == "false" or "authentication-config" in f]
    if len(off) == len(api):
        return _ok("anonymous-auth", f"kube-apiserver on {len(api)} control plane(s): anonymous requests refused "
                                     "(or limited by its authentication configuration)")
    if bindings is None:
        return [_bad("anonymous-auth", "warn", "the API server takes anonymous requests and what RBAC grants them "
                     "was not checked (no kubeconfig)", [n for n in api if n not in off],
                     "run ccp diagnose with the cluster's kubeconfig, so the RBAC bindings are read")]
    grants = anonymous_grants(bindings)
    if grants:
        return [_bad("anonymous-auth", "fail", f"RBAC grants anonymous requests more than health and cluster-info "
                     f"({len(grants)} binding(s))", grants,
                     "delete these bindings, or bind a named user or group instead of system:anonymous / "
                     "system:unauthenticated")]
    return _ok("anonymous-auth", "anonymous requests reach only health, version and cluster-info: RBAC grants them "
               "nothing more (kept on: the kubelet's probes, the load balancers' health checks and kubeadm join need it)")


def _profiling(cps: dict[str, NodeView]) -> list[Finding]:
    comps = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    on = [f"{n}: {c}" for n, v in cps.items() for c in comps if c in v.flags and v.flags[c].get("profiling", "true") != "false"]
    if on:
        return [_bad("profiling", "warn", f"profiling (/debug/pprof) is enabled on {_nodes(on)}", on,
                     f"add --profiling=false to these components in {MANIFESTS} on each control plane, and to the "
                     "kubeadm-config ConfigMap's extraArgs for later upgrades (a fresh ccp install sets it)")]
    return _ok("profiling", "profiling off in kube-apiserver, kube-controller-manager and kube-scheduler") if cps else []


def _insecure_port(api: dict[str, dict]) -> list[Finding]:
    bad = [f"{n}: --insecure-port={f['insecure-port']}" for n, f in api.items() if f.get("insecure-port", "0") != "0"]
    bad += [f"{n}: --insecure-bind-address={f['insecure-bind-address']}" for n, f in api.items() if "insecure-bind-address" in f]
    if bad:
        return [_bad("insecure-port", "fail", f"the API server serves without TLS or authentication on {_nodes(bad)}",
                     bad, f"remove --insecure-port and --insecure-bind-address from {MANIFESTS}/kube-apiserver.yaml")]
    return _ok("insecure-port", "no insecure port: the API server answers only over TLS") if api else []


def _admission(api: dict[str, dict]) -> list[Finding]:
    bad = []
    for n, f in api.items():
        on = set(f.get("enable-admission-plugins", "").split(","))
        if "NodeRestriction" not in on or "NodeRestriction" in f.get("disable-admission-plugins", "").split(","):
            bad.append(f"{n}: NodeRestriction is not enabled (--enable-admission-plugins={f.get('enable-admission-plugins', '')})")
        if "AlwaysAdmit" in on:
            bad.append(f"{n}: AlwaysAdmit is enabled")
    if bad:
        return [_bad("admission-plugins", "fail", f"admission plugins are weak on {_nodes(bad)}", bad,
                     f"enable NodeRestriction (and never AlwaysAdmit) in --enable-admission-plugins in {MANIFESTS}/kube-apiserver.yaml")]
    return _ok("admission-plugins", "NodeRestriction on: a kubelet can change only its own node and pods") if api else []


def _authorization(api: dict[str, dict]) -> list[Finding]:
    bad = [f"{n}: --authorization-mode={f.get('authorization-mode', '(unset: AlwaysAllow)')}" for n, f in api.items()
           if "authorization-config" not in f and not {"Node", "RBAC"} <= set(f.get("authorization-mode", "").split(","))
           or "AlwaysAllow" in f.get("authorization-mode", "")]
    if bad:
        return [_bad("authorization-mode", "fail", f"the API server does not authorize with Node and RBAC on {_nodes(bad)}",
                     bad, f"set --authorization-mode=Node,RBAC in {MANIFESTS}/kube-apiserver.yaml")]
    return _ok("authorization-mode", "requests authorized by Node and RBAC") if api else []


def _feature(api: dict[str, dict], security, name: str, flags: tuple[str, ...], what: str) -> list[Finding]:
    """spec.security's audit log or encryption: on when the API server has its flags."""
    if not api:
        return []
    off = [f"{n}: no --{flags[0]}" for n, f in api.items() if not all(f.get(x) for x in flags)]
    if not off:
        return _ok(name, f"every control plane's API server has {what}")
    wanted = getattr(security, name).enabled if security is not None else None
    if wanted is False:
        return [_bad(name, "warn", f"the API server runs without {what} (spec.security.{name}.enabled: false)", off,
                     f"turn spec.security.{name} on for the next cluster: the API server's flags are set at install")]
    return [_bad(name, "fail", f"the API server runs without {what} on {_nodes(off)}"
                 + (", though cluster.yaml asks for it" if wanted else ""),
                 off, "the flags are set at kubeadm init (ccp does not change them on a running cluster yet): add them to "
                 f"{MANIFESTS}/kube-apiserver.yaml and the kubeadm-config ConfigMap, with the files from <state>/rendered/security")]


def _file_modes(views: dict[str, NodeView]) -> list[Finding]:
    files = [(n, mode, owner, path) for n, v in sorted(views.items()) for mode, owner, path in v.modes]
    bad = [f"{n}: {path} is {mode:o}, owned by {owner}" for n, mode, owner, path in files if mode & 0o077 or owner != "root"]
    if bad:
        return [_bad("file-modes", "fail", f"{len(bad)} file(s) holding a key can be read by others than root: "
                     + ", ".join(b.split(" is ")[0] for b in bad[:3]) + (" ..." if len(bad) > 3 else ""), bad,
                     "chmod 600 and chown root:root each of them (private keys, kubeconfigs, the encryption "
                     "configuration, backups); then find who read them")]
    if not files:
        return []
    return _ok("file-modes", f"{len(files)} private keys, kubeconfigs and backups on {len(views)} node(s): "
                             "0600 or stricter, owned by root")


def _kubelet_setting(kubelets: dict[str, NodeView], check: str, bad_of, ok_text: str, severity: str, what: str,
                     fix: str) -> list[Finding]:
    bad = [f"{n}: {why}" for n, v in kubelets.items() for why in [bad_of(v)] if why]
    if bad:
        return [_bad(check, severity, f"{what} on {_nodes(bad)}", bad, fix)]
    return _ok(check, f"{len(kubelets)} kubelet(s): {ok_text}") if kubelets else []


def _kubelet_anonymous(kubelets) -> list[Finding]:
    def bad(v: NodeView):
        if v.kubelet_flags.get("anonymous-auth") == "true":
            return "--anonymous-auth=true in its flags"
        enabled = ((v.kubelet.get("authentication") or {}).get("anonymous") or {}).get("enabled")
        return None if enabled is False else f"authentication.anonymous.enabled is {enabled} in {KUBELET_CONFIG}"
    return _kubelet_setting(kubelets, "kubelet-anonymous-auth", bad, "anonymous requests refused", "fail",
                            "the kubelet's API takes anonymous requests",
                            f"set authentication.anonymous.enabled: false in {KUBELET_CONFIG} and restart the kubelet")


def _kubelet_read_only(kubelets) -> list[Finding]:
    def bad(v: NodeView):
        port = v.kubelet_flags.get("read-only-port") or str(v.kubelet.get("readOnlyPort") or 0)
        return None if port == "0" else f"read-only port {port}"
    return _kubelet_setting(kubelets, "kubelet-read-only-port", bad, "no read-only port", "fail",
                            "the kubelet serves its read-only port (no authentication)",
                            f"set readOnlyPort: 0 in {KUBELET_CONFIG} (and drop --read-only-port from its flags), restart the kubelet")


def _kubelet_authorization(kubelets) -> list[Finding]:
    def bad(v: NodeView):
        mode = (v.kubelet.get("authorization") or {}).get("mode")
        return None if mode == "Webhook" else f"authorization.mode is {mode} in {KUBELET_CONFIG}"
    return _kubelet_setting(kubelets, "kubelet-authorization", bad, "requests authorized by the API server (Webhook)",
                            "fail", "the kubelet does not ask the API server who may do what",
                            f"set authorization.mode: Webhook in {KUBELET_CONFIG} and restart the kubelet")


def _kubelet_rotation(kubelets) -> list[Finding]:
    def bad(v: NodeView):
        return None if v.kubelet.get("rotateCertificates") is True else f"rotateCertificates is {v.kubelet.get('rotateCertificates')}"
    return _kubelet_setting(kubelets, "kubelet-certificate-rotation", bad, "client certificate rotated before it "
                            "expires (rotateCertificates)",
                            "warn", "the kubelet's client certificate is not rotated: the node drops out when it expires",
                            f"set rotateCertificates: true in {KUBELET_CONFIG} and restart the kubelet")


def _kubelet_serving(kubelets, security) -> list[Finding]:
    """The kubelet's serving certificate: signed by the cluster CA and rotated (serverTLSBootstrap), or self-signed."""
    wanted = security is None or security.certificates.kubeletServing

    def bad(v: NodeView):
        return None if v.kubelet.get("serverTLSBootstrap") is True else f"serverTLSBootstrap is {v.kubelet.get('serverTLSBootstrap')}"
    return _kubelet_setting(kubelets, "kubelet-serving-certificate", bad, "serving certificate signed by the cluster CA "
                            "and rotated (serverTLSBootstrap)", "warn",
                            "the kubelet's serving certificate is self-signed and never rotated"
                            + ("" if wanted else " (spec.security.certificates.kubeletServing: false)"),
                            "with spec.security.certificates.kubeletServing on, `ccp apply` sets serverTLSBootstrap: "
                            f"true in {KUBELET_CONFIG}, restarts the kubelet and approves its request")


def _etcd_tls(etcd: dict[str, dict]) -> list[Finding]:
    bad = []
    for n, f in etcd.items():
        for flag in ("client-cert-auth", "peer-client-cert-auth"):
            if f.get(flag) != "true":
                bad.append(f"{n}: --{flag}={f.get(flag, '(unset)')}")
        for flag in ("auto-tls", "peer-auto-tls"):
            if f.get(flag) == "true":
                bad.append(f"{n}: --{flag}=true (self-signed, unverified)")
        for flag in ("listen-client-urls", "listen-peer-urls"):
            plain = [u for u in f.get(flag, "").split(",") if u and not u.startswith("https://")]
            if plain or not f.get(flag):
                bad.append(f"{n}: --{flag}={f.get(flag, '(unset)')}")
    if bad:
        return [_bad("etcd-client-tls", "fail", f"etcd accepts connections without verified client certificates on {_nodes(bad)}",
                     bad, f"in {MANIFESTS}/etcd.yaml: https:// listen URLs only, --client-cert-auth=true, "
                     "--peer-client-cert-auth=true, no --auto-tls")]
    return _ok("etcd-client-tls", f"etcd on {len(etcd)} control plane(s): TLS only, client certificates required") if etcd else []
