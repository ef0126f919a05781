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


def generated(namespace: str, name: str, keys: dict, existing=None) -> dict:
    """A Secret of generated values, made once: when the cluster already has it, its values are kept
    (re-applying must not rotate a password under a running service)."""
    from ccp import redact

    have = existing(namespace, name) if existing else None
    data = {k: (have or {}).get(k) or make() for k, make in keys.items()}
    for value in data.values():
        redact.register(value)
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace}, "stringData": data}


def password() -> str:
    import secrets

    return secrets.token_urlsafe(24)


def grafana_admin(cfg, addon, existing=None) -> list[dict]:
    return [generated(addon.namespace, "grafana-admin", {"admin-user": lambda: "admin", "admin-password": password}, existing)]


BUILDERS = {"vsphere-csi-config": vsphere_csi_config, "vsphere-cpi-credentials": vsphere_cpi_credentials,
            "grafana-admin": grafana_admin}
KEEPS_EXISTING = {"grafana-admin"}


def build(name: str, cfg, addon, existing=None) -> list[dict]:
    """``existing(namespace, name) -> {key: value} | None`` reads a Secret already in the cluster."""
    if name not in BUILDERS:
        raise AddonError(f"add-on {addon.name} asks for an unknown secret {name!r}", "fix its addon.yaml")
    if name in KEEPS_EXISTING:
        return BUILDERS[name](cfg, addon, existing)
    return BUILDERS[name](cfg, addon)
