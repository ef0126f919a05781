"""Carry out an upgrade plan step by step, journaled: a step done for this target is never redone, so
an upgrade stopped anywhere (a failure, Ctrl-C, a blocked drain) resumes at the node where it stopped.
Each node is Ready at the new version, and the API answers through the VIP, before the next begins."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ccp.diagnose.renew import wait_script
from ccp.engine.runner import PhaseResult
from ccp.errors import Interrupted, KubernetesError, RemoteError
from ccp.remote.drain import drain
from ccp.upgrade.plan import Step


@dataclass
class _Shown:   # what the progress reporter needs of a "phase"
    name: str
    summary: str
    layer: str = "upgrade"


def node_script(ctx, target: str) -> str:
    from ccp import render
    from ccp.config.versions import bom_for
    from ccp.errors import ConfigError

    k8s = ctx.config.spec.kubernetes
    if k8s.packageBundle or ctx.config.spec.offline.bundle:
        raise ConfigError("ccp upgrade installs packages from the target minor's repository; an air-gapped cluster "
                          "(kubernetes.packageBundle or offline.bundle) has none",
                          "for the upgrade, replace them with spec.kubernetes.packageRepository: a mirror the nodes reach")
    repo = k8s.packageRepository or bom_for(target).package_repository
    from ccp import __version__

    return render.environment().get_template("scripts/upgrade-node.sh.j2").render(
        ccp_version=__version__, kube_version=target, repository=repo)


def run(ctx, journal, steps: list[Step], target: str, port, *, handlers: dict | None = None, say=lambda text: None,
        drain_timeout: float | None = None, ready_timeout: float = 600, clock=time.monotonic, sleep=time.sleep) -> list[PhaseResult]:
    """``handlers``: kind -> fn(step) for the steps that are not about nodes (preflight, backup, addons, validate)."""
    handlers = handlers or {}
    records = journal.records()
    reporter = ctx.reporter
    results: list[PhaseResult] = []
    script = node_script(ctx, target)
    drain_timeout = drain_timeout or ctx.config.spec.upgrade.drainTimeoutSeconds
    journal.lock("upgrade")
    journal.append("run-started", command="upgrade", until=None, skip=[])
    try:
        for step in steps:
            shown = _Shown(step.key, f"{step.kind} {', '.join(step.nodes)}".strip())
            rec = records.get(step.key)
            if rec is not None and rec.status == "done":
                reporter.phase_skipped(shown, "already done")
                results.append(PhaseResult(step.key, "upgrade", "already done"))
                continue
            t0 = clock()
            reporter.phase_started(shown, step.detail, [])
            journal.append("started", phase=step.key, fingerprint=target, inputs={"target": target}, reason=step.detail)
            try:
                if step.kind in ("control-plane", "workers"):
                    todo = [n for n in step.nodes if getattr(records.get(node_key(target, n)), "status", "") != "done"]
                    _nodes(ctx, step, todo, script, target, port, say, drain_timeout, ready_timeout, clock, sleep,
                           lambda n: journal.append("done", phase=node_key(target, n), fingerprint=target))
                elif step.kind in handlers:
                    handlers[step.kind](step)
            except KeyboardInterrupt:
                journal.append("failed", phase=step.key, fingerprint=target, error="interrupted")
                reporter.phase_failed(shown, "interrupted", clock() - t0)
                results.append(PhaseResult(step.key, "upgrade", "interrupted", duration=clock() - t0))
                raise Interrupted(f"the upgrade was interrupted in {step.key}: the nodes before it are upgraded",
                                  "continue with `ccp upgrade --config F --to " + target + " --resume`") from None
            except Exception as exc:
                msg = getattr(exc, "message", str(exc))
                journal.append("failed", phase=step.key, fingerprint=target, error=msg)
                reporter.phase_failed(shown, msg, clock() - t0)
                results.append(PhaseResult(step.key, "upgrade", "failed", duration=clock() - t0))
                raise
            journal.append("done", phase=step.key, fingerprint=target, inputs={"target": target}, outputs={"nodes": step.nodes})
            reporter.phase_done(shown, clock() - t0, [])
            results.append(PhaseResult(step.key, "upgrade", "done", duration=clock() - t0))
        journal.append("run-finished", status="ok")
        return results
    except BaseException:
        journal.append("run-finished", status="failed")
        raise
    finally:
        journal.unlock()
        reporter.finished(results)


def node_key(target: str, node: str) -> str:
    return f"upgrade/{target}/node/{node}"


def _nodes(ctx, step, todo, script, target, port, say, drain_timeout, ready_timeout, clock, sleep, node_done) -> None:
    """Upgrade the nodes of one step that are not done yet; each node is journaled the moment it is Ready
    at the target, so a batch that fails half-way resumes with only the nodes still to do."""
    from ccp.cluster.facts import api_endpoint
    from ccp.config import inventory

    ssh = ctx.ssh()
    cps = [n.name for n in inventory.build(ctx.config) if n.role == inventory.ROLE_CP]
    for node in todo:   # drained together: a batch is at most maxUnavailable nodes
        drain(port, node, drain_timeout, say=say, clock=clock, sleep=sleep)

    async def upgrade(t):
        async def sh(cmd, what, **kw):
            r = await ssh.run(t, cmd, sudo=True, check=False, timeout=1800, **kw)
            if not r.ok:
                raise RemoteError(f"{t.name}: {what} failed (exit {r.exit_status})",
                                  f"read the output above; {t.name} is drained and cordoned, the others are untouched; "
                                  "fix it, then rerun with --resume", (r.stderr or r.stdout).splitlines()[-8:])
            return r
        await sh("bash -s kubeadm", f"kubeadm {target}", stdin=script)
        if t.name == cps[0]:
            await sh(f"kubeadm upgrade plan v{target}", "kubeadm upgrade plan")
            await sh(f"kubeadm upgrade apply -y v{target}", f"kubeadm upgrade apply v{target}")
        else:
            await sh("kubeadm upgrade node", "kubeadm upgrade node")
        await sh("bash -s kubelet", f"kubelet and kubectl {target}", stdin=script)
        if step.kind == "control-plane":
            await sh(wait_script(api_endpoint(ctx), 300), "waiting for the API through the VIP")

    fan = ssh.call(ssh.each(ctx.targets(todo), upgrade))
    for node in todo:
        if node in fan.results:   # the others stay drained and cordoned for the operator to look at
            port.cordon(node, False)
            _wait_ready(port, node, target, ready_timeout, clock, sleep)
            node_done(node)
            say(f"{node}: Ready at v{target}")
    fan.raise_if_failed(f"upgrading {step.kind} {', '.join(todo)}")


def _wait_ready(port, node, target, timeout, clock, sleep) -> None:
    end = clock() + timeout
    while True:
        ready, version = port.node_state(node)
        if ready and version == f"v{target}":
            return
        if clock() >= end:
            raise KubernetesError(f"{node} is not Ready at v{target} after {timeout:.0f}s (Ready: {ready}, kubelet {version or '?'})",
                                  f"look at the kubelet on {node} (journalctl -u kubelet); then rerun with --resume")
        sleep(5)
