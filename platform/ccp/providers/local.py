"""provisioner: local — the nodes are systemd-nspawn machines on the Linux host ccp runs on.

Each machine is a full systemd system (sshd, containerd) booted from an overlay on one cached Debian
root filesystem, with its own address on a host bridge: the analogue of a VM cloned from a template.
From SSH on, ccp takes exactly the path it takes on VMs. The machines outlive ccp; ``ccp destroy``
removes this cluster's machines (and the bridge when nothing else uses it) and nothing else.
The mechanics live in local_machines; this file maps the cluster onto them.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from ccp.engine.phase import Action

# The node root filesystem: what a VM template would hold (containerd and its tools included; nginx and
# keepalived installed but left off, for the load balancers). Kubernetes itself comes from the bundle.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "iptables", "containerd", "runc",
            "containernetworking-plugins", "conntrack", "socat", "ethtool", "sudo", "ca-certificates", "kmod", "curl",
            "procps", "openssl", "nginx-light", "libnginx-mod-stream", "keepalived", "gawk"]


def bridge_name(cfg) -> str:
    """ccp-<cluster>, shortened with a hash to fit Linux's 15-character interface names."""
    if cfg.spec.local.bridge:
        return cfg.spec.local.bridge
    name = cfg.metadata.name
    full = f"ccp-{name}"
    return full if len(full) <= 15 else f"ccp-{name[:5]}-{zlib.crc32(name.encode()) & 0xffff:04x}"


class LocalProvider:
    name = "local"

    def __init__(self, ctx):
        from ccp.providers.local_machines import LocalHost

        self.ctx = ctx
        cfg = ctx.config
        self.cluster = cfg.metadata.name
        self.nodes = ctx.nodes
        self.bridge = bridge_name(cfg)
        say = (lambda msg: ctx.reporter.progress(msg)) if ctx.reporter is not None else (lambda msg: None)
        self.host = LocalHost(Path(cfg.spec.local.machinesDir), Path(cfg.spec.local.rootfsCache), say=say)

    # -- what exists

    def _status(self) -> dict[str, str]:
        return {n.name: self.host.status(self.cluster, n.name) for n in self.nodes}

    def _specs(self):
        from ccp.providers.local_machines import MachineSpec
        from ccp.render import public_key

        cfg = self.ctx.config
        net = cfg.spec.nodes.network
        key = public_key(self.ctx.loaded)   # a missing or wrong file: a ConfigError saying what to do
        return [MachineSpec(cluster=self.cluster, name=n.name, role=n.role, address=f"{n.address}/{net.cidr.prefixlen}",
                            gateway=str(net.gateway), dns=tuple(str(d) for d in net.dns), ssh_user=cfg.spec.ssh.user,
                            authorized_key=key, bridge=self.bridge) for n in self.nodes]

    def _orphans(self) -> list[str]:
        """Machines of this cluster that cluster.yaml does not list and no provision ever recorded: left by a run
        that failed while making them (they never joined). Unknown only with a state directory that recorded the
        cluster: without one, a machine of the cluster may be a node, and it is left alone."""
        recorded = self.ctx.outputs.get("provision", {}).get("nodes")
        if not recorded:
            return []
        listed = {n.name for n in self.nodes}
        return sorted(n for n in self.host.machines(self.cluster) if n not in listed and n not in recorded)

    def plan(self) -> list[Action]:
        from ccp.errors import InfrastructureError
        from ccp.providers.local_machines import CONFLICT_RESOLUTION

        found = self.host.conflicts(self._specs(), ignore=tuple(self._orphans()))
        if found:
            raise InfrastructureError(f"{len(found)} local machine(s) cannot be booted as cluster.yaml says: {found[0]}",
                                      CONFLICT_RESOLUTION, found)
        address = {n.name: n.address for n in self.nodes}
        verbs = {"absent": ("create", "new machine at {}"), "stopped": ("start", "machine is stopped")}
        status = self._status()
        actions = [Action(verbs[state][0], f"machine {name}", verbs[state][1].format(address[name]))
                   for name, state in status.items() if state in verbs]
        if "provision" not in self.ctx.outputs:
            # Machines carry their cluster's name as owner, as VMs carry ccp's marker: a state directory that
            # never recorded them (lost, or a fresh CCP_STATE_DIR) takes them over, host keys read from their disks.
            actions += [Action("adopt", f"machine {name}", f"it exists, owned by cluster {self.cluster}, and this "
                               "state directory has no record of it") for name, state in status.items() if state == "running"]
        actions += [Action("remove", f"machine {n}", "not in cluster.yaml and never recorded: left by a run that failed "
                           "while making it") for n in self._orphans()]
        return actions

    def apply(self, actions: list[Action]) -> dict[str, dict]:
        cfg = self.ctx.config
        net = cfg.spec.nodes.network
        for a in actions:
            if a.verb == "remove":
                self.host.destroy(self.cluster, a.target.removeprefix("machine "))
        specs = self._specs()
        rootfs = self.host.rootfs(PACKAGES)
        if self.host.ensure_bridge(self.bridge, f"{net.gateway}/{net.cidr.prefixlen}") and self.ctx.reporter is not None:
            self.ctx.reporter.note(f"created the host bridge {self.bridge} ({net.gateway}/{net.cidr.prefixlen})")
        if cfg.spec.local.nat:
            from ccp.providers import local_nat

            say = self.ctx.reporter.note if self.ctx.reporter is not None else (lambda msg: None)
            if local_nat.ensure(self.bridge, str(net.cidr), say=say):
                say(f"the machines on {self.bridge} reach out through this host (spec.local.nat)")
        records = self.host.boot_many(specs, rootfs)
        return {n.name: {**records[n.name], "role": n.role, "address": str(n.address)} for n in self.nodes}

    # -- nodes leaving the cluster, replaced, destroyed

    def remove_plan(self, names: list[str]) -> list[Action]:
        mine = self.host.machines(self.cluster)
        return [Action("destroy", f"machine {n}", "gone from cluster.yaml") for n in names if n in mine]

    def remove(self, names: list[str]) -> list[str]:
        mine = self.host.machines(self.cluster)
        done = []
        for n in names:
            if n in mine:
                self.host.destroy(self.cluster, n)
                done.append(n)
        return done

    def replace_plan(self, names: list[str]) -> list[Action]:
        return [Action("recreate", f"machine {n}", "replaced: a new machine from the root filesystem") for n in names]

    def replace(self, names: list[str]) -> list[str]:
        return self.remove(names)   # provision then creates them anew

    def destroy_plan(self) -> list[Action]:
        actions = [Action("destroy", f"machine {n}", f"owned by cluster {self.cluster}")
                   for n in sorted(self.host.machines(self.cluster))]
        return actions

    def destroy(self, actions: list[Action]) -> dict:
        from concurrent.futures import ThreadPoolExecutor

        names = [a.target.removeprefix("machine ") for a in actions if a.verb == "destroy"]
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
            list(pool.map(lambda n: self.host.destroy(self.cluster, n), names))
        bridge_removed = self.host.remove_bridge_if_unused(self.bridge)
        nat_removed = []
        if bridge_removed:   # the rules go with the bridge, whatever spec.local.nat says now
            from ccp.providers import local_nat

            nat_removed = local_nat.remove(self.bridge)
        return {"destroyed": names, "bridgeRemoved": bridge_removed, "natRulesRemoved": len(nat_removed)}

    def close(self) -> None:
        pass
