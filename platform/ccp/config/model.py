"""The cluster.yaml contract, as pydantic v2 models.

Field names are the YAML keys (camelCase), so an error's location is the path the user wrote.
Unknown keys are errors (extra="forbid"). Checks that span fields live in semantics.py, where
each problem names the exact field to fix.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator

from ccp.config.model_build import Kubeadm, Kubelet, KubeProxy, LocalMachines, _beside_config, _path  # noqa: F401
from ccp.config.model_security import Security
from ccp.config.secrets import FromEnv, FromFile, Secret, SecretValue, Strict  # noqa: F401  (part of the contract)

# ---------------------------------------------------------------- helpers

# A pre-release suffix (1.35.0-alpha.0) is accepted for builds of one's own (kubernetes.billOfMaterials).
_K8S_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.]+)?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$")
_DURATION = re.compile(r"^[0-9]+(h|d|w|y)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

Quantity = Annotated[str, Field(pattern=_QUANTITY.pattern, description="Kubernetes quantity, e.g. 50Gi")]
Duration = Annotated[str, Field(pattern=_DURATION.pattern, description="Retention, e.g. 15d, 12h, 2w")]
DnsLabel = Annotated[str, Field(pattern=_DNS_LABEL.pattern, max_length=40,
                                description="lower-case letters, digits and '-'")]


# ---------------------------------------------------------------- spec sections

class Metadata(Strict):
    name: DnsLabel = Field(description="Cluster name: VM names, the state directory and the kubeconfig context derive from it.")


class Kubernetes(Strict):
    version: str = Field(description="Kubernetes version MAJOR.MINOR.PATCH; `ccp version` lists the supported minors.")
    billOfMaterials: str | None = Field(None, description="A bill of materials of one's own (a custom or mirrored "
                                                          "build: versions, images, node packages) instead of ccp's; "
                                                          "YAML, relative to cluster.yaml. See examples/lab/bom.yaml.")
    kubeadm: Kubeadm = Field(default_factory=Kubeadm)
    kubelet: Kubelet = Field(default_factory=Kubelet)
    kubeProxy: KubeProxy = Field(default_factory=KubeProxy)
    podCIDR: ipaddress.IPv4Network = Field(ipaddress.IPv4Network("10.244.0.0/16"), description="Pod network.")
    serviceCIDR: ipaddress.IPv4Network = Field(ipaddress.IPv4Network("10.96.0.0/12"), description="Service network.")
    dnsDomain: str = Field("cluster.local", description="Cluster DNS domain.")
    packageRepository: str | None = Field(None, description="An apt repository (mirror) with kubeadm, kubelet and kubectl; default: the upstream one for the minor.")
    packageBundle: str | None = Field(None, description="Air-gapped: a local directory of .deb files (kubeadm, kubelet, kubectl, cri-tools, kubernetes-cni) that ccp uploads to every node.")

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_text(cls, v: Any) -> Any:
        if isinstance(v, (int, float)):
            raise ValueError(f"YAML read the version as a number ({v})||"
                             f'quote it and give the patch: version: "{v}.0"')
        if isinstance(v, str) and v.startswith("v"):
            v = v[1:]
        if isinstance(v, str) and not _K8S_VERSION.match(v):
            raise ValueError(f"{v!r} is not MAJOR.MINOR.PATCH||write it like \"1.36.2\"")
        return v

    @field_validator("billOfMaterials", mode="after")
    @classmethod
    def _bom_file(cls, v: str | None, info) -> str | None:
        if v is None:
            return v
        from ccp.config.versions import load_custom

        path = _beside_config(v, info)
        load_custom(path)   # a missing or malformed file is a config error here, at its field
        return str(path)

    @property
    def minor(self) -> str:
        major, minor, _ = self.version.split("-")[0].split(".")
        return f"{major}.{minor}"


class VSphere(Strict):
    server: str = Field(description="vCenter host name or address, optionally host:port.")
    username: str
    password: SecretValue = Field(description="{fromEnv: NAME}, {fromFile: PATH}, or a literal (warned).")
    insecure: bool = Field(False, description="Skip TLS verification. Prefer caFile or thumbprint.")
    caFile: str | None = Field(None, description="PEM file of the CA that signed vCenter's certificate.")
    thumbprint: str | None = Field(None, description="SHA-1, SHA-256 or SHA-512 thumbprint of vCenter's certificate (hex, colons allowed).")
    datacenter: str
    cluster: str
    resourcePool: str | None = Field(None, description="Resource pool path; default: the cluster's root pool.")
    datastore: str
    network: str
    folder: str = Field(description="VM folder for this cluster's VMs (a path below the datacenter's VM folder).")
    template: str = Field(description="Template (or VM) to clone nodes from.")
    parallelism: int = Field(8, ge=1, le=64, description="VMs created or destroyed at once (native provisioner).")
    ipTimeoutSeconds: int = Field(600, ge=10, le=7200, description="How long to wait for each VM to report its IP.")
    timeoutSeconds: int = Field(60, ge=5, le=3600, description="Connect and read timeout of each vCenter request: a "
                                "vCenter that accepts the connection but does not answer fails after this long.")

    @property
    def poll_seconds(self) -> int:
        """Long polls (WaitForUpdatesEx) end well within the read timeout."""
        return max(1, min(30, self.timeoutSeconds // 2))

    @field_validator("server")
    @classmethod
    def _server(cls, v: str) -> str:
        if "://" in v or "/" in v:
            raise ValueError(f"{v!r} is not a host name||give a host name or host:port, without scheme or path")
        host, _, port = v.rpartition(":") if v.count(":") == 1 else (v, "", "")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"port {port!r} is not a number from 1 to 65535")
        if not host:
            raise ValueError("server is empty")
        return v

    @field_validator("thumbprint")
    @classmethod
    def _thumbprint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        digits = v.replace(":", "").lower()
        if len(digits) not in (40, 64, 128) or any(c not in "0123456789abcdef" for c in digits):
            raise ValueError("not a SHA-1/256/512 thumbprint||copy it from `openssl s_client -connect HOST:443 </dev/null | "
                             "openssl x509 -noout -fingerprint -sha256`")
        return v

    @property
    def host(self) -> str:
        return self.server.rsplit(":", 1)[0] if self.server.count(":") == 1 else self.server

    @property
    def port(self) -> int:
        return int(self.server.rsplit(":", 1)[1]) if self.server.count(":") == 1 else 443


class NodeNetwork(Strict):
    cidr: ipaddress.IPv4Network = Field(description="Node network, e.g. 10.10.0.0/24.")
    gateway: ipaddress.IPv4Address
    dns: list[ipaddress.IPv4Address] = Field(min_length=1)
    addresses: str | None = Field(None, description="Static range for nodes and load balancers: FIRST-LAST (not used with provisioner: static).",
                                  pattern=r"^\s*\d+\.\d+\.\d+\.\d+\s*-\s*\d+\.\d+\.\d+\.\d+\s*$")
    interface: str = Field("ens192", description="Guest NIC name (vmxnet3 on Ubuntu: ens192).")
    searchDomains: list[str] = Field(default_factory=list)

    @field_validator("cidr", mode="before")
    @classmethod
    def _strict_cidr(cls, v: Any) -> Any:
        # a bare number or boolean would become a /32 network (YAML `cidr: false` is 0.0.0.0/32)
        if not isinstance(v, str) or "/" not in v:
            raise ValueError("expected a network with its prefix length||write it like 10.10.0.0/24")
        try:
            net = ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ValueError(f"{v} is not a network||write it like 10.10.0.0/24") from None
        if str(net) != v.strip():
            raise ValueError(f"{v} has host bits set||did you mean {net}?")
        if net.prefixlen > 30:
            raise ValueError(f"{v} has no room for nodes||a node network needs at least a /30, usually a /24")
        return v

    def address_range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        first, last = (ipaddress.IPv4Address(p.strip()) for p in self.addresses.split("-"))
        return first, last


class Machine(Strict):
    count: int = Field(ge=0, le=1000)
    cpus: int = Field(2, ge=1, le=768)
    memoryMiB: int = Field(4096, ge=512)
    diskGiB: int = Field(40, ge=10)


class ControlPlane(Machine):
    count: int = Field(3, ge=0, le=9, description="1, 3, 5, 7 or 9: etcd needs an odd number.")


class WorkerPool(Machine):
    name: DnsLabel


class Nodes(Strict):
    network: NodeNetwork
    controlPlane: ControlPlane = Field(default_factory=ControlPlane)
    workers: list[WorkerPool] = Field(default_factory=list)


class StaticHost(Strict):
    address: ipaddress.IPv4Address
    role: Literal["control-plane", "worker", "loadbalancer"]
    name: DnsLabel | None = Field(None, description="Node name; default <cluster>-<cp|worker|lb>-<n>.")


class TerraformOptions(Strict):
    binary: str = Field("terraform", description="The terraform executable.")
    providerMirror: str | None = Field(None, description="Directory with a provider mirror (terraform providers mirror) for air-gapped use.")


class NginxLB(Strict):
    count: int = Field(2, ge=0, le=9, description="0: keepalived holds the VIP on the control planes (no load balancing, only failover).")
    cpus: int = Field(2, ge=1)
    memoryMiB: int = Field(2048, ge=512)
    diskGiB: int = Field(20, ge=10)


class LoadBalancer(Strict):
    vip: ipaddress.IPv4Address = Field(description="Virtual IP of the Kubernetes API, held by keepalived.")
    port: int = Field(6443, ge=1, le=65535)
    virtualRouterId: int | None = Field(None, ge=1, le=255,
                                        description="VRRP router id; default derived from the cluster name. Must be unique on the L2 segment.")
    nginx: NginxLB = Field(default_factory=NginxLB)


class Bastion(Strict):
    address: str = Field(description="Jump host reachable from here that can reach the nodes.")
    port: int = Field(22, ge=1, le=65535)
    user: str | None = Field(None, description="Default: ssh.user.")


class SSH(Strict):
    user: str = Field("ccp", pattern=r"^[a-z_][a-z0-9_-]*$")
    privateKeyFile: str = Field("~/.ssh/id_ed25519", description="Private key ccp uses to reach the nodes.")
    publicKeyFile: str | None = Field(None, description="Public key put on the nodes; default: privateKeyFile + '.pub'.")
    port: int = Field(22, ge=1, le=65535)
    bastion: Bastion | None = None
    knownHostsFile: str | None = Field(None, description="Host keys known beforehand (OpenSSH known_hosts); others are pinned on first contact.")
    parallelism: int = Field(16, ge=1, le=256, description="Hosts worked on at once.")
    commandTimeoutSeconds: int = Field(900, ge=10, le=7200)

    def public_key_path(self, base_dir: Path) -> Path:
        return _path(self.publicKeyFile or self.privateKeyFile + ".pub", base_dir)

    def private_key_path(self, base_dir: Path) -> Path:
        return _path(self.privateKeyFile, base_dir)


class CNI(Strict):
    name: Literal["kube-router", "flannel"] = "kube-router"


class Storage(Strict):
    provider: Literal["vsphere-csi", "local-path"] = "vsphere-csi"
    defaultClass: bool = True
    localPath: str = Field("/var/lib/ccp/local-path", description="Node directory for provider: local-path volumes.")


class Ingress(Strict):
    enabled: bool = True
    serviceType: Literal["LoadBalancer", "NodePort"] = "NodePort"
    replicas: int = Field(2, ge=1, le=20)


class Monitoring(Strict):
    enabled: bool = True
    retention: Duration = "15d"
    storage: Quantity = "50Gi"


class Logging(Strict):
    enabled: bool = True
    retention: Duration = "7d"
    storage: Quantity = "100Gi"
    replicas: int = Field(3, ge=1, le=15)


class Addons(Strict):
    cni: CNI = Field(default_factory=CNI)
    storage: Storage = Field(default_factory=Storage)
    ingress: Ingress = Field(default_factory=Ingress)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    logging: Logging = Field(default_factory=Logging)


class PVCValidation(Strict):
    enabled: bool = True
    size: Quantity = "1Gi"
    crossNode: bool = True


class Validation(Strict):
    pvc: PVCValidation = Field(default_factory=PVCValidation)


class Offline(Strict):
    bundle: str | None = Field(None, description="An offline bundle made by `ccp bundle create`: the install's preflight "
                                                 "verifies it holds everything this cluster needs (path relative to cluster.yaml).")


class Upgrade(Strict):
    maxUnavailable: int = Field(1, ge=1, le=100, description="Workers upgraded at once (after a first canary).")
    drainTimeoutSeconds: int = Field(300, ge=10, le=7200,
                                     description="How long a drain may wait on PodDisruptionBudgets before it stops.")


class Backup(Strict):
    schedule: str | None = Field(None, description="When each control plane takes its own etcd snapshot: a systemd OnCalendar "
                                                   "expression such as daily, hourly or '*-*-* 02:30:00'. Unset: no schedule.")
    keep: int = Field(7, ge=1, le=1000, description="How many snapshots to keep: on each control plane for the schedule, "
                                                  "and in <state>/backups for ccp backup.")

    @field_validator("schedule")
    @classmethod
    def _calendar(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or len(v) > 100 or not re.fullmatch(r"[A-Za-z0-9*,./:~ -]+", v)):
            raise ValueError("schedule must be a systemd OnCalendar expression such as daily, hourly or '*-*-* 02:30:00'")
        return v.strip() if v else v


class Spec(Strict):
    kubernetes: Kubernetes
    vsphere: VSphere | None = Field(None, description="Required unless provisioner is static.")
    provisioner: Literal["terraform", "native", "static", "local"] = "terraform"
    local: LocalMachines = Field(default_factory=LocalMachines, description="provisioner: local — machines on this host.")
    terraform: TerraformOptions = Field(default_factory=TerraformOptions)
    hosts: list[StaticHost] = Field(default_factory=list, description="Existing machines, for provisioner: static.")
    nodes: Nodes
    loadBalancer: LoadBalancer
    ssh: SSH = Field(default_factory=SSH)
    addons: Addons = Field(default_factory=Addons)
    validation: Validation = Field(default_factory=Validation)
    upgrade: Upgrade = Field(default_factory=Upgrade)
    backup: Backup = Field(default_factory=Backup)
    offline: Offline = Field(default_factory=Offline)
    security: Security = Field(default_factory=Security, description="Secrets encrypted at rest, an audit log and "
                               "Pod Security admission: on by default, set up by a fresh install; certificates "
                               "renewed on a timer on each control plane.")
    registryMirror: str | None = Field(None, description="Pull every add-on and CNI image from this registry (host[:port][/path]) instead.")


class ClusterConfig(Strict):
    """A ccp cluster: everything `ccp install` needs to build it."""

    model_config = ConfigDict(extra="forbid", title="ccp Cluster (ccp.io/v1alpha1)")

    apiVersion: Literal["ccp.io/v1alpha1"]
    kind: Literal["Cluster"]
    metadata: Metadata
    spec: Spec

    @property
    def name(self) -> str:
        return self.metadata.name
