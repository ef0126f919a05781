"""The phases of `ccp restore` (the steps and why they are in this order: ccp.backup.restore)."""

from __future__ import annotations

from ccp.backup import restore as r
from ccp.cluster.facts import api_endpoint, control_planes, fan as _fan, wait_api
from ccp.config import versions
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.errors import RemoteError


async def _probe(ssh, t, script: str) -> bool:
    return (await ssh.run(t, script, sudo=True, check=False)).ok


class _Restore(Phase):
    layer = "cluster"

    def __init__(self, snap: r.Snapshot):
        self.snap = snap

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"snapshot": self.snap.sha256, "controlPlanes": [t.name for t in control_planes(ctx)]}


class RestoreVerify(_Restore):
    name = "restore/verify"
    layer = "prepare"
    always = True
    summary = "the snapshot matches the sha256 its backup recorded"

    def plan(self, ctx: ClusterContext) -> list[Action]:
        return [Action("check", f"snapshot {self.snap.path.name}", f"sha256 {self.snap.sha256[:16]}…")]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        r.verify(self.snap)
        if self.snap.kubernetes and self.snap.kubernetes != ctx.config.spec.kubernetes.version:
            ctx.reporter.note(f"the snapshot was taken on Kubernetes {self.snap.kubernetes}; the config says "
                              f"{ctx.config.spec.kubernetes.version}: objects are restored as they were then")
        return {"sha256": self.snap.sha256}


class RestoreStop(_Restore):
    name = "restore/stop"
    summary = "stop the controllers, API servers and etcd on every control plane (their manifests moved aside)"

    def plan(self, ctx: ClusterContext) -> list[Action]:
        ssh = ctx.ssh()
        running = _fan(ctx, lambda t: _probe(ssh, t, f"test -f {r.MANIFESTS}/etcd.yaml -o -f {r.MANIFESTS}/kube-apiserver.yaml"),
                       "probing the control planes")
        return [Action("stop", f"etcd and the API on {n}", "no member may run while the snapshot is restored")
                for n, up in running.items() if up]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        ssh = ctx.ssh()
        todo = {a.target.rsplit(" ", 1)[-1] for a in actions}

        async def stop(t):
            ctx.reporter.item(t.name, "stopping etcd and the API server")
            from ccp.remote.static_pods import LOCK_WAIT, lock_busy, locked

            # after the renewal timer, if it is restarting this node's static pods now
            res = await ssh.run(t, locked(r.park_script()), sudo=True, check=False, timeout=180 + LOCK_WAIT)
            if lock_busy(t.name, res):
                raise lock_busy(t.name, res)
            if not res.ok:
                raise RemoteError(f"{t.name}: stopping etcd and the API server failed (exit {res.exit_status})",
                                  f"look at {r.MANIFESTS} and {r.PARKED} on {t.name}; then rerun ccp restore",
                                  (res.stderr or res.stdout).splitlines()[-5:])
        _fan(ctx, stop, "stopping etcd", [t for t in control_planes(ctx) if t.name in todo])
        return {"stopped": sorted(todo)}


class RestoreSnapshot(_Restore):
    name = "restore/snapshot"
    summary = "upload the snapshot and restore it into a new etcd data directory on every control plane"

    def plan(self, ctx: ClusterContext) -> list[Action]:
        ssh = ctx.ssh()
        done = _fan(ctx, lambda t: _probe(ssh, t, f"test -f {r.WORK}/restored-{self.snap.rid}"), "probing the control planes")
        return [Action("restore", f"etcd on {n}", f"from {self.snap.path.name}; the old data kept") for n, ok in done.items() if not ok]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        ssh = ctx.ssh()
        todo = {a.target.rsplit(" ", 1)[-1] for a in actions}
        cps = control_planes(ctx)
        peers = {t.name: t.address for t in cps}
        image = versions.bom_of(ctx.config).core_images(ctx.config.spec.registryMirror)["etcd"]
        data = self.snap.path.read_bytes()

        async def one(t):
            ctx.reporter.item(t.name, "uploading the snapshot")
            await ssh.upload(t, {f"{r.WORK}/snapshot.db": (data, 0o600)})
            got = (await ssh.run(t, f"sha256sum {r.WORK}/snapshot.db", sudo=True)).stdout.split()[:1]
            if got != [self.snap.sha256]:
                raise RemoteError(f"{t.name}: the snapshot arrived damaged (sha256 {got[0] if got else 'none'})",
                                  "rerun ccp restore: nothing was restored on this node yet")
            ctx.reporter.item(t.name, "etcdutl snapshot restore")
            await ssh.run(t, r.node_restore_script(t.name, peers, self.snap.rid, image), sudo=True, timeout=900)
            ctx.reporter.item(t.name, "restored")
        _fan(ctx, one, "restoring etcd", [t for t in cps if t.name in todo])
        return {"restored": sorted(todo), "oldData": r.old_data_dir(self.snap.rid)}


class RestoreStart(_Restore):
    name = "restore/start"
    summary = ("start etcd everywhere, then the API servers, then the controllers; wait for the API and the controllers; "
               "remove the uploaded snapshot")

    def plan(self, ctx: ClusterContext) -> list[Action]:
        ssh = ctx.ssh()
        pending = _fan(ctx, lambda t: _probe(ssh, t, f"test -d {r.PARKED} -o -d {r.WORK}"), "probing the control planes")
        return [Action("start", f"etcd and the API on {n}", "after the restore") for n, p in pending.items() if p]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        ssh = ctx.ssh()
        cps = control_planes(ctx)
        for manifest in reversed(r.PARK_ORDER):        # etcd on every member first: they need each other for quorum
            async def put_back(t, m=manifest):
                await ssh.run(t, r.unpark_script(m), sudo=True)
            _fan(ctx, put_back, f"starting {manifest.split('.')[0]}", cps)
        ctx.reporter.item(cps[0].name, "waiting for the API through the VIP")
        ssh.call(wait_api(ssh, cps[0], api_endpoint(ctx), after="the restore"))

        async def controllers(t):
            res = await ssh.run(t, r.controllers_script(), sudo=True, check=False, timeout=240)
            if not res.ok:
                raise RemoteError(f"{t.name}: its controller-manager or scheduler did not come back after the restore",
                                  f"on {t.name}: `crictl ps -a` and the logs of kube-controller-manager and kube-scheduler "
                                  f"(their manifests are in {r.MANIFESTS}); etcd and the API are restored",
                                  (res.stderr or res.stdout).splitlines()[-3:])
        _fan(ctx, controllers, "waiting for the controller-manager and scheduler", cps)
        ctx.reporter.item(cps[0].name, "waiting for every control-plane pod to be Ready in the API")
        res = ssh.call(ssh.run(cps[0], r.settled_script(len(r.PARK_ORDER) * len(cps)), sudo=True, check=False, timeout=300))
        if not res.ok:
            raise RemoteError("after the restore, control-plane pods are not Ready in the API",
                              "`ccp diagnose --config F` names them and why; etcd and the API are restored",
                              (res.stderr or res.stdout).splitlines()[-3:])

        async def clean(t):
            await ssh.run(t, f"rm -rf {r.WORK}", sudo=True)
        _fan(ctx, clean, "removing the uploaded snapshot", cps)
        return {"started": [t.name for t in cps]}
