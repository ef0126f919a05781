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


def elastic_stack(cfg, addon, existing=None) -> list[dict]:
    """Passwords and the TLS certificate of Elasticsearch (a CA of its own, a wildcard node
    certificate so replicas can grow). Made once; the CA key is not kept anywhere."""
    ns = addon.namespace
    creds = generated(ns, "elastic-credentials", {
        "elastic-password": password, "kibana-password": password, "logstash-password": password,
        "kibana-encryption-key": lambda: password() + password()}, existing)
    have = existing(ns, "elasticsearch-certs") if existing else None
    certs = have if have and {"ca.crt", "tls.crt", "tls.key"} <= set(have) else _es_certs(ns)
    from ccp import redact

    redact.register(certs["tls.key"])
    return [creds, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": "elasticsearch-certs", "namespace": ns}, "stringData": certs}]


def _es_certs(ns: str) -> dict[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ccp logging CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names = ["elasticsearch", f"elasticsearch.{ns}", f"elasticsearch.{ns}.svc", f"*.elasticsearch-headless.{ns}.svc",
             f"*.elasticsearch-headless.{ns}.svc.cluster.local", "elasticsearch-headless", "localhost"]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "elasticsearch")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1825))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {"ca.crt": ca.public_bytes(pem).decode(), "tls.crt": cert.public_bytes(pem).decode(),
            "tls.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()}


BUILDERS = {"vsphere-csi-config": vsphere_csi_config, "vsphere-cpi-credentials": vsphere_cpi_credentials,
            "grafana-admin": grafana_admin, "elastic-stack": elastic_stack}
KEEPS_EXISTING = {"grafana-admin", "elastic-stack"}


def build(name: str, cfg, addon, existing=None) -> list[dict]:
    """``existing(namespace, name) -> {key: value} | None`` reads a Secret already in the cluster."""
    if name not in BUILDERS:
        raise AddonError(f"add-on {addon.name} asks for an unknown secret {name!r}", "fix its addon.yaml")
    if name in KEEPS_EXISTING:
        return BUILDERS[name](cfg, addon, existing)
    return BUILDERS[name](cfg, addon)
