"""The order of phases — defined here and nowhere else.

Later capabilities add their phases to these lists (hosts/prepare,
loadbalancer/nginx, kubeadm/init, kubeadm/join-control-plane, kubeadm/join-workers, cni,
kubeconfig, addons, validate).
"""

from __future__ import annotations

from ccp.engine.phase import Phase


def install() -> list[Phase]:
    from ccp.phases.config_validate import ValidateConfig
    from ccp.phases.preflight_vsphere import PreflightVsphere
    from ccp.phases.provision import Provision
    from ccp.phases.render import Render

    return [ValidateConfig(), Render(), PreflightVsphere(), Provision()]


def destroy() -> list[Phase]:
    from ccp.phases.provision import DestroyMachines

    return [DestroyMachines()]


WORKFLOWS = {"install": install, "destroy": destroy}


def tree(workflow: list[Phase]) -> dict[str, list[Phase]]:
    """Phases grouped by the part of their name before '/' (the phase tree `ccp phases` shows)."""
    groups: dict[str, list[Phase]] = {}
    for phase in workflow:
        groups.setdefault(phase.name.split("/", 1)[0], []).append(phase)
    return groups
