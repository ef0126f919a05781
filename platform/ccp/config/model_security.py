"""spec.security: what a fresh cluster's API server is secure with by default — Secrets encrypted at rest,
an audit log, Pod Security admission — and certificates that renew themselves. Part of the model (model.py imports it); split out to keep files small.
How each becomes API server flags and files on the control planes: ccp.render_security."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from ccp.config.secrets import Strict

# a resource, optionally with its API group: secrets, configmaps, deployments.apps (no wildcards: their
# overlap rules are the API server's and easy to get wrong; name what is to be encrypted)
_RESOURCE = re.compile(r"^[a-z][a-z0-9]*(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
Resource = Annotated[str, Field(pattern=_RESOURCE.pattern, max_length=253,
                                description="a resource, with its API group unless it is a core one: secrets, configmaps, "
                                            "deployments.apps")]
Level = Literal["privileged", "baseline", "restricted"]
NamespaceName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]


class Encryption(Strict):
    enabled: bool = Field(True, description="Encrypt Secrets (and `resources`) in etcd with a 32-byte key ccp makes once "
                                            "per cluster and keeps in <state>/secrets/encryption-key (0600).")
    provider: Literal["secretbox", "aescbc"] = Field(
        "secretbox", description="secretbox (XSalsa20-Poly1305: authenticated, the default) or aescbc (AES-CBC, where "
                                 "only AES is allowed; Kubernetes advises against it for its padding-oracle weakness).")
    resources: list[Resource] = Field(["secrets"], min_length=1,
                                      description="What is encrypted; secrets always, e.g. [secrets, configmaps].")

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: list[str]) -> list[str]:
        if "secrets" not in v:
            raise ValueError("Secrets are always encrypted||keep secrets in the list, e.g. [secrets, configmaps]")
        dupes = sorted({r for r in v if v.count(r) > 1})
        if dupes:
            raise ValueError(f"{', '.join(dupes)} listed twice||name each resource once")
        for r in v:
            group = r.partition(".")[2]
            if group == "extensions" or group.startswith("extensions."):
                raise ValueError(f"{r}: the extensions API group has been removed||name the resource in its current group")
            if group == "events.k8s.io":
                raise ValueError(f"{r}: etcd stores these events in the core group||write events instead")
        return v


class Audit(Strict):
    enabled: bool = Field(True, description="The API server writes an audit log on each control plane, "
                                            "/var/log/kubernetes/audit/audit.log (Metadata level; never Secret or "
                                            "ConfigMap bodies).")
    maxAgeDays: int = Field(30, ge=1, le=3650, description="Days a rotated audit log is kept.")
    maxBackups: int = Field(10, ge=1, le=1000, description="Rotated audit logs kept (gzip-compressed).")
    maxSizeMB: int = Field(100, ge=1, le=10240, description="Size in MB at which the audit log is rotated. The most "
                                                            "it takes on a disk is maxSizeMB x (maxBackups + 1).")

    @property
    def budget_mb(self) -> int:
        """The most the audit log can take, counting rotated files as if they were not compressed."""
        return self.maxSizeMB * (self.maxBackups + 1)


class PodSecurity(Strict):
    enabled: bool = Field(True, description="Pod Security admission defaults for namespaces without "
                                            "pod-security.kubernetes.io labels.")
    enforce: Level = Field("baseline", description="Pods that break this level are refused.")
    audit: Level = Field("restricted", description="Pods that break this level are marked in the audit log.")
    warn: Level = Field("restricted", description="Pods that break this level are accepted with a warning to the client.")
    exemptNamespaces: list[NamespaceName] = Field(
        default_factory=list, description="Namespaces exempt from Pod Security, besides kube-system (always exempt). "
                                          "ccp's add-ons that need privileges label their own namespaces instead.")

    @field_validator("exemptNamespaces")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({n for n in v if v.count(n) > 1})
        if dupes:
            raise ValueError(f"{', '.join(dupes)} listed twice||name each namespace once")
        return v


class Certificates(Strict):
    autoRenew: bool = Field(True, description="A systemd timer on each control plane (ccp-cert-renew.timer) checks "
                                              "kubeadm's certificates once a day and, when fewer than renewBeforeDays "
                                              "are left, runs `kubeadm certs renew all` and restarts the static pods. "
                                              "Installed and removed by `ccp install` / `ccp apply` (phase certs/auto-renew).")
    renewBeforeDays: int = Field(30, ge=10, le=180, description="Renew when the soonest of kubeadm's certificates "
                                                                "expires in fewer days than this (they last a year); "
                                                                "`ccp diagnose` warns below it.")
    dailyAt: str = Field("03:00", description="When the first control plane checks, HH:MM in the nodes' local time. Each next "
                                     "control plane checks staggerMinutes later, so no two restart at once.")
    staggerMinutes: int = Field(20, ge=5, le=120, description="Minutes between one control plane's check and the "
                                                              "next one's.")
    kubeletServing: bool = Field(True, description="Each kubelet's serving certificate (the one the API server meets "
                                                   "for logs, exec and metrics) signed by the cluster CA and rotated "
                                                   "by the kubelet (serverTLSBootstrap), not self-signed. ccp approves "
                                                   "a kubelet's request only when it names that node and its "
                                                   "cluster.yaml address and nothing else: at install, on every "
                                                   "`ccp apply`, and daily on the renewal timer. `ccp apply` turns "
                                                   "it on for a running cluster's kubelets; turned off, running "
                                                   "kubelets keep what they have.")

    @field_validator("dailyAt")
    @classmethod
    def _time_of_day(cls, v: str) -> str:
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", v):
            raise ValueError(f"{v!r} is not a time of day||write it as HH:MM, 00:00 to 23:59, e.g. 03:00")
        return v

    def check_time(self, index: int) -> str:
        """The time of day (HH:MM) control plane number ``index`` (0 is the first) checks at."""
        hours, minutes = map(int, self.dailyAt.split(":"))
        at = (hours * 60 + minutes + index * self.staggerMinutes) % (24 * 60)
        return f"{at // 60:02d}:{at % 60:02d}"


class Security(Strict):
    """Applied by a fresh `ccp install` (kubeadm init and the joins), and to a running cluster by `ccp apply` (the
    security/apply phase: one control plane at a time; encryption changes in stages, every Secret rewritten).
    The certificate renewal timer is installed, changed and removed by any `ccp install` or `ccp apply`."""

    encryption: Encryption = Field(default_factory=Encryption)
    audit: Audit = Field(default_factory=Audit)
    podSecurity: PodSecurity = Field(default_factory=PodSecurity)
    certificates: Certificates = Field(default_factory=Certificates)
