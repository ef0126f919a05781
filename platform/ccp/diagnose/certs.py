"""Days to expiry of every certificate that can take the cluster down: kubeadm's PKI on each control
plane (read over SSH: certificate blocks only, never a key), the kubeconfigs' client certificates and
the serving certificate seen through the API endpoint. Warn below 30 days (or spec.security.certificates'
renewBeforeDays, when the renewal timer should have renewed them by then), fail below 7."""

from __future__ import annotations

import base64
import datetime
import re
import ssl
from dataclasses import dataclass

from ccp.diagnose.base import Finding

WARN_DAYS, FAIL_DAYS = 30, 7
PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
# Printed on a control plane: every certificate kubeadm and the kubelet keep, as "==> PATH" then PEM
# certificate blocks only (kubelet-client-current.pem also holds the private key: sed keeps only the
# certificate), then the client certificates embedded in kubeadm's kubeconfigs.
PKI_SCRIPT = r"""for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt /var/lib/kubelet/pki/kubelet.crt \
  /var/lib/kubelet/pki/kubelet-client-current.pem; do
  [ -f "$f" ] || continue; echo "==> $f"; sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$f"
done
for f in /etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf /etc/kubernetes/controller-manager.conf \
  /etc/kubernetes/scheduler.conf; do
  [ -f "$f" ] || continue; d=$(awk '/client-certificate-data:/{print $2; exit}' "$f")
  [ -n "$d" ] && { echo "==> $f"; echo "$d" | base64 -d; echo; }
done
true"""


@dataclass
class Cert:
    where: str          # "demo-cp-1:/etc/kubernetes/pki/apiserver.crt", "kubeconfig user admin", ...
    subject: str
    not_after: datetime.datetime
    days: float
    warn_days: float = WARN_DAYS

    @property
    def severity(self) -> str:
        return "fail" if self.days < FAIL_DAYS else "warn" if self.days < self.warn_days else "ok"


def parse(where: str, pem: bytes, now: datetime.datetime | None = None) -> list[Cert]:
    from cryptography import x509

    now = now or datetime.datetime.now(datetime.timezone.utc)
    out = []
    for block in PEM.findall(pem):
        try:
            c = x509.load_pem_x509_certificate(block)
        except ValueError:
            continue
        end = c.not_valid_after_utc
        out.append(Cert(where, c.subject.rfc4514_string(), end, (end - now).total_seconds() / 86400))
    return out


def from_pki_listing(node: str, text: str, now=None) -> list[Cert]:
    out = []
    for chunk in text.split("==> ")[1:]:
        path, _, body = chunk.partition("\n")
        out += parse(f"{node}:{path.strip()}", body.encode(), now)
    return out


def from_kubeconfig(path, now=None) -> list[Cert]:
    import yaml

    try:
        doc = yaml.safe_load(open(path).read()) or {}
    except (OSError, yaml.YAMLError):
        return []
    import os

    out = []
    for u in doc.get("users") or []:
        user, where = u.get("user") or {}, f"kubeconfig {path} user {u.get('name')}"
        try:
            if user.get("client-certificate-data"):
                out += parse(where, base64.b64decode(user["client-certificate-data"]), now)
            elif user.get("client-certificate"):   # a file path, relative to the kubeconfig
                cert = os.path.join(os.path.dirname(str(path)), os.path.expanduser(user["client-certificate"]))
                out += parse(where, open(cert, "rb").read(), now)
        except (ValueError, OSError):
            continue
    return out


def served(host: str, port: int, now=None, timeout: float = 10) -> list[Cert]:
    """The certificate the API endpoint presents (fetched without verification: only its dates matter)."""
    pem = ssl.get_server_certificate((host, port), timeout=timeout)
    return parse(f"served at {host}:{port}", pem.encode(), now)


def findings(certs: list[Cert], errors: list[str] = (), renew_before: int | None = None) -> list[Finding]:
    """``renew_before``: the renewal timer's threshold (spec.security.certificates.renewBeforeDays) when it is on:
    kubeadm's certificates below it should have been renewed, and the warning warns below it."""
    out = []
    for c in certs:
        c.warn_days = renew_before or WARN_DAYS
    for c in sorted(certs, key=lambda c: c.days):
        if c.severity == "ok":
            continue
        when = "expired" if c.days < 0 else f"expires in {c.days:.0f} days"
        node = c.where.split(":", 1)[0]
        if "kubeconfig" in c.where:
            fix = "get a fresh kubeconfig from the cluster: ccp apply --config cluster.yaml (its kubeconfig phase fetches it)"
        elif renew_before and ("/etc/kubernetes/" in c.where):
            fix = (f"the renewal timer should have renewed it below {renew_before} days: journalctl -u ccp-cert-renew on "
                   f"{node} says why; or renew now: `ccp certs renew --config cluster.yaml`")
        else:
            fix = "renew: `ccp certs renew --config cluster.yaml` (kubeadm certs renew on each control plane)"
        out.append(Finding("certs", "expiry", c.severity, f"{c.where} {when} ({c.not_after:%Y-%m-%d})", [c.subject], fix))
    fine = [c for c in certs if c.severity == "ok"]
    if fine:
        soon = min(fine, key=lambda c: c.days)
        out.append(Finding("certs", "expiry", "ok", f"{len(fine)} certificates valid for {renew_before or WARN_DAYS}+ days; "
                           f"the soonest: {soon.where} in {soon.days:.0f} days"))
    for e in errors:
        out.append(Finding("certs", "read", "warn", e, [], "check that the host or endpoint is reachable from here"))
    if not certs and not errors:
        out.append(Finding("certs", "expiry", "warn", "no certificate could be read", [],
                           "give --config (reads the control planes' PKI) or a --kubeconfig with client certificates"))
    return out
