"""Upgrade the nodes of one step of the plan (a control plane, or a batch of workers): drained together,
kubeadm and the kubelet moved to the target over SSH, and each node, once it is Ready at the target and
the API answers through the VIP (a control plane), uncordoned and reported done before the next step."""

from __future__ import annotations

import time

from ccp.errors import ConfigError, KubernetesError, RemoteError


def node_script(cfg, target: str) -> str:
    """The script a node runs (twice: kubeadm, then the kubelet) to install the target's packages. A
    ConfigError for an air-gapped cluster, which has no repository to take them from: `ccp upgrade`
    checks that before it shows its plan."""
    from ccp import __version__
    from ccp.config.versions import bom_for
    from ccp.templating import environment

    k8s = cfg.spec.kubernetes
    if k8s.packageBundle or cfg.spec.offline.bundle:
        raise ConfigError("ccp upgrade installs packages from the target minor's repository; an air-gapped cluster "
                          "(kubernetes.packageBundle or offline.bundle) has none",
                          "for the upgrade, replace them with spec.kubernetes.packageRepository: a mirror the nodes reach")
    repo = k8s.packageRepository or bom_for(target).package_repository
    return environment().get_template("scripts/upgrade-node.sh.j2").render(
        ccp_version=__version__, kube_version=target, repository=repo)


def upgrade(ctx, kind: str, todo: list[str], target: str, port, *, node_done, say=lambda text: None,
            ready_timeout: float = 600, clock=time.monotonic, sleep=time.sleep) -> None:
    """Upgrade the nodes ``todo`` of a step of kind ``kind``; ``node_done(node)`` the moment one is Ready
    at the target, so a batch that fails half-way resumes with only the nodes still to do."""
    from ccp.cluster.facts import api_endpoint, by_role
    from ccp.config import inventory
    from ccp.diagnose.renew import wait_script
    from ccp.remote.drain import drain

    ssh = ctx.ssh()
    script = node_script(ctx.config, target)
    first_cp = by_role(ctx, inventory.ROLE_CP)[0]
    api_wait = wait_script(api_endpoint(ctx), 300) if kind == "control-plane" else None
    for node in todo:   # drained together: a batch is at most maxUnavailable nodes
        drain(port, node, ctx.config.spec.upgrade.drainTimeoutSeconds, say=say, clock=clock, sleep=sleep)
    fan = ssh.call(ssh.each(ctx.targets(todo), lambda t: _on_node(ssh, t, target, script, t.name == first_cp, api_wait)))
    for node in todo:
        if node in fan.results:   # the others stay drained and cordoned for the operator to look at
            port.cordon(node, False)
            wait_ready(port, node, target, ready_timeout, clock, sleep)
            node_done(node)
            say(f"{node}: Ready at v{target}")
    fan.raise_if_failed(f"upgrading {kind} {', '.join(todo)}")


async def _on_node(ssh, t, target: str, script: str, first_cp: bool, api_wait: str | None) -> None:
    """What one node runs: the first control plane of the inventory `kubeadm upgrade apply`, every other
    node `kubeadm upgrade node`; a control plane then waits for the API through the VIP."""
    async def sh(cmd, what, **kw):
        r = await ssh.run(t, cmd, sudo=True, check=False, timeout=1800, **kw)
        if not r.ok:
            raise RemoteError(f"{t.name}: {what} failed (exit {r.exit_status})",
                              f"read the output above; {t.name} is drained and cordoned, the others are untouched; "
                              "fix it, then rerun with --resume", (r.stderr or r.stdout).splitlines()[-8:])
    await sh("bash -s kubeadm", f"kubeadm {target}", stdin=script)
    if first_cp:
        await sh(f"kubeadm upgrade plan v{target}", "kubeadm upgrade plan")
        await sh(f"kubeadm upgrade apply -y v{target}", f"kubeadm upgrade apply v{target}")
    else:
        await sh("kubeadm upgrade node", "kubeadm upgrade node")
    await sh("bash -s kubelet", f"kubelet and kubectl {target}", stdin=script)
    if api_wait is not None:
        await sh(api_wait, "waiting for the API through the VIP")


def wait_ready(port, node: str, target: str, timeout: float, clock=time.monotonic, sleep=time.sleep) -> None:
    end = clock() + timeout
    while True:
        ready, version = port.node_state(node)
        if ready and version == f"v{target}":
            return
        if clock() >= end:
            raise KubernetesError(f"{node} is not Ready at v{target} after {timeout:.0f}s (Ready: {ready}, kubelet {version or '?'})",
                                  f"look at the kubelet on {node} (journalctl -u kubelet); then rerun with --resume")
        sleep(5)
