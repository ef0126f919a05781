"""What diagnose and certs check talk to: the cluster context (vSphere, SSH) and a Kubernetes port."""

from __future__ import annotations

from pathlib import Path


def open_targets(ctx, config: Path | None, kubeconfig: Path | None, chosen: set[str]):
    """-> (ClusterContext or None, diagnose port or None, kubeconfig path or None).

    A cluster without a kubeconfig yet still gets its vSphere and host checks: the Kubernetes part is
    then reported as not run, instead of stopping the whole diagnosis."""
    from ccp.cli.common import cluster_context, kubeconfig_for, load_config
    from ccp.errors import ConfigError

    loaded = load_config(config, quiet=True, defer_secrets=True) if config else None
    cctx = None
    if loaded:
        from ccp.engine.runner import recall_outputs

        cctx, journal, _ = cluster_context(ctx, loaded, "diagnose")
        recall_outputs(cctx, journal.records())   # the machines' addresses the install recorded
    kube = kube_path = None
    if {"kubernetes", "addons", "certs"} & chosen:
        try:
            kube_path = kubeconfig_for(ctx, kubeconfig, loaded)
        except ConfigError:
            if loaded is None:
                raise
        if kube_path is not None:
            from ccp.diagnose.port import LightkubeDiagnose

            kube = LightkubeDiagnose(kube_path)
    return cctx, kube, kube_path
