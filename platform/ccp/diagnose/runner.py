"""Run the diagnose sections at once (vSphere, SSH to every host, the Kubernetes snapshot, the served
certificate) and gather what the bundle carries."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ccp.diagnose import certs, hosts, kubernetes
from ccp.diagnose.base import SECTIONS, Finding
from ccp.diagnose.bundle import as_json
from ccp.errors import CcpError, ConfigError


LOG_FETCHES = 8   # container logs fetched at once for the bundle


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)      # bundle material (redacted when written)
    seconds: dict[str, float] = field(default_factory=dict)
    certs: list = field(default_factory=list)                 # every certificate read (certs.Cert)

    @property
    def failed(self) -> bool:
        return any(f.severity == "fail" for f in self.findings)


def check_sections(only: set[str]) -> set[str]:
    unknown = sorted(only - set(SECTIONS))
    if unknown:
        raise ConfigError(f"no diagnose section named {', '.join(unknown)}", f"use --only with some of: {', '.join(SECTIONS)}")
    return only or set(SECTIONS)


def run(*, ctx=None, kube=None, kubeconfig: Path | None = None, only: set[str] = frozenset(), bundle: bool = False,
        say=lambda text: None) -> Report:
    """``ctx``: a ClusterContext (vSphere and SSH need cluster.yaml); ``kube``: a diagnose port or None."""
    chosen = check_sections(set(only))
    report = Report()
    jobs = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        if "vsphere" in chosen and ctx is not None and ctx.config.spec.provisioner in ("terraform", "native"):
            jobs["vsphere"] = pool.submit(_timed, _vsphere, ctx)
        if "machines" in chosen and ctx is not None and ctx.config.spec.provisioner == "local":
            jobs["machines"] = pool.submit(_timed, _machines, ctx)
        if ({"hosts", "certs", "hardening"} & chosen) and ctx is not None:
            jobs["hosts"] = pool.submit(_timed, _hosts, ctx, "hosts" in chosen, "certs" in chosen, "hardening" in chosen)
        if ({"kubernetes", "addons"} & chosen) and kube is not None:
            jobs["kubernetes"] = pool.submit(_timed, _kubernetes, kube, bundle)
        if "certs" in chosen and kubeconfig is not None:
            jobs["served"] = pool.submit(_timed, _kubeconfig_certs, kubeconfig)
        if "hardening" in chosen and ctx is not None and kube is not None:
            jobs["rbac"] = pool.submit(_timed, _rbac, kube)
        pki: list = []
        cert_errors: list[str] = []
        renewal: dict = {}
        nodes_read: dict = {}
        bindings = None
        for name, job in jobs.items():
            say(f"{name}: collecting")
            try:
                (found, files, extra), seconds = job.result()
            except CcpError as exc:   # a section that cannot run is a finding, the others go on
                section = {"served": "certs", "rbac": "hardening"}.get(name, name)
                report.findings.append(Finding(section, "collect", "fail", exc.message, exc.details[:5], exc.resolution))
                continue
            report.seconds[name] = seconds
            report.findings += [f for f in found if f.section in chosen]
            report.files.update(files)
            pki += extra.get("certs", [])
            cert_errors += extra.get("cert_errors", [])
            renewal.update(extra.get("renewal", {}))
            nodes_read.update(extra.get("hardening", {}))
            bindings = extra.get("bindings", bindings)
    wanted = ctx.config.spec.security.certificates if ctx is not None else None
    if "certs" in chosen and (pki or cert_errors or "served" in jobs or "hosts" in jobs):
        report.findings += certs.findings(pki, cert_errors, wanted.renewBeforeDays if wanted and wanted.autoRenew else None)
        report.certs = sorted(pki, key=lambda c: c.days)
    if "certs" in chosen and "hosts" in jobs and "hosts" in report.seconds:
        from ccp.diagnose import autorenew

        read = {n: s for n, s in renewal.items() if s is not None}
        report.findings += autorenew.findings(read, wanted, [n for n, s in renewal.items() if s is None])
    if "hardening" in chosen:
        report.findings += _hardening(ctx, report, nodes_read, bindings)
    if {"kubernetes", "addons"} & chosen and kube is None:
        report.findings.append(Finding("kubernetes", "collect", "warn", "no kubeconfig: the Kubernetes checks did not run", [],
                                       "pass --kubeconfig, or finish the install so the cluster has its own"))
    order = {s: i for i, s in enumerate(SECTIONS)}
    report.findings.sort(key=lambda f: (order.get(f.section, 99), ("fail", "warn", "ok").index(f.severity)))
    if bundle:
        report.files["findings.json"] = as_json([f.to_dict() for f in report.findings])
        report.files["findings.txt"] = "\n".join(f"{f.severity:<4} {f.section}/{f.check}: {f.what}"
                                                 + "".join(f"\n       {e}" for e in f.evidence)
                                                 + (f"\n    -> {f.remediation}" if f.remediation else "")
                                                 for f in report.findings) + "\n"
        if ctx is not None:
            report.files.update(_ccp_state(ctx.state_dir))
    return report


def _timed(fn, *args):
    t0 = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - t0


def _vsphere(ctx):
    from ccp.diagnose import vsphere

    return vsphere.findings(ctx.vsphere(), ctx.nodes), {}, {}


def _machines(ctx):
    from ccp.diagnose import machines

    return machines.findings(ctx.config, ctx.nodes), {}, {}


def _hardening(ctx, report: Report, nodes_read: dict, bindings) -> list[Finding]:
    from ccp.config import inventory
    from ccp.diagnose import hardening

    if ctx is None:
        return [Finding("hardening", "collect", "warn", "the hardening checks read the nodes over SSH: they did not run",
                        [], "give --config cluster.yaml")]
    if "hosts" not in report.seconds:   # the collection failed: its finding says why
        return []
    cps = {n.name for n in ctx.nodes if n.role == inventory.ROLE_CP}
    return hardening.findings({n: v for n, v in nodes_read.items() if v is not None}, cps, ctx.config.spec.security,
                              bindings, [n for n, v in nodes_read.items() if v is None])


def _rbac(kube):
    return [], {}, {"bindings": kube.rbac_bindings()}


def _hosts(ctx, want_facts: bool, want_pki: bool, want_hardening: bool = False):
    from ccp.config import inventory
    from ccp.diagnose import autorenew, hardening

    ssh = ctx.ssh()
    nodes = {n.name: n for n in ctx.nodes}
    control_planes = {n.name for n in nodes.values() if n.role == inventory.ROLE_CP}

    async def collect(t):
        out = {}
        if want_facts:
            sent = time.time()
            r = await ssh.run(t, hosts.FACTS_SCRIPT, check=False, timeout=60, quiet=True)
            got = time.time()
            facts = hosts.parse(r.stdout)
            try:   # the host's clock against ours, at the middle of the round trip
                out["offset"] = float(facts.get("time", "")) - (sent + got) / 2
            except ValueError:
                pass
            out["facts"] = facts
        if want_pki and t.name in control_planes:
            r = await ssh.run(t, certs.PKI_SCRIPT, sudo=True, check=False, timeout=60, quiet=True)
            out["pki"] = r.stdout
            r = await ssh.run(t, autorenew.SCRIPT, sudo=True, check=False, timeout=60, quiet=True)
            out["renewal"] = autorenew.parse(r.stdout)
        if want_hardening and nodes[t.name].role != inventory.ROLE_LB:
            r = await ssh.run(t, hardening.NODE_SCRIPT, sudo=True, check=False, timeout=60, quiet=True)
            out["hardening"] = hardening.parse(r.stdout) if r.ok else None   # (sudo refused: not read)
        return out

    fan = ssh.call(ssh.each(ctx.targets(), collect))
    facts = {n: v["facts"] for n, v in fan.results.items() if "facts" in v}
    offsets = {n: v["offset"] for n, v in fan.results.items() if "offset" in v}
    unreachable = {n: getattr(e, "message", None) or str(e) for n, e in fan.failures.items()}
    found = hosts.findings(facts, offsets, unreachable, {n: nodes[n].role for n in nodes},
                           ctx.config.spec.provisioner) if want_facts else []
    pki = [c for n, v in fan.results.items() if "pki" in v for c in certs.from_pki_listing(n, v["pki"])]
    cert_errors = [f"PKI of {n} not read: {why}" for n, why in unreachable.items() if n in control_planes] if want_pki else []
    renewal = ({n: fan.results[n].get("renewal") if n in fan.results else None for n in control_planes}
               if want_pki else {})   # None: not read (unreachable)
    files = {f"hosts/{n}.txt": "\n".join(f"{k}={v}" for k, v in sorted(f.items())) + "\n" for n, f in facts.items()}
    views = ({n: fan.results[n].get("hardening") if n in fan.results else None for n in nodes
              if nodes[n].role != inventory.ROLE_LB} if want_hardening else {})   # None: not read (unreachable)
    return found, files, {"certs": pki, "cert_errors": cert_errors, "renewal": renewal, "hardening": views}


def _kubernetes(kube, bundle: bool):
    snap = kube.snapshot()
    tri = kubernetes.triage(snap)   # one walk over the pods for the checks and the bundle's logs
    by = kubernetes.findings(snap, tri)
    files = {}
    if bundle:
        files = {"kubernetes/nodes.json": as_json(snap.nodes), "kubernetes/pods.json": as_json(snap.pods),
                 "kubernetes/pvcs.json": as_json(snap.pvcs), "kubernetes/events.json": as_json(snap.events),
                 "kubernetes/addon-markers.json": as_json(snap.markers), "kubernetes/readyz.txt": snap.readyz}
        wanted = [(pod["metadata"]["namespace"], pod["metadata"]["name"], c["name"]) for pod in _log_worthy(tri)
                  for c in (pod.get("spec") or {}).get("containers") or []]
        # at once: a log of a pod on a dead node waits for the API server's connection to its kubelet to time out
        # (found on real nodes: with a control plane killed and a kubelet stopped, the logs took 17 s one after another)
        with ThreadPoolExecutor(max_workers=LOG_FETCHES) as pool:
            for (ns, name, container), text in zip(wanted, pool.map(lambda w: kube.log(*w), wanted)):
                files[f"logs/{ns}/{name}/{container}.log"] = text
    return by["kubernetes"] + by["addons"], files, {}


def _log_worthy(tri, limit: int = 50) -> list[dict]:
    """Failing pods and the control-plane components, at most ``limit`` (a bundle must stay attachable)."""
    seen, out = set(), []
    for p in tri.control_plane + [pod for pod, _, _ in tri.problems]:
        key = (p["metadata"].get("namespace"), p["metadata"]["name"])
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out[:limit]


def _kubeconfig_certs(kubeconfig: Path):
    import yaml

    found = certs.from_kubeconfig(kubeconfig)
    errors = []
    try:
        doc = yaml.safe_load(Path(kubeconfig).read_text()) or {}
        ctx = next((c["context"] for c in doc.get("contexts") or [] if c.get("name") == doc.get("current-context")), {})
        server = next(c["cluster"]["server"] for c in doc.get("clusters") or [] if c.get("name") == ctx.get("cluster"))
        from urllib.parse import urlsplit

        u = urlsplit(server)
        found += certs.served(u.hostname, u.port or 443)
    except (OSError, StopIteration, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        errors.append(f"the API endpoint's serving certificate was not read: {exc}")
    return [], {}, {"certs": found, "cert_errors": errors}


def _ccp_state(state_dir: Path) -> dict[str, str]:
    files = {}
    journal = state_dir / "journal.jsonl"
    if journal.exists():
        files["ccp/journal.jsonl"] = journal.read_text(errors="replace")
    for log in sorted((state_dir / "logs").glob("*.log"))[-20:] if (state_dir / "logs").is_dir() else []:
        files[f"ccp/logs/{log.name}"] = log.read_text(errors="replace")[-2_000_000:]
    return files
