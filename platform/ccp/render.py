"""Render every file a cluster needs: Terraform, cloud-init, kubeadm, NGINX, keepalived.

Templates render through ccp.templating's environment (StrictUndefined; the add-ons use it too)
and every result is parsed right away (YAML, HCL, JSON), so a template bug fails here, naming the
file, not on a node an hour later. Secrets never reach a template: the vCenter password travels as
TF_VAR_vsphere_password, join tokens are filled in on the node at join time.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ccp import __version__, render_security, resources
from ccp.config import inventory
from ccp.config.inventory import ROLE_CP, ROLE_LB, ROLE_WORKER
from ccp.config.load import Loaded
from ccp.config.versions import bom_of
from ccp.errors import ConfigError, InternalError
from ccp.templating import environment

CRI_SOCKET = "unix:///run/containerd/containerd.sock"
PREPARED_STAMP = "/etc/ccp/prepared"
MANIFEST = ".ccp-rendered.json"
TERRAFORM_FILES = ("versions.tf", "variables.tf", "main.tf", "outputs.tf")


@dataclass
class Rendered:
    files: dict[str, str] = field(default_factory=dict)   # relative path -> content

    def add(self, path: str, content: str) -> None:
        self.files[path] = content

    def by_group(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for path in self.files:
            group = path.split("/", 1)[0]
            out[group] = out.get(group, 0) + 1
        return out


# Where hosts/prepare uploads what an air-gapped node installs (the node scripts read them there)
NODE_PACKAGES_DIR = "/var/lib/ccp/packages"
NODE_IMAGES_DIR = "/var/lib/ccp/images"
KUBEADM_PATCHES_DIR = "/etc/ccp/kubeadm/patches"   # kubernetes.kubeadm.patches, uploaded to every control plane
JOIN_PHASES = ("preflight", "control-plane-prepare", "kubelet-start", "control-plane-join", "wait-control-plane")
NODE_BACKUP_DIR = "/var/lib/ccp/backups"     # spec.backup.schedule: each control plane keeps its own snapshots here


def templates_digest() -> str:
    """Changes whenever any template changes: part of the render phase's fingerprint."""
    h = hashlib.sha256()
    root = resources.templates_dir()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def public_key(loaded: Loaded) -> str:
    """The SSH public key cluster.yaml names (put on every machine ccp makes); a ConfigError saying how to fix it."""
    path = loaded.config.spec.ssh.public_key_path(loaded.base_dir)
    try:
        key = path.read_text().strip()
    except OSError:
        raise ConfigError(f"SSH public key {path} cannot be read",
                          "create a key pair with `ssh-keygen -t ed25519 -f <file>` or set spec.ssh.publicKeyFile") from None
    if "PRIVATE KEY" in key:
        raise ConfigError(f"{path} holds a private key, not a public key",
                          "point spec.ssh.publicKeyFile at the .pub file")
    if not key.startswith(("ssh-", "ecdsa-", "sk-")):
        raise ConfigError(f"{path} does not look like an OpenSSH public key",
                          "point spec.ssh.publicKeyFile at a file such as ~/.ssh/id_ed25519.pub")
    return key


def router_id(cfg) -> int:
    if cfg.spec.loadBalancer.virtualRouterId:
        return cfg.spec.loadBalancer.virtualRouterId
    return zlib.crc32(cfg.metadata.name.encode()) % 254 + 1


def render_all(loaded: Loaded, nodes: list[inventory.Node] | None = None) -> Rendered:
    """Every file, target by target, in the order they are listed, planned and written. ``nodes``: the
    inventory with the addresses an existing cluster's machines hold (ClusterContext.nodes); without
    it, a fresh cluster's."""
    cfg = loaded.config
    nodes = inventory.build(cfg) if nodes is None else nodes
    bom = bom_of(cfg)
    out = Rendered()
    render = _Renderer(out, _common(cfg, nodes, bom))
    _cloud_init(render, loaded, nodes, bom)
    _kubeadm(render, cfg, nodes)
    # spec.security: the API server's encryption, audit and admission files, uploaded to every control plane
    render_security.render(render, cfg.spec.security)
    _node_preparation(out, render, cfg, nodes, bom)
    _load_balancing(render, cfg, nodes)
    _etcd_backups(render, cfg, nodes)
    render_security.render_renewal(render, cfg.spec.security.certificates, inventory.by_role(nodes, ROLE_CP),
                                   inventory.api_endpoint(cfg), [n for n in nodes if n.role != ROLE_LB])
    _cni(render, cfg, bom)
    if cfg.spec.provisioner in ("terraform", "native"):
        _terraform(out, render, cfg, nodes)
    return out


def _common(cfg, nodes, bom) -> dict:
    """What every template may use."""
    spec = cfg.spec
    return {"ccp_version": __version__, "cluster": cfg.metadata.name, "bom": bom, "k8s": spec.kubernetes,
            "image_repository": spec.registryMirror or bom.image_repository,
            "lb": spec.loadBalancer, "cri_socket": CRI_SOCKET, "endpoint": inventory.api_endpoint(cfg),
            "lb_on_control_planes": not inventory.by_role(nodes, ROLE_LB),
            "kubeadm": spec.kubernetes.kubeadm, "kubelet": spec.kubernetes.kubelet, "patches_dir": KUBEADM_PATCHES_DIR,
            "kubelet_serving": spec.security.certificates.kubeletServing,
            "join_skip_phases": [p for p in spec.kubernetes.kubeadm.skipPhases if p.split("/")[0] in JOIN_PHASES],
            # the vSphere cloud provider (CPI) initialises nodes when vSphere CSI is the storage
            "external_cloud": spec.vsphere is not None and spec.addons.storage.provider == "vsphere-csi"}


class _Renderer:
    """render(template, dest, **extra): renders with the common context, parses the result, adds it to
    the tree and returns its text (a later template may embed it)."""

    def __init__(self, out: Rendered, common: dict):
        self.out, self.common, self.env = out, common, environment()

    def __call__(self, template: str, dest: str, **extra) -> str:
        try:
            text = self.env.get_template(template).render(**self.common, **extra)
        except Exception as exc:  # jinja2.UndefinedError, TemplateSyntaxError, ...
            raise InternalError(f"template {template} failed to render {dest}: {exc}",
                                "this is a ccp bug; please report it with the output of --debug") from exc
        _parse_check(dest, text)
        self.out.add(dest, text)
        return text


def _cloud_init(render: _Renderer, loaded: Loaded, nodes, bom) -> None:
    """Every VM ccp creates; static hosts exist already and local machines get no cloud-init."""
    cfg = loaded.config
    spec = cfg.spec
    vms = [] if spec.provisioner in ("static", "local") else nodes
    ssh_key = public_key(loaded) if vms else ""
    for node in vms:
        facts = {"cluster": cfg.metadata.name, "name": node.name, "role": node.role, "pool": node.pool,
                 "address": str(node.address), "kubernetes": bom.kubernetes}
        net_text = render("cloud-init/network-config.j2", f"cloud-init/{node.name}/network-config",
                          node=node, network=spec.nodes.network)
        render("cloud-init/meta-data.j2", f"cloud-init/{node.name}/meta-data", node=node, network_config=net_text)
        render("cloud-init/user-data.j2", f"cloud-init/{node.name}/user-data", node=node,
               ssh_user=spec.ssh.user, ssh_public_key=ssh_key, node_facts=facts)


def _kubeadm(render: _Renderer, cfg, nodes) -> None:
    """init on the first control plane, join everywhere else."""
    spec = cfg.spec
    cps, lbs = inventory.by_role(nodes, ROLE_CP), inventory.by_role(nodes, ROLE_LB)
    sans = [str(spec.loadBalancer.vip)] + [str(n.address) for n in cps] + [n.name for n in cps] + \
        [str(n.address) for n in lbs] + ["localhost", "127.0.0.1"]
    # (the first control plane gets a join file too: replaced, it joins the cluster the others hold)
    for i, node in enumerate(cps):
        if i == 0:
            render("kubeadm/init.yaml.j2", f"kubeadm/{node.name}/init.yaml", node=node, cert_sans=sans,
                   api_server=render_security.api_server(spec.security), hardening=render_security.HARDENING_ARGS)
        render("kubeadm/join.yaml.j2", f"kubeadm/{node.name}/join.yaml", node=node)
    for node in inventory.by_role(nodes, ROLE_WORKER):
        render("kubeadm/join.yaml.j2", f"kubeadm/{node.name}/join.yaml", node=node)


def _node_preparation(out: Rendered, render: _Renderer, cfg, nodes, bom) -> None:
    """Host preparation on every Kubernetes node (not the NGINX machines)."""
    spec = cfg.spec
    k8s = spec.kubernetes
    offline = bool(spec.offline.bundle)   # its packages and images are uploaded by hosts/prepare
    source = ({"kind": "bundle", "path": NODE_PACKAGES_DIR} if k8s.packageBundle or offline else
              {"kind": "repository", "url": k8s.packageRepository or bom.package_repository})
    for node in nodes:
        if node.role == ROLE_LB:
            continue
        _stamped(out, render, "scripts/prepare-node.sh.j2", f"scripts/{node.name}/prepare-node.sh", node=node,
                 stamp=PREPARED_STAMP, max_map_count=262144, kube_version=bom.deb_version, package_source=source,
                 import_images=offline, images_dir=NODE_IMAGES_DIR,
                 pause_image=bom.core_images(spec.registryMirror)["pause"])


def _load_balancing(render: _Renderer, cfg, nodes) -> None:
    """API load balancing: NGINX + keepalived on LB nodes, or keepalived alone on the control planes."""
    spec = cfg.spec
    network = spec.nodes.network
    cps, lbs = inventory.by_role(nodes, ROLE_CP), inventory.by_role(nodes, ROLE_LB)
    vrrp_nodes = lbs or cps
    step = 10
    for i, node in enumerate(vrrp_nodes):
        if lbs:
            render("nginx/nginx.conf.j2", f"nginx/{node.name}/nginx.conf", node=node, control_planes=cps)
            render("nginx/apiserver-health.sh.j2", f"nginx/{node.name}/apiserver-health.sh", node=node,
                   control_planes=cps, interval=2)
            render("nginx/ccp-apiserver-health.service.j2", f"nginx/{node.name}/ccp-apiserver-health.service", node=node)
        render("keepalived/keepalived.conf.j2", f"keepalived/{node.name}/keepalived.conf", node=node,
               peers=vrrp_nodes, interface=network.interface, router_id=router_id(cfg),
               priority=200 - i * step, priority_step=step, prefixlen=network.cidr.prefixlen,
               instance_name=f"{cfg.metadata.name.upper().replace('-', '_')}_API")
        render("keepalived/check_apiserver.sh.j2", f"keepalived/{node.name}/check_apiserver.sh", node=node)
        render("scripts/loadbalancer.sh.j2", f"scripts/{node.name}/loadbalancer.sh", node=node,
               with_nginx=bool(lbs), vip=spec.loadBalancer.vip)


def _etcd_backups(render: _Renderer, cfg, nodes) -> None:
    """Scheduled etcd snapshots on every control plane (spec.backup.schedule)."""
    backup = cfg.spec.backup
    if not backup.schedule:
        return
    from ccp.remote.etcd import CERTS, ETCD, RUNNING

    extra = {"schedule": backup.schedule, "keep": backup.keep, "backup_dir": NODE_BACKUP_DIR,
             "etcd_certs": CERTS, "etcd_exec": ETCD, "etcd_running": RUNNING, "spread": "5min"}
    for node in inventory.by_role(nodes, ROLE_CP):
        render("scripts/etcd-backup.sh.j2", f"scripts/{node.name}/etcd-backup.sh", node=node, **extra)
        for unit in ("service", "timer"):
            render(f"systemd/ccp-etcd-backup.{unit}.j2", f"systemd/{node.name}/ccp-etcd-backup.{unit}", node=node, **extra)


def _cni(render: _Renderer, cfg, bom) -> None:
    from ccp.addons.images import images_for

    cni = cfg.spec.addons.cni.name
    render(f"cni/{cni}.yaml.j2", f"cni/{cni}.yaml", images=images_for(cfg, bom), pod_cidr=str(cfg.spec.kubernetes.podCIDR))


def _stamped(out: Rendered, render, template: str, dest: str, **ctx) -> None:
    """Render a script that carries its own hash, so a host can say which version it last ran."""
    text = render(template, dest, script_hash="@SCRIPT_HASH@", **ctx)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    out.files[dest] = text.replace("@SCRIPT_HASH@", digest)


def script_hash(text: str) -> str:
    """The hash a rendered script stamps on the host (see _stamped)."""
    for line in text.splitlines():
        if line.startswith("echo \"") and PREPARED_STAMP in line:
            return line.split('"')[1]
    return ""


def _terraform(out: Rendered, render, cfg, nodes) -> None:
    """The Terraform module, with every non-secret value in terraform.tfvars.json."""
    spec = cfg.spec
    for name in TERRAFORM_FILES:
        render(f"terraform/vsphere/{name}.j2", f"terraform/{name}")
    v = spec.vsphere
    tfvars = {
        "cluster_name": cfg.metadata.name,
        "vsphere": {"server": v.server, "user": v.username, "insecure": v.insecure, "datacenter": v.datacenter,
                    "cluster": v.cluster, "resource_pool": v.resourcePool or "", "datastore": v.datastore,
                    "network": v.network, "folder": v.folder, "template": v.template},
        "nodes": {n.name: {"role": n.role, "address": str(n.address), "cpus": n.cpus, "memory": n.memoryMiB,
                           "disk_gib": n.diskGiB} for n in nodes},
    }
    out.add("terraform/terraform.tfvars.json", json.dumps(tfvars, indent=2) + "\n")


def _parse_check(dest: str, text: str) -> None:
    """Parse what was just rendered; a failure is a ccp bug and says which file."""
    try:
        if dest.endswith((".yaml", "user-data", "meta-data", "network-config")):
            from ccp import yaml_check   # loads it as the safe loader would, building fewer objects

            if not yaml_check.any_document(text):
                raise ValueError("empty document")
        elif dest.endswith(".tf"):
            try:
                import hcl2   # a test extra: terraform itself parses the module before planning
            except ImportError:
                return
            hcl2.loads(text)
        elif dest.endswith(".json"):
            json.loads(text)
    except Exception as exc:
        raise InternalError(f"rendered {dest} does not parse: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                            "this is a ccp bug; please report it with the output of --debug") from exc


# ------------------------------------------------------------------ writing the tree

@dataclass
class Change:
    action: str   # create | update | delete | keep
    path: str


def diff(rendered: Rendered, out_dir: Path) -> list[Change]:
    """What writing ``rendered`` into ``out_dir`` would change; only files ccp wrote are ever deleted."""
    previous = _manifest(out_dir)
    changes: list[Change] = []
    for rel, text in rendered.files.items():
        p = out_dir / rel
        if not p.exists():
            changes.append(Change("create", rel))
        elif p.read_bytes() != text.encode():
            changes.append(Change("update", rel))
        else:
            changes.append(Change("keep", rel))
    for rel in sorted(set(previous) - set(rendered.files)):
        if (out_dir / rel).exists():
            changes.append(Change("delete", rel))
    return changes


def write(rendered: Rendered, out_dir: Path, changes: list[Change] | None = None) -> list[Change]:
    from ccp.engine.files import atomic_write, ensure_dir

    changes = diff(rendered, out_dir) if changes is None else changes
    ensure_dir(out_dir)
    for ch in changes:
        target = out_dir / ch.path
        if ch.action in ("create", "update"):
            ensure_dir(target.parent)
            atomic_write(target, rendered.files[ch.path], fsync=False)
        elif ch.action == "delete":
            target.unlink(missing_ok=True)
            _prune_empty(target.parent, out_dir)
    manifest = {rel: hashlib.sha256(text.encode()).hexdigest() for rel, text in sorted(rendered.files.items())}
    atomic_write(out_dir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return changes


def _manifest(out_dir: Path) -> dict[str, str]:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def _prune_empty(d: Path, stop: Path) -> None:
    while d != stop and d.is_dir() and not any(d.iterdir()):
        d.rmdir()
        d = d.parent


def terraform_env(loaded: Loaded) -> dict[str, str]:
    """The environment the Terraform driver passes: the password never touches disk."""
    return {**os.environ, "TF_VAR_vsphere_password": loaded.config.spec.vsphere.password.reveal()}
