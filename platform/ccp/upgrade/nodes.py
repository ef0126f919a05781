"""Upgrade the nodes of one step of the plan (a control plane, or a batch of workers): drained together,
kubeadm and the kubelet moved to the target over SSH, and each node, once it is Ready at the target and
the API answers through the VIP (a control plane), uncordoned and reported done before the next step."""

from __future__ import annotations

import time

from ccp.errors import ConfigError, KubernetesError, RemoteError


def node_script(cfg, target_cfg) -> str:
    """The script a node runs (twice: kubeadm, then the kubelet) to install the target's packages: from
    the target minor's repository (or kubernetes.packageRepository), or, air-gapped (offline.bundle),
    from the packages the stage step put on the node. A ConfigError for kubernetes.packageBundle, a
    directory of one version's packages: `ccp upgrade` checks that before it shows its plan."""
    from ccp import __version__
    from ccp.config.versions import bom_of
    from ccp.templating import environment
    from ccp.upgrade.stage import packages_dir

    k8s, target = cfg.spec.kubernetes, target_cfg.spec.kubernetes.version
    if k8s.packageBundle and not cfg.spec.offline.bundle:
        raise ConfigError("ccp upgrade cannot take the target's packages from kubernetes.packageBundle (a directory of "
                          "the running version's .deb files)",
                          "use an offline bundle holding both versions (spec.offline.bundle, `ccp bundle create --with-bom`), "
                          "or spec.kubernetes.packageRepository: a mirror the nodes reach")
    bom = bom_of(target_cfg)
    offline = bool(cfg.spec.offline.bundle)
    repo = "" if offline else (k8s.packageRepository or bom.package_repository)
    return environment().get_template("scripts/upgrade-node.sh.j2").render(
        ccp_version=__version__, kube_version=target, deb_version=bom.deb_version, repository=repo,
        package_dir=packages_dir(target) if offline else "")


def kubeadm_flags(cfg, target: str, command: str) -> str:
    """What `kubeadm upgrade apply` / `node` needs beyond the version: the install's patches (a control
    plane's static pods are written anew: without them, e.g., the lab's etcd probes would be lost), the
    install's skipped phases that upgrade has too (no CoreDNS image: addon/coredns), the preflight
    errors it ignores, and, for a pre-release target, kubeadm's permission to move to one. ``command``:
    "plan" or "apply" (the first control plane), "node" (a control plane) or "worker"."""
    import shlex

    from ccp.render import KUBEADM_PATCHES_DIR
    from ccp.upgrade.skew import is_prerelease

    kubeadm = cfg.spec.kubernetes.kubeadm
    flags = []
    if command in ("plan", "apply") and is_prerelease(target):
        flags.append("--allow-experimental-upgrades")
    if command in ("apply", "node") and kubeadm.patches:
        flags.append(f"--patches {KUBEADM_PATCHES_DIR}")
    skip = [p for p in kubeadm.skipPhases if p.split("/")[0] == "addon"]
    if skip and command != "plan":
        flags.append("--skip-phases " + shlex.quote(",".join(skip)))
    ignore = list(kubeadm.ignorePreflightErrors)
    if command in ("plan", "apply") and {"addon", "addon/coredns"} & set(kubeadm.skipPhases):
        # no CoreDNS was installed: kubeadm's checks of its migration fail on "start version ''"
        ignore += ["CoreDNSUnsupportedPlugins", "CoreDNSMigration"]
    if ignore:
        flags.append("--ignore-preflight-errors " + shlex.quote(",".join(ignore)))
    return " ".join(flags)


def upgrade(ctx, kind: str, todo: list[str], target_cfg, port, *, node_done, say=lambda text: None,
            stamps: dict[str, str] | None = None, ready_timeout: float = 600, clock=time.monotonic,
            sleep=time.sleep) -> None:
    """Upgrade the nodes ``todo`` of a step of kind ``kind`` to ``target_cfg``'s version; ``node_done(node)``
    the moment one is Ready at the target, so a batch that fails half-way resumes with only the nodes
    still to do. ``stamps``: node -> the hash of its prepare script at the target, written as its
    hosts/prepare stamp once the node is upgraded."""
    from ccp.cluster.facts import api_endpoint, by_role
    from ccp.config import inventory
    from ccp.remote.static_pods import wait_script
    from ccp.remote.drain import drain

    ssh = ctx.ssh()
    target = target_cfg.spec.kubernetes.version
    script = node_script(ctx.config, target_cfg)
    first_cp = by_role(ctx, inventory.ROLE_CP)[0]
    api_wait = wait_script(api_endpoint(ctx), 300) if kind == "control-plane" else None
    flags = {c: kubeadm_flags(ctx.config, target, c) for c in ("plan", "apply", "node", "worker")}
    for node in todo:   # drained together: a batch is at most maxUnavailable nodes
        drain(port, node, ctx.config.spec.upgrade.drainTimeoutSeconds, say=say, clock=clock, sleep=sleep)
    from ccp.remote import lb_hold

    holding = []
    reporter = getattr(ctx, "reporter", None)
    warn = reporter.note if reporter is not None and hasattr(reporter, "note") else say
    if kind == "control-plane" and len(todo) == 1:   # its API server out of the load balancers before it changes
        (t,) = ctx.targets(todo)
        holding = lb_hold.hold(ctx, ssh, t.name, t.address, say=say, warn=warn, sleep=sleep)
    try:
        fan = ssh.call(ssh.each(ctx.targets(todo), lambda t: _on_node(
            ssh, t, target, script, t.name == first_cp, api_wait, flags if kind == "control-plane" else {"node": flags["worker"]},
            (stamps or {}).get(t.name))))
    finally:
        if holding:
            lb_hold.release(ctx, ssh, holding, warn=warn)
    for node in todo:
        if node in fan.results:   # the others stay drained and cordoned for the operator to look at
            port.cordon(node, False)
            wait_ready(port, node, target, ready_timeout, clock, sleep)
            node_done(node)
            say(f"{node}: Ready at v{target}")
    fan.raise_if_failed(f"upgrading {kind} {', '.join(todo)}")


async def _on_node(ssh, t, target: str, script: str, first_cp: bool, api_wait: str | None, flags: dict[str, str],
                   stamp: str | None = None) -> None:
    """What one node runs: the first control plane of the inventory `kubeadm upgrade apply`, every other
    node `kubeadm upgrade node`; a control plane then waits for the API through the VIP. On a control plane
    kubeadm's restart of the API server is hurried (static_pods.hurried): it is out of the load balancers."""
    from ccp.remote.static_pods import hurried, lock_busy, locked

    def upgrade(cmd):   # a control plane (it alone waits for the API afterwards) has its API server hurried
        return hurried(cmd) if api_wait is not None else cmd

    async def sh(cmd, what, lock=False, **kw):
        r = await ssh.run(t, locked(cmd) if lock else cmd, sudo=True, check=False, timeout=1800, **kw)
        if lock and lock_busy(t.name, r):
            raise lock_busy(t.name, r)
        if not r.ok:
            raise RemoteError(f"{t.name}: {what} failed (exit {r.exit_status})",
                              f"read the output above; {t.name} is drained and cordoned, the others are untouched; "
                              "fix it, then rerun with --resume", (r.stderr or r.stdout).splitlines()[-8:])
    def extra(command):
        return f" {flags[command]}" if flags.get(command) else ""
    await sh("bash -s kubeadm", f"kubeadm {target}", stdin=script)
    if first_cp:
        await sh(f"kubeadm upgrade plan v{target}{extra('plan')}", "kubeadm upgrade plan")
        await sh(upgrade(f"kubeadm upgrade apply -y v{target}{extra('apply')}"), f"kubeadm upgrade apply v{target}", lock=True)
    else:
        await sh(upgrade(f"kubeadm upgrade node{extra('node')}"), "kubeadm upgrade node", lock=True)
    await sh("bash -s kubelet", f"kubelet and kubectl {target}", stdin=script)
    if api_wait is not None:
        await sh(api_wait, "waiting for the API through the VIP")
    if stamp is not None:
        from ccp.render import PREPARED_STAMP

        await sh(f"echo {stamp} > {PREPARED_STAMP}", "writing the hosts/prepare stamp")


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
