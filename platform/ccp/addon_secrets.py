"""Secrets the add-ons need, built in memory at apply time from cluster.yaml. They go straight to the
API server; `ccp addons render` lists them but never writes their contents anywhere."""

from __future__ import annotations

from ccp.errors import AddonError


def _vsphere(cfg):
    vs = cfg.spec.vsphere
    if vs is None:
        raise AddonError("this add-on needs the vsphere section of cluster.yaml", "add spec.vsphere or disable the add-on")
    return vs


def vsphere_csi_config(cfg, addon) -> list[dict]:
    vs = _vsphere(cfg)
    conf = (f"[Global]\ncluster-id = \"{cfg.metadata.name}\"\n\n"
            f"[VirtualCenter \"{vs.host}\"]\ninsecure-flag = \"{str(vs.insecure).lower()}\"\n"
            f"user = \"{vs.username}\"\npassword = \"{vs.password.reveal()}\"\nport = \"{vs.port}\"\n"
            f"datacenters = \"{vs.datacenter}\"\n")
    if vs.thumbprint:
        conf += f"thumbprint = \"{vs.thumbprint}\"\n"
    return [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "vsphere-config-secret", "namespace": addon.namespace},
             "stringData": {"csi-vsphere.conf": conf}}]


def vsphere_cpi_credentials(cfg, addon) -> list[dict]:
    vs = _vsphere(cfg)
    return [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "vsphere-cloud-secret", "namespace": addon.namespace},
             "stringData": {f"{vs.host}.username": vs.username, f"{vs.host}.password": vs.password.reveal()}}]


BUILDERS = {"vsphere-csi-config": vsphere_csi_config, "vsphere-cpi-credentials": vsphere_cpi_credentials}


def build(name: str, cfg, addon) -> list[dict]:
    if name not in BUILDERS:
        raise AddonError(f"add-on {addon.name} asks for an unknown secret {name!r}", "fix its addon.yaml")
    return BUILDERS[name](cfg, addon)
