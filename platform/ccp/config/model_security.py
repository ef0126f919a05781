"""spec.security: what a fresh cluster's API server is secure with by default — Secrets encrypted at rest,
an audit log, Pod Security admission. Part of the model (model.py imports it); split out to keep files small.
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


class Security(Strict):
    """Applied by a fresh `ccp install` (kubeadm init and the joins): the API server's flags are fixed at init."""

    encryption: Encryption = Field(default_factory=Encryption)
    audit: Audit = Field(default_factory=Audit)
    podSecurity: PodSecurity = Field(default_factory=PodSecurity)
