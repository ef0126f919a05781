"""What diagnose and certs check talk to: the cluster context (vSphere, SSH) and a Kubernetes port."""

from __future__ import annotations

import contextlib
from pathlib import Path


@contextlib.contextmanager
def open_targets(ctx, config: Path | None, kubeconfig: Path | None, chosen: set[str]):
    """``with open_targets(...) as (cctx, kube, kube_path):`` the ClusterContext (None without --config), the
    diagnose port and the kubeconfig (None without one); the context's sessions are closed at the end.

    A cluster without a kubeconfig yet still gets its vSphere and host checks: the Kubernetes part is
    then reported as not run, instead of stopping the whole diagnosis."""
    from ccp.cli.common import cluster_run, kubeconfig_for, load_config
    from ccp.errors import ConfigError

    loaded = load_config(config, quiet=True, defer_secrets=True) if config else None
    with cluster_run(ctx, loaded, "diagnose") if loaded else contextlib.nullcontext((None, None)) as (cctx, _):
        kube = kube_path = None
        if {"kubernetes", "addons", "certs", "hardening"} & chosen:
            try:
                kube_path = kubeconfig_for(ctx, kubeconfig, loaded)
            except ConfigError:
                if loaded is None:
                    raise
            if kube_path is not None:
                from ccp.diagnose.port import LightkubeDiagnose

                kube = LightkubeDiagnose(kube_path)
        yield cctx, kube, kube_path
