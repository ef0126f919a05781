"""The order of an upgrade, computed before anything changes (``ccp upgrade --dry-run`` prints it):
preflight, backup, (air-gapped) the target's packages and images onto every node, each control plane
in turn, a canary worker, then workers in batches of spec.upgrade.maxUnavailable, the add-ons from the
new bill of materials, the validation gate."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Step:
    key: str                 # the journal key: "upgrade/<target>/<kind>/<first node or ->"
    kind: str                # preflight | backup | stage | control-plane | workers | addons | validate
    nodes: list[str] = field(default_factory=list)
    detail: str = ""


def node_key(target: str, node: str) -> str:
    """A node's own record, the moment it is Ready at the target (a batch resumes with the nodes not done)."""
    return f"upgrade/{target}/node/{node}"


def journal_keys(steps: list[Step], target: str) -> list[str]:
    """Every record an upgrade along ``steps`` can leave: its steps' and its nodes'."""
    return [s.key for s in steps] + [node_key(target, n) for s in steps for n in s.nodes]


def plan(cfg, current: str, target: str) -> list[Step]:
    from ccp.config import inventory

    nodes = inventory.build(cfg)
    cps = [n.name for n in nodes if n.role == inventory.ROLE_CP]
    workers = [n.name for n in nodes if n.role == inventory.ROLE_WORKER]
    batch = cfg.spec.upgrade.maxUnavailable
    v = f"v{target}"

    def key(kind, first="-"):
        return f"upgrade/{target}/{kind}/{first}"

    steps = [Step(key("preflight"), "preflight", [], f"nodes Ready, etcd healthy, one API server version, disk, "
                                                    f"certificates, PodDisruptionBudgets; {current} -> {target}"),
             Step(key("backup"), "backup", cps[:1], "etcd snapshot and PKI, verified, under <state>/backups/")]
    if cfg.spec.offline.bundle:   # air-gapped: the target's packages and images reach every node first
        steps.append(Step(key("stage"), "stage", cps + workers, f"the {target} packages and images from the offline "
                                                                "bundle onto every node; images imported"))
    for i, cp in enumerate(cps):
        how = f"kubeadm upgrade apply {v}" if i == 0 else "kubeadm upgrade node"
        steps.append(Step(key("control-plane", cp), "control-plane", [cp],
                          f"kubeadm {target}, {how}, kubelet and kubectl {target}, Ready and the API through the VIP"))
    batches = ([workers[:1]] if workers else []) + [workers[i:i + batch] for i in range(1, len(workers), batch)]
    for i, b in enumerate(batches):
        what = "canary" if i == 0 else f"batch {i} of {len(batches) - 1}"
        steps.append(Step(key("workers", b[0]), "workers", b,
                          f"{what}: cordon, drain (PDBs honoured), kubeadm upgrade node, kubelet {target}, uncordon, Ready"))
    steps.append(Step(key("addons"), "addons", [], f"add-ons re-applied from the {target} bill of materials"))
    steps.append(Step(key("validate"), "validate", [], "the checks of ccp validate"))
    return steps
