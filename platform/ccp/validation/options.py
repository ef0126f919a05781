"""Options for the checks, from cluster.yaml when there is one, from the command line otherwise."""

from __future__ import annotations

from ccp.validation.base import Options


def from_config(cfg, *, nodes=None, storage_class=None, image=None, timeout=None) -> Options:
    """``nodes``: the cluster's inventory with the addresses its machines hold (ClusterContext.nodes); without
    it, a fresh cluster's."""
    from ccp.addons import images_for
    from ccp.config import inventory
    from ccp.config.versions import bom_of

    spec = cfg.spec
    imgs = images_for(cfg, bom_of(cfg))
    nodes = inventory.build(cfg) if nodes is None else nodes
    cps = [n for n in nodes if n.role == inventory.ROLE_CP]
    endpoints = []
    if len(cps) > 1:   # each control plane directly, and the VIP
        endpoints = [f"https://{n.address}:6443" for n in cps] + [f"https://{inventory.api_endpoint(cfg)}"]
    opts = Options(storage_class=storage_class, image=image or imgs["busybox"], query_image=imgs.get("elasticsearch", ""),
                   pvc_size=spec.validation.pvc.size, cross_node=spec.validation.pvc.crossNode,
                   dns_domain=spec.kubernetes.dnsDomain, coredns_skipped=coredns_skipped(cfg),
                   cni_enforces_policy=spec.addons.cni.name != "flannel",
                   monitoring=spec.addons.monitoring.enabled, logging=spec.addons.logging.enabled, endpoints=endpoints)
    if timeout:
        opts.timeout = timeout
    return opts


def coredns_skipped(cfg) -> bool:
    """cluster.yaml skips kubeadm's addon/coredns phase (or all of addon): the cluster has no CoreDNS by design."""
    kubeadm = getattr(cfg.spec.kubernetes, "kubeadm", None)
    return bool({"addon", "addon/coredns"} & set(getattr(kubeadm, "skipPhases", None) or []))
