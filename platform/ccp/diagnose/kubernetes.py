"""Kubernetes findings from one snapshot: one list call per kind (never one call per pod), then
checks that are plain functions over the API's JSON, so 10,000 pods cost one pass (triage)."""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field

from ccp.diagnose.base import Finding, sample, sample_sorted

# kubeadm's static pods carry tier=control-plane and component=<name>
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
BAD_WAITING = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
               "CreateContainerError", "InvalidImageName", "RunContainerError"}


@dataclass
class Snapshot:
    nodes: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)
    pvcs: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    markers: list[dict] = field(default_factory=list)      # ccp's add-on marker ConfigMaps
    workloads: list[dict] = field(default_factory=list)    # Deployments, DaemonSets, StatefulSets labelled ccp.io/addon
    readyz: str = ""                                       # /readyz?verbose
    readyz_ok: bool = True


@dataclass
class PodTriage:
    """What the checks and the bundle need from the pods, in one walk over them. Each walk over
    10,000 pods costs more per pod than one over 1,000 (they no longer fit in the CPU's caches), so
    the checks share this one instead of walking the pods each."""
    control_plane: list[dict] = field(default_factory=list)              # tier=control-plane, any namespace
    problems: list[tuple[dict, str, str]] = field(default_factory=list)  # (pod, reason, detail), in pod order


def triage(s: Snapshot) -> PodTriage:
    t = PodTriage()
    for p in s.pods:
        if (p["metadata"].get("labels") or _EMPTY).get("tier") == "control-plane":
            t.control_plane.append(p)
        problem = pod_problem(p)
        if problem:
            t.problems.append((p, *problem))
    return t


def _name(obj: dict) -> str:
    m = obj.get("metadata") or {}
    return f"{m['namespace']}/{m['name']}" if m.get("namespace") else m.get("name", "?")


_EMPTY: dict = {}   # read-only stand-in for an absent field: `or {}` would make a dict per pod and field


def _cond(obj: dict, kind: str) -> dict | None:
    for c in (obj.get("status") or _EMPTY).get("conditions") or ():
        if c.get("type") == kind:
            return c
    return None


def nodes(s: Snapshot) -> list[Finding]:
    out, bad = [], []
    for n in s.nodes:
        ready = _cond(n, "Ready")
        if not ready or ready.get("status") != "True":
            why = f"{ready.get('reason', '')}: {ready.get('message', '')}" if ready else "no Ready condition"
            bad.append(n["metadata"]["name"])
            out.append(Finding("kubernetes", "node-ready", "fail", f"node {n['metadata']['name']} is not Ready", [why],
                               "look at the kubelet on it: `ccp diagnose --only hosts`, or journalctl -u kubelet there"))
        for p in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            c = _cond(n, p)
            if c and c.get("status") == "True":
                out.append(Finding("kubernetes", "node-pressure", "warn", f"node {n['metadata']['name']} reports {p}",
                                   [c.get("message", "")], "free memory, disk or processes on that node, or add nodes"))
        if (n.get("spec") or {}).get("unschedulable"):
            out.append(Finding("kubernetes", "node-cordoned", "warn", f"node {n['metadata']['name']} is cordoned",
                               [], f"kubectl uncordon {n['metadata']['name']} when its maintenance is over"))
    if not s.nodes:
        out.append(Finding("kubernetes", "node-ready", "fail", "the cluster has no nodes", [], "join nodes: `ccp install --resume`"))
    elif not bad:
        out.append(Finding("kubernetes", "node-ready", "ok", f"all {len(s.nodes)} nodes are Ready"))
    return out


def control_plane(s: Snapshot, tri: PodTriage | None = None) -> list[Finding]:
    out = []
    failed = [line[3:].strip() for line in s.readyz.splitlines() if line.startswith("[-]")]
    if not s.readyz_ok or failed:
        out.append(Finding("kubernetes", "apiserver-readyz", "fail", "the API server is not ready", sample(failed or [s.readyz[:300]]),
                           "etcd failures: check the etcd pods and the control planes' disks; then the API server's log"))
    else:
        checks = sum(1 for line in s.readyz.splitlines() if line.startswith("[+]"))
        etcd = "etcd ok" if "[+]etcd " in s.readyz or "[+]etcd\n" in s.readyz + "\n" else "etcd not listed"
        out.append(Finding("kubernetes", "apiserver-readyz", "ok", f"/readyz: {checks} checks pass ({etcd})"))
    tri = tri or triage(s)
    static = [p for p in tri.control_plane if p["metadata"].get("namespace") == "kube-system"]
    if not static:
        out.append(Finding("kubernetes", "control-plane-pods", "ok",
                           "no static control-plane pods are visible (not a kubeadm control plane, or mirror pods are off)"))
        return out
    down = []
    for p in static:
        ready = _cond(p, "Ready")
        if (p.get("status") or {}).get("phase") != "Running" or not ready or ready.get("status") != "True":
            down.append(f"{_name(p)}: {(p.get('status') or {}).get('phase')}, {_waiting(p) or 'not ready'}")
    per = defaultdict(int)
    for p in static:
        per[(p["metadata"].get("labels") or {}).get("component", "?")] += 1
    have = ", ".join(f"{c} x{per[c]}" for c in CONTROL_PLANE if per[c])
    if down:
        out.append(Finding("kubernetes", "control-plane-pods", "fail", f"{len(down)} control-plane pods are not ready", down,
                           "on that control plane: crictl ps -a and the static pod's log (/var/log/pods)"))
    else:
        out.append(Finding("kubernetes", "control-plane-pods", "ok", f"control plane ready: {have}"))
    return out


def _waiting(pod: dict) -> str:
    for cs in ((pod.get("status") or {}).get("containerStatuses") or []) + ((pod.get("status") or {}).get("initContainerStatuses") or []):
        w = (cs.get("state") or {}).get("waiting")
        if w and w.get("reason"):
            return f"{cs['name']}: {w['reason']}" + (f" ({w['message'][:160]})" if w.get("message") else "")
        t = (cs.get("state") or {}).get("terminated")
        if t and t.get("exitCode"):
            return f"{cs['name']}: exited {t['exitCode']} ({t.get('reason', '')})"
    return ""


def _statuses(st: dict):
    """The containers' statuses, then the init containers' (without joining two lists per pod)."""
    yield from st.get("containerStatuses") or ()
    yield from st.get("initContainerStatuses") or ()


def pod_problem(pod: dict) -> tuple[str, str] | None:
    """(reason, detail) of a pod that is not as it should be, or None."""
    st = pod.get("status") or _EMPTY
    phase = st.get("phase")
    if phase == "Succeeded" or (pod["metadata"].get("deletionTimestamp")):
        return None
    for cs in _statuses(st):
        state = cs.get("state") or _EMPTY
        w = state.get("waiting") or _EMPTY
        if w.get("reason") in BAD_WAITING:
            return w["reason"], f"{_name(pod)} ({cs['name']}, {cs.get('restartCount', 0)} restarts): {w.get('message', '')[:200]}"
        last = state.get("terminated") or (cs.get("lastState") or _EMPTY).get("terminated") or _EMPTY
        if cs.get("restartCount", 0) >= 1 and last.get("exitCode") and not cs.get("ready"):
            # crashed and restarting, before the kubelet calls it CrashLoopBackOff
            return "Crashing", f"{_name(pod)} ({cs['name']}, {cs['restartCount']} restarts): exited {last['exitCode']} ({last.get('reason', '')})"
    if phase == "Pending":
        sched = _cond(pod, "PodScheduled")
        if sched and sched.get("status") == "False":
            return "Unschedulable", f"{_name(pod)}: {sched.get('message', '')[:300]}"
        return "Pending", f"{_name(pod)}: {_waiting(pod) or 'waiting to start'}"
    if phase == "Failed":
        return "Failed", f"{_name(pod)}: {st.get('reason', '')} {st.get('message', '')[:200]}".strip()
    if phase == "Running":
        ready = _cond(pod, "Ready")
        if ready and ready.get("status") != "True":
            return "NotReady", f"{_name(pod)}: {_waiting(pod) or ready.get('message', 'not ready')}"
        return None
    return phase or "Unknown", _name(pod)


REMEDY = {
    "CrashLoopBackOff": "read the container's log (the bundle has it): it starts and exits",
    "Crashing": "read the container's log (the bundle has it): it starts and exits",
    "ImagePullBackOff": "the nodes cannot pull the image: check its name and the registry (spec.registryMirror for a mirror)",
    "ErrImagePull": "the nodes cannot pull the image: check its name and the registry (spec.registryMirror for a mirror)",
    "Unschedulable": "the scheduler's message says why: resources, taints, node selectors or an unbound volume",
    "CreateContainerConfigError": "a ConfigMap or Secret the pod refers to is missing",
}


def pods(s: Snapshot, tri: PodTriage | None = None) -> list[Finding]:
    by = defaultdict(list)
    for _, reason, detail in (tri or triage(s)).problems:
        by[reason].append(detail)
    out = []
    for reason, items in sorted(by.items(), key=lambda kv: -len(kv[1])):
        sev = "warn" if reason in ("Pending", "NotReady") else "fail"
        out.append(Finding("kubernetes", "pods", sev, f"{len(items)} pods {reason}", sample_sorted(items),
                           REMEDY.get(reason, "kubectl describe the pod: its events say why")))
    if not out:
        out.append(Finding("kubernetes", "pods", "ok", f"all {len(s.pods)} pods are running or completed"))
    return out


def pvcs(s: Snapshot) -> list[Finding]:
    pending = [f"{_name(c)} (storage class {(c.get('spec') or {}).get('storageClassName') or 'default'})"
               for c in s.pvcs if (c.get("status") or {}).get("phase") == "Pending"]
    if pending:
        return [Finding("kubernetes", "pvcs", "warn", f"{len(pending)} PersistentVolumeClaims are Pending", sample(pending),
                        "a WaitForFirstConsumer claim waits for its pod; otherwise check the storage class and the CSI driver's pods")]
    return [Finding("kubernetes", "pvcs", "ok", f"{len(s.pvcs)} PersistentVolumeClaims, none Pending")]


def events(s: Snapshot, now: datetime.datetime | None = None) -> list[Finding]:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    recent = defaultdict(int)
    example = {}
    for e in s.events:
        if e.get("type") != "Warning":
            continue
        when = e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get("creationTimestamp")
        try:
            t = datetime.datetime.fromisoformat(str(when).replace("Z", "+00:00"))
        except ValueError:
            continue
        if (now - t).total_seconds() > 3600:
            continue
        reason = e.get("reason", "?")
        recent[reason] += e.get("count") or 1
        obj = e.get("involvedObject") or {}
        where = f"{obj['namespace']}/{obj.get('name', '?')}" if obj.get("namespace") else obj.get("name", "?")
        example.setdefault(reason, f"{obj.get('kind', '?')} {where}: {e.get('message', '')[:200]}")
    if not recent:
        return [Finding("kubernetes", "events", "ok", "no warning events in the last hour")]
    top = sorted(recent.items(), key=lambda kv: -kv[1])
    return [Finding("kubernetes", "events", "warn", f"{sum(recent.values())} warning events in the last hour ({len(recent)} reasons)",
                    sample([f"{r} x{n}: {example[r]}" for r, n in top]), "the events name the objects; the bundle has them all")]


def addons(s: Snapshot) -> list[Finding]:
    from ccp.remote.kube_objects import workload_state

    out = []
    by_addon = defaultdict(list)
    for w in s.workloads:
        by_addon[(w["metadata"].get("labels") or {}).get("ccp.io/addon", "?")].append(w)
    for m in sorted(s.markers, key=lambda m: (m.get("data") or {}).get("addon", "")):
        name = (m.get("data") or {}).get("addon", "?")
        states = [(f"{w['kind']} {_name(w)}", workload_state(w["kind"], w)) for w in by_addon.get(name, [])]
        bad = [f"{ref}: {st.detail}" for ref, st in states if not st.ready]
        version = (m.get("data") or {}).get("ccpVersion", "?")
        if bad:
            out.append(Finding("addons", name, "fail", f"add-on {name} is unhealthy ({len(bad)} of {len(states)} workloads)",
                               sample(bad), f"`ccp addons status` and the pods' events in namespace {m['metadata'].get('namespace')}"))
        else:
            out.append(Finding("addons", name, "ok", f"add-on {name} healthy ({len(states)} workloads; applied by ccp {version})"))
    if not s.markers:
        out.append(Finding("addons", "installed", "warn", "no ccp add-on is installed on this cluster", [],
                           "`ccp addons apply --config cluster.yaml` installs them"))
    return out


def findings(s: Snapshot, tri: PodTriage | None = None) -> dict[str, list[Finding]]:
    tri = tri or triage(s)
    return {"kubernetes": nodes(s) + control_plane(s, tri) + pods(s, tri) + pvcs(s) + events(s), "addons": addons(s)}
