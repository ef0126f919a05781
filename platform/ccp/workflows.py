"""The order of phases — defined here and nowhere else, and the only module that imports phases: a
command that runs a phase gets it from here.

New capabilities add their phases to these lists.
"""

from __future__ import annotations

from ccp.engine.phase import Phase


def install() -> list[Phase]:
    from ccp.phases.addons import Addons
    from ccp.phases.backup_schedule import BackupSchedule
    from ccp.phases.cert_renewal import CertAutoRenew
    from ccp.phases.cni import Cni
    from ccp.phases.config_validate import ValidateConfig
    from ccp.phases.hosts_prepare import PrepareHosts
    from ccp.phases.kubeadm import JoinControlPlanes, JoinWorkers, KubeadmInit
    from ccp.phases.kubeconfig import Kubeconfig
    from ccp.phases.kubelet_serving import KubeletServing
    from ccp.phases.loadbalancer import LoadBalancer
    from ccp.phases.nodes_remove import RemoveNodes
    from ccp.phases.preflight_bundle import PreflightBundle
    from ccp.phases.preflight_local import PreflightLocal
    from ccp.phases.preflight_vsphere import PreflightVsphere
    from ccp.phases.provision import Provision
    from ccp.phases.render import Render
    from ccp.phases.security_apply import SecurityApply
    from ccp.phases.validate import Validate

    # kubeconfig comes before cni: the pod network is applied through the API with those credentials.
    # nodes/remove comes before provision: a node leaves the cluster before its VM is deleted.
    # kubelets/serving-certificates comes right after the joins: `kubectl logs` and exec need the kubelets' certificates.
    # security/apply comes after the joins: a cluster that runs already gets a changed spec.security on every
    # control plane, the ones that just joined too.
    return [ValidateConfig(), Render(), PreflightBundle(), PreflightVsphere(), PreflightLocal(), RemoveNodes(), Provision(), PrepareHosts(), LoadBalancer(),
            KubeadmInit(), JoinControlPlanes(), JoinWorkers(), KubeletServing(), SecurityApply(), Kubeconfig(), BackupSchedule(), CertAutoRenew(),
            Cni(), Addons(), Validate()]


def replace(node: str) -> list[Phase]:
    """`ccp node replace`: out of the cluster, a new machine; the install workflow follows."""
    from ccp.phases.node_replace import ReplaceMachine
    from ccp.phases.nodes_remove import ReplaceRemove

    return [ReplaceRemove(node), ReplaceMachine(node)]


def restore(snapshot) -> list[Phase]:
    """`ccp restore`: etcd from a snapshot on every control plane (see ccp.backup.restore); the encryption keys
    the snapshot's data needs are back on every control plane before the API servers start."""
    from ccp.phases.restore import RestoreSnapshot, RestoreStart, RestoreStop, RestoreVerify
    from ccp.phases.restore_keys import RestoreKeys

    return [RestoreVerify(snapshot), RestoreStop(snapshot), RestoreSnapshot(snapshot), RestoreKeys(snapshot),
            RestoreStart(snapshot)]


def rotate_key(key: str) -> list[Phase]:
    """`ccp secrets rotate-key`: the steps Kubernetes documents, named after the new key (ccp.phases.rotate_key)."""
    from ccp.phases.rotate_key import RotateAdd, RotateDrop, RotateNewKey, RotateRewrite, RotateSwitch

    return [RotateNewKey(key), RotateAdd(key), RotateSwitch(key), RotateRewrite(key), RotateDrop(key)]


def upgrade(target: str, steps, bill_of_materials: str | None = None) -> list[Phase]:
    """`ccp upgrade`: a phase for each step of its plan (ccp.upgrade.plan: the order and the batches) —
    preflight, backup, each control plane, the worker batches — then the install's add-ons and validate
    phases again, at the target version (with the target's own bill of materials, when given)."""
    from ccp.phases.addons import Addons
    from ccp.phases.upgrade import AtTarget, UpgradeBackup, UpgradeNodes, UpgradePreflight, UpgradeStage
    from ccp.phases.validate import Validate

    bom = bill_of_materials
    made = {"preflight": lambda s: UpgradePreflight(s, target), "backup": lambda s: UpgradeBackup(s, target),
            "stage": lambda s: UpgradeStage(s, target, bom),
            "control-plane": lambda s: UpgradeNodes(s, target, bom), "workers": lambda s: UpgradeNodes(s, target, bom),
            "addons": lambda s: AtTarget(Addons(), s, target, bom), "validate": lambda s: AtTarget(Validate(), s, target, bom)}
    return [made[s.kind](s) for s in steps]


def certs_renew() -> list[Phase]:
    """`ccp certs renew` ends by applying the kubeconfig phase: admin.conf was renewed with the rest."""
    from ccp.phases.kubeconfig import Kubeconfig

    return [Kubeconfig()]


def destroy() -> list[Phase]:
    from ccp.phases.provision import DestroyMachines

    return [DestroyMachines()]


def on_machines(recorded=()) -> list[str]:
    """The phases whose results live on the machines, which destroying them undoes: the install's from
    provision on, and every other phase among ``recorded`` (the journal's) but destroy's own: an upgrade's
    steps and nodes, a restore, a key rotation. A cluster made again in the same state directory must not
    find them done (an upgrade that "finished" on the machines destroyed would skip every node of the new)."""
    names = [p.name for p in install()]
    day2 = sorted(n for n in recorded if n not in names and not n.startswith("destroy/"))
    return names[names.index("provision"):] + day2


WORKFLOWS = {"install": install, "destroy": destroy}


def tree(workflow: list[Phase]) -> dict[str, list[Phase]]:
    """Phases grouped by the part of their name before '/' (the phase tree `ccp phases` shows)."""
    groups: dict[str, list[Phase]] = {}
    for phase in workflow:
        groups.setdefault(phase.name.split("/", 1)[0], []).append(phase)
    return groups
