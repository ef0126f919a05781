"""Drain a node through the Eviction API, so PodDisruptionBudgets decide, with a bounded wait. When a
budget blocks, the error names which PDB blocks which pod and what to do; the node stays cordoned."""

from __future__ import annotations

import time
from typing import Protocol

from ccp.errors import KubernetesError


class DrainPort(Protocol):
    def cordon(self, node: str, unschedulable: bool) -> None: ...
    def pods_on(self, node: str) -> list[dict]: ...
    def pdbs(self) -> list[dict]: ...
    def evict(self, namespace: str, name: str) -> str | None: ...   # None: accepted or gone; else why it was refused
    def pod_exists(self, namespace: str, name: str) -> bool: ...
    def leaving_namespaces(self) -> set[str]: ...   # namespaces being deleted: their pods go with them


def _ref(p: dict) -> str:
    return f"{p['metadata'].get('namespace')}/{p['metadata']['name']}"


def evictable(pods: list[dict]) -> list[dict]:
    """What a drain moves: not DaemonSet pods (they stay), not mirror pods (static), not finished pods."""
    out = []
    for p in pods:
        meta = p["metadata"]
        if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or []):
            continue
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            continue
        if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
            continue   # finished, or already on its way out
        out.append(p)
    return out


def unmanaged(pods: list[dict]) -> list[str]:
    """Pods no controller would re-create: evicting them loses them (kubectl drain refuses them too)."""
    return sorted(_ref(p) for p in pods if not p["metadata"].get("ownerReferences"))


def selects(selector: dict | None, labels: dict) -> bool:
    if not selector:
        return False   # an empty selector in policy/v1 selects nothing worth naming here
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)
        if not ok:
            return False
    return True


def blocking(pdbs: list[dict], pod: dict) -> list[dict]:
    ns, labels = pod["metadata"].get("namespace"), pod["metadata"].get("labels") or {}
    return [b for b in pdbs if b["metadata"].get("namespace") == ns and selects((b.get("spec") or {}).get("selector"), labels)]


def describe_pdb(b: dict) -> str:
    spec, st = b.get("spec") or {}, b.get("status") or {}
    rule = (f"minAvailable {spec['minAvailable']}" if "minAvailable" in spec else
            f"maxUnavailable {spec.get('maxUnavailable')}")
    return (f"PodDisruptionBudget {b['metadata'].get('namespace')}/{b['metadata']['name']} ({rule}; "
            f"{st.get('currentHealthy', '?')} healthy of {st.get('expectedPods', '?')}, {st.get('disruptionsAllowed', 0)} disruptions allowed)")


def tight_budgets(pdbs: list[dict]) -> list[str]:
    """PDBs that would block any drain right now (for the upgrade's preflight)."""
    return [describe_pdb(b) for b in pdbs
            if (b.get("status") or {}).get("disruptionsAllowed", 0) == 0 and (b.get("status") or {}).get("expectedPods", 0)]


def drain(port: DrainPort, node: str, timeout: float, *, say=lambda text: None, clock=time.monotonic,
          sleep=time.sleep, interval: float = 5.0) -> list[str]:
    """-> the pods evicted. Raises KubernetesError naming the blocking PDBs when ``timeout`` passes."""
    pods = port.pods_on(node)
    # a namespace being deleted takes its pods with it, whatever the drain does (and refuses evictions in it):
    # found on real nodes, `ccp node replace` right after an install met the validation's last pod, unmanaged, in
    # its namespace being deleted, and refused to drain
    leaving = port.leaving_namespaces() if pods else set()
    movable = [p for p in evictable(pods) if p["metadata"].get("namespace") not in leaving]
    lost = unmanaged(movable)
    if lost:
        raise KubernetesError(f"{node} runs {len(lost)} pods that no controller manages: a drain would lose them",
                              "delete them, or run them under a Deployment or StatefulSet, then rerun with --resume",
                              lost[:20])
    port.cordon(node, True)
    pending = {_ref(p): p for p in movable}
    say(f"{node}: cordoned; evicting {len(pending)} pods")
    deadline = clock() + timeout
    refused: dict[str, str] = {}
    evicted = []
    while pending:
        for ref, p in list(pending.items()):
            why = port.evict(p["metadata"]["namespace"], p["metadata"]["name"])
            if why is None:
                evicted.append(ref)
                pending.pop(ref)
                refused.pop(ref, None)
            else:
                refused[ref] = why
        if not pending:
            break
        if clock() >= deadline:
            pdbs = port.pdbs()
            details = []
            for ref in sorted(pending):
                names = [describe_pdb(b) for b in blocking(pdbs, pending[ref])]
                details.append(f"pod {ref}: " + ("; ".join(names) if names else refused.get(ref, "eviction refused")))
            first = next((b for ref in sorted(pending) for b in blocking(pdbs, pending[ref])), None)
            fix = (f"let the budget allow one disruption: scale that workload up, or relax it "
                   f"(kubectl -n {first['metadata']['namespace']} edit pdb {first['metadata']['name']}), "
                   if first else "see why the eviction is refused, ")
            raise KubernetesError(
                f"draining {node} stopped after {timeout:.0f}s: {len(pending)} pods may not be evicted"
                + (f" (blocked by PodDisruptionBudget {first['metadata']['namespace']}/{first['metadata']['name']})" if first else ""),
                fix + f"then rerun with --resume; {node} stays cordoned (kubectl uncordon {node} to undo)", details)
        say(f"{node}: {len(pending)} pods wait for their disruption budget ({int(deadline - clock())}s left)")
        sleep(interval)
    end = clock() + max(60.0, timeout)
    while evicted and any(port.pod_exists(*r.split("/", 1)) for r in evicted) and clock() < end:
        sleep(min(interval, 2.0))
    return evicted
