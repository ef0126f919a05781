"""The native provisioner: pyvmomi straight to vCenter.

Idempotent by name and ownership: a VM named like one of ours and carrying our mark
(extraConfig guestinfo.ccp.cluster, set inside the clone call itself, so no VM of ours ever exists
without it) is ours and is brought to spec; a VM with our name but not our mark is a stranger and
stops the run. A failed clone is never retried blindly: the next run probes first.
"""

from __future__ import annotations

import base64

from ccp.engine.phase import Action
from ccp.errors import InfrastructureError, InternalError, PreflightError
from ccp.providers import vsphere_session as vs_session
from ccp.providers.base import OWNER_KEY, ROLE_KEY
from ccp.providers.vsphere_flows import run_flows
from ccp.providers.vsphere_vm import VM_PROPS, ObservedVM

class VsphereInventory:
    """Reads what vCenter holds for this cluster. Preflight uses it whatever the provisioner."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.cfg = ctx.config
        self.vs = ctx.config.spec.vsphere
        self.nodes = ctx.nodes
        self._session = None
        self._placement = None

    # -------------------------------------------------- plumbing
    @property
    def session(self) -> vs_session.Session:
        if self._session is None:
            self._session = vs_session.connect(self.vs, self.ctx.loaded.base_dir)
        return self._session

    def placement(self) -> vs_session.Placement:
        if self._placement is None:
            self._placement = vs_session.find_placement(self.session, self.vs)
        return self._placement

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _say(self, name: str, text: str) -> None:
        if self.ctx.reporter is not None:
            self.ctx.reporter.item(name, text)

    # -------------------------------------------------- probe
    def observe(self) -> dict[str, ObservedVM]:
        """VMs in the datacenter that carry one of our node names or this cluster's mark."""
        from pyVmomi import vim

        pl = self.placement()
        if pl.datacenter is None:
            raise PreflightError(str(pl.missing["datacenter"]), "fix vsphere.datacenter")
        root = vs_session.retrieve(self.session, [pl.datacenter], vim.Datacenter, ["vmFolder"])[pl.datacenter]["vmFolder"]
        names = vs_session.retrieve_all(self.session, root, vim.VirtualMachine, ["name"])
        prefix = f"{self.cfg.metadata.name}-"
        ours = {n.name for n in self.nodes}
        candidates = [ref for ref, p in names.items() if p.get("name") in ours or p.get("name", "").startswith(prefix)]
        props = vs_session.retrieve(self.session, candidates, vim.VirtualMachine, VM_PROPS)
        return {p["name"]: ObservedVM.from_props(ref, p) for ref, p in props.items()}

    def strangers(self, observed: dict[str, ObservedVM]) -> list[str]:
        return sorted(n.name for n in self.nodes if n.name in observed and observed[n.name].owner != self.cfg.metadata.name)


class NativeProvider(VsphereInventory):
    name = "native"

    def guest_extra_config(self, node) -> dict[str, str]:
        """Extra keys for the guest. Production has none; the simulator shim adds its own."""
        return {}

    def plan(self) -> list[Action]:
        observed = self.observe()
        strangers = self.strangers(observed)
        if strangers:
            raise PreflightError(f"VMs named {', '.join(strangers)} exist but do not belong to cluster {self.cfg.metadata.name}",
                                 "ccp never adopts a VM it did not create: rename or remove them, or change metadata.name")
        actions = []
        for node in self.nodes:
            vm = observed.get(node.name)
            size = f"{node.cpus} vCPU, {node.memoryMiB} MiB, {node.diskGiB} GiB, {node.address}"
            if vm is None:
                actions.append(Action("create", f"VM {node.name}", size))
                continue
            changes = self._differences(node, vm)
            if changes:
                actions.append(Action("reconfigure", f"VM {node.name}", ", ".join(changes)))
            if vm.power != "poweredOn":
                actions.append(Action("power on", f"VM {node.name}", vm.power))
            elif vm.ip != str(node.address):
                actions.append(Action("wait for", f"the IP of VM {node.name}", f"reports {vm.ip or 'none'}"))
        # Recorded by the last provision and gone from cluster.yaml: those are leaving (nodes/remove, then
        # remove()), not left alone. The record is read here as the static provider reads it: the
        # cluster facts (their gone()) sit above the providers.
        recorded = self.ctx.outputs.get("provision", {}).get("nodes", {}) or {}
        extra = sorted(n for n, vm in observed.items() if vm.owner == self.cfg.metadata.name
                       and n not in {x.name for x in self.nodes} and n not in recorded)
        if extra and self.ctx.reporter is not None:
            self.ctx.reporter.note(f"VMs of this cluster no longer in cluster.yaml are left alone: {', '.join(extra)}")
        return actions

    @staticmethod
    def _differences(node, vm: ObservedVM) -> list[str]:
        out = []
        if vm.cpus != node.cpus:
            out.append(f"cpus {vm.cpus} -> {node.cpus}")
        if vm.memory != node.memoryMiB:
            out.append(f"memory {vm.memory} -> {node.memoryMiB} MiB")
        if vm.disk_kb < node.diskGiB * 1024 * 1024:
            out.append(f"disk {vm.disk_kb // 1048576} -> {node.diskGiB} GiB")
        return out

    # -------------------------------------------------- act
    def apply(self, actions: list[Action]) -> dict[str, dict]:
        from ccp.providers.vsphere_native_ops import NativeOps

        ops = NativeOps(self)
        observed = self.observe()
        flows = [(n.name, ops.create_flow(n, observed.get(n.name))) for n in self.nodes]
        results = run_flows(self.session, flows, self.vs.parallelism, self._say)
        if results.failed:
            raise InfrastructureError(
                f"{len(results.failed)} of {len(self.nodes)} VMs could not be created or configured",
                "fix the cause shown per VM, then resume: VMs already created are kept and reused",
                [f"{name}: {why}" for name, why in sorted(results.failed.items())])
        vms = results.done   # name -> VM
        ops.ensure_anti_affinity(vms)
        ips = ops.wait_for_ips(vms)
        from pyVmomi import vim

        facts = vs_session.retrieve(self.session, list(vms.values()), vim.VirtualMachine,
                                    ["name", "config.instanceUuid"])
        by_name = {p["name"]: (ref, p) for ref, p in facts.items()}
        return {n.name: {"role": n.role, "address": str(n.address), "reported": ips.get(n.name),
                         "moid": by_name[n.name][0]._moId, "uuid": by_name[n.name][1].get("config.instanceUuid", "")}
                for n in self.nodes}

    def cloud_init(self, node) -> dict[str, str]:
        base = self.ctx.rendered_dir / "cloud-init" / node.name
        try:
            meta, user = (base / "meta-data").read_bytes(), (base / "user-data").read_bytes()
        except FileNotFoundError:
            raise InternalError(f"cloud-init for {node.name} is not rendered in {base}",
                                "run the render phase first (do not skip it)") from None
        return {"guestinfo.metadata": base64.b64encode(meta).decode(), "guestinfo.metadata.encoding": "base64",
                "guestinfo.userdata": base64.b64encode(user).decode(), "guestinfo.userdata.encoding": "base64",
                OWNER_KEY: self.cfg.metadata.name, ROLE_KEY: node.role, "disk.EnableUUID": "TRUE",
                **self.guest_extra_config(node)}

    # -------------------------------------------------- scale-down
    def remove_plan(self, names: list[str]) -> list[Action]:
        observed = self.observe()
        return [Action("destroy", f"VM {n}", "removed from cluster.yaml (after nodes/remove took it out of the cluster)")
                for n in names if n in observed and observed[n].owner == self.cfg.metadata.name]

    def remove(self, names: list[str]) -> list[str]:
        from ccp.providers.vsphere_native_ops import NativeOps

        ops = NativeOps(self)
        observed = {n: vm for n, vm in self.observe().items() if n in names and vm.owner == self.cfg.metadata.name}
        results = run_flows(self.session, [(n, ops.destroy_flow(vm)) for n, vm in observed.items()],
                            self.vs.parallelism, self._say)
        if results.failed:
            raise InfrastructureError(f"{len(results.failed)} VMs of removed nodes could not be destroyed",
                                      "fix the cause shown per VM and rerun ccp install: the nodes are out of the cluster already",
                                      [f"{n}: {why}" for n, why in sorted(results.failed.items())])
        return sorted(results.done)

    def replace_plan(self, names: list[str]) -> list[Action]:
        return [Action("destroy", a.target, "to be created again by the provision phase") for a in self.remove_plan(names)]

    def replace(self, names: list[str]) -> list[str]:
        return self.remove(names)

    # -------------------------------------------------- destroy
    def destroy_plan(self) -> list[Action]:
        observed = self.observe()
        return [Action("destroy", f"VM {name}", f"{vm.power}, {vm.ip or 'no IP'}")
                for name, vm in sorted(observed.items()) if vm.owner == self.cfg.metadata.name]

    def destroy(self, actions: list[Action]) -> dict:
        from ccp.providers.vsphere_native_ops import NativeOps

        ops = NativeOps(self)
        observed = {n: vm for n, vm in self.observe().items() if vm.owner == self.cfg.metadata.name}
        results = run_flows(self.session, [(n, ops.destroy_flow(vm)) for n, vm in observed.items()],
                            self.vs.parallelism, self._say)
        ops.remove_anti_affinity()
        if results.failed:
            raise InfrastructureError(f"{len(results.failed)} VMs could not be destroyed",
                                      "fix the cause shown per VM and run ccp destroy again",
                                      [f"{n}: {why}" for n, why in sorted(results.failed.items())])
        return {"destroyed": sorted(results.done)}
