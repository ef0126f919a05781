"""Kubelet serving certificates (spec.security.certificates.kubeletServing): with serverTLSBootstrap each
kubelet asks the API for its serving certificate — a CertificateSigningRequest for the signer
kubernetes.io/kubelet-serving — and the controller-manager signs it with the cluster CA once it is approved;
the kubelet asks again before it expires. Nothing in Kubernetes approves these requests, and approving
blindly would let any node (or anything holding a node's credentials) get a certificate for another node's
name or address and stand in for it. So ccp approves one only when:

  - a node of cluster.yaml asked for it (user system:node:<name>, group system:nodes), for itself
    (subject CN=system:node:<name>, O=system:nodes);
  - it names that node's name and its cluster.yaml address and nothing else (no other DNS name, address,
    e-mail or URI);
  - its usages are server auth, with at most digital signature and key encipherment besides.

Anything else stays pending, named with the reason. ccp approves at install and on every `ccp apply` (phase
kubelets/serving-certificates), and the certificate renewal timer does the same daily on the control planes
(cert-renew.sh, with the same rules in shell), so the kubelets' own rotation goes through unattended."""

from __future__ import annotations

import base64
import shlex

SIGNER = "kubernetes.io/kubelet-serving"
USAGES = {"digital signature", "key encipherment", "server auth"}
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
CURRENT = "/var/lib/kubelet/pki/kubelet-server-current.pem"
ADMIN = "/etc/kubernetes/admin.conf"
KUBECTL = f"kubectl --kubeconfig {ADMIN}"
LIST = f"{KUBECTL} get csr -o json"
# per node: "none" (no kubelet config: not joined yet), "off" (its kubelet does not bootstrap a serving
# certificate), "want" (none issued yet) or "have"
PROBE = (f"if [ ! -f {KUBELET_CONFIG} ]; then echo none; elif grep -qx 'serverTLSBootstrap: true' {KUBELET_CONFIG}; "
         f"then if [ -f {CURRENT} ]; then echo have; else echo want; fi; else echo off; fi")


def approve_command(name: str) -> str:
    return f"{KUBECTL} certificate approve {shlex.quote(name)}"


def pending(csrs: list[dict]) -> list[dict]:
    """The kubelet-serving requests neither approved nor denied (nor failed)."""
    def decided(c):
        return any(x.get("type") in ("Approved", "Denied", "Failed") for x in (c.get("status") or {}).get("conditions") or [])
    return [c for c in csrs if (c.get("spec") or {}).get("signerName") == SIGNER and not decided(c)]


def node_of(csr: dict) -> str:
    user = (csr.get("spec") or {}).get("username", "")
    return user.removeprefix("system:node:") if user.startswith("system:node:") else ""


def refusal(csr: dict, addresses: dict[str, str]) -> str | None:
    """Why the kubelet-serving request ``csr`` (as the API returns it) must not be approved; None when it is
    safe. ``addresses``: every Kubernetes node of cluster.yaml -> its address."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    spec = csr.get("spec") or {}
    user, node = spec.get("username", ""), node_of(csr)
    if spec.get("signerName") != SIGNER:
        return f"its signer is {spec.get('signerName')}, not {SIGNER}"
    if node not in addresses:
        return f"asked by {user or 'nobody'}, which is not a node of cluster.yaml"
    if "system:nodes" not in (spec.get("groups") or []):
        return f"{user} is not in the group system:nodes"
    usages = set(spec.get("usages") or [])
    if "server auth" not in usages or usages - USAGES:
        return f"it asks for the usages {', '.join(sorted(usages))}: only server auth (with digital signature, key encipherment)"
    try:
        req = x509.load_pem_x509_csr(base64.b64decode(spec.get("request", "")))
    except ValueError:
        return "its request is not a PEM certificate request"
    cn = [a.value for a in req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    org = [a.value for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if cn != [user] or org != ["system:nodes"] or len(req.subject) != 2:
        return f"its subject is {req.subject.rfc4514_string()}, not CN={user},O=system:nodes"
    try:
        names = list(req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return "it names no DNS name or address"
    allowed = {("dns", node), ("ip", addresses[node])}
    asked = [("dns", n.value) if isinstance(n, x509.DNSName) else ("ip", str(n.value)) if isinstance(n, x509.IPAddress)
             else ("other", str(n.value)) for n in names]
    extra = [value for kind, value in asked if (kind, value) not in allowed]
    if extra:
        return f"it asks for {', '.join(extra)}: only {node} and {addresses[node]} (cluster.yaml)"
    return None


def approve_script(nodes: dict[str, str], say: str = "ccp-cert-renew") -> str:
    """POSIX sh for a control plane (the renewal timer's daily run): approve the pending kubelet-serving requests
    that pass the rules of ``refusal`` — ``nodes``: every Kubernetes node of cluster.yaml -> its address —
    and name each one left pending with the reason. Prints what it did; exits 0 unless the API cannot be read."""
    k = KUBECTL
    listing = ("'{range .items[?(@.spec.signerName==\"" + SIGNER + "\")]}{.metadata.name}{\" \"}"
               "{.status.conditions[*].type}{\"\\n\"}{end}'")
    cases = "".join(f"system:node:{n}) want={shlex.quote(f'DNS:{n} IPAddress:{a}')} ;; " for n, a in sorted(nodes.items()))
    return (
        f"list=$({k} get csr -o jsonpath={listing}) || exit 1; "
        "for name in $(printf '%s\\n' \"$list\" | awk 'NF == 1 { print $1 }'); do "
        f"user=$({k} get csr \"$name\" -o jsonpath='{{.spec.username}}'); why=; "
        f"case \"$user\" in {cases}*) echo \"{say}: request $name of $user: not a node of cluster.yaml; not approved\" >&2; "
        "continue ;; esac; node=${user#system:node:}; "
        f"{k} get csr \"$name\" -o jsonpath='{{range .spec.groups[*]}}{{@}}{{\"\\n\"}}{{end}}' | grep -qx system:nodes "
        "|| why=\"$user is not in the group system:nodes\"; "
        f"usages=$({k} get csr \"$name\" -o jsonpath='{{range .spec.usages[*]}}{{@}}{{\"\\n\"}}{{end}}'); "
        "printf '%s\\n' \"$usages\" | grep -qx 'server auth' || why=\"it does not ask for server auth\"; "
        "if printf '%s\\n' \"$usages\" | grep -qvx -e 'server auth' -e 'digital signature' -e 'key encipherment'; then "
        "why=\"it asks for the usages $(printf '%s\\n' \"$usages\" | tr '\\n' ','): only server auth\"; fi; "
        f"text=$({k} get csr \"$name\" -o jsonpath='{{.spec.request}}' | base64 -d | openssl req -noout -text 2>/dev/null) "
        "|| why=\"its request is not a PEM certificate request\"; "
        "subject=$(printf '%s\\n' \"$text\" | sed -n 's/^ *Subject: *//p'); "
        "[ \"$subject\" = \"O = system:nodes, CN = $user\" ] || why=\"its subject is $subject, not O=system:nodes, CN=$user\"; "
        "sans=$(printf '%s\\n' \"$text\" | grep -A1 'X509v3 Subject Alternative Name' | tail -n 1 | tr -d ' ' | tr ',' ' '); "
        "[ -n \"$sans\" ] || why=\"it names no DNS name or address\"; "
        "for san in $sans; do case \" $want \" in *\" $san \"*) ;; *) why=\"it asks for $san: only $want (cluster.yaml)\" ;; "
        "esac; done; "
        f"if [ -n \"$why\" ]; then echo \"{say}: request $name of $node not approved: $why\" >&2; continue; fi; "
        f"{k} certificate approve \"$name\" >/dev/null && echo \"{say}: approved request $name: the serving certificate of $node\"; "
        "done; exit 0")
