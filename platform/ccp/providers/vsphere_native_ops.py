"""What the native provisioner does to vCenter: the per-VM create and destroy flows, DRS
anti-affinity rules, and waiting for guest IPs. Each step probes before it acts."""

from __future__ import annotations

import time

from ccp.errors import InfrastructureError
from ccp.providers import vsphere_session as vs_session
from ccp.providers.vsphere_vm import ATTRIBUTE, FRESH_PROPS, VM_PROPS, ObservedVM


class NativeOps:
    def __init__(self, provider):
        self.p = provider
        self.session = provider.session
        self.pl = provider.placement()
        self.cluster_name = provider.cfg.metadata.name
        self._template = None
        self._field_key = None

    # -------------------------------------------------- create
    def template_facts(self) -> dict:
        """The template's NIC, disk and snapshot (a snapshot makes linked clones possible)."""
        from pyVmomi import vim

        if self._template is None:
            if self.pl.missing:
                first = next(iter(self.pl.missing.values()))
                raise InfrastructureError(str(first), "run `ccp preflight` and fix what it reports")
            p = vs_session.retrieve(self.session, [self.pl.template], vim.VirtualMachine,
                                    ["config.hardware.device", "snapshot"])[self.pl.template]
            devices = p.get("config.hardware.device") or []
            snap = p.get("snapshot")
            self._template = {
                "nic": next((d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)), None),
                "snapshot": snap.currentSnapshot if snap is not None else None,
            }
        return self._template

    def clone_spec(self, node):
        from pyVmomi import vim

        facts = self.template_facts()
        relocate = vim.vm.RelocateSpec(pool=self.pl.pool, datastore=self.pl.datastore)
        extra = [vim.option.OptionValue(key=k, value=v) for k, v in self.p.cloud_init(node).items()]
        config = vim.vm.ConfigSpec(numCPUs=node.cpus, memoryMB=node.memoryMiB, extraConfig=extra,
                                   annotation=f"managed-by=ccp cluster={self.cluster_name} role={node.role}")
        nic = facts["nic"]
        if nic is not None:
            nic.backing = self._backing()
            config.deviceChange = [vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic)]
        spec = vim.vm.CloneSpec(location=relocate, powerOn=False, template=False, config=config)
        if facts["snapshot"] is not None:
            relocate.diskMoveType = "createNewChildDiskBacking"
            spec.snapshot = facts["snapshot"]
        return spec

    def _backing(self):
        from pyVmomi import vim

        net = self.pl.network
        if isinstance(net, vim.dvs.DistributedVirtualPortgroup):
            p = vs_session.retrieve(self.session, [net], type(net), ["key", "config.distributedVirtualSwitch"])[net]
            uuid = vs_session.retrieve(self.session, [p["config.distributedVirtualSwitch"]],
                                       vim.DistributedVirtualSwitch, ["uuid"])[p["config.distributedVirtualSwitch"]]["uuid"]
            port = vim.dvs.PortConnection(portgroupKey=p["key"], switchUuid=uuid)
            return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
        return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(network=net, deviceName=self.p.vs.network)

    def create_flow(self, node, vm: ObservedVM | None):
        """clone (if missing) -> reconfigure (if it differs) -> power on (if off). Yields tasks."""
        from pyVmomi import vim

        if vm is None:
            linked = self.template_facts()["snapshot"] is not None
            self.p._say(node.name, "cloning (linked, from the template's snapshot)" if linked else "cloning")
            try:
                ref = yield self.pl.template.CloneVM_Task(folder=self.pl.folder, name=node.name, spec=self.clone_spec(node))
            except vs_session.TaskFailed as exc:
                if "DuplicateName" not in exc.message:
                    raise
                ref = None  # created meanwhile (an earlier run's clone finishing): probe it like any other
            if ref is None:
                ref, p = next(iter(self._find(node.name).items()))
                vm = ObservedVM.from_props(ref, p)
            else:
                p = vs_session.retrieve(self.session, [ref], vim.VirtualMachine, FRESH_PROPS)[ref]
                vm = ObservedVM.from_props(ref, p, owner=self.cluster_name)
            if vm.owner != self.cluster_name:
                raise InfrastructureError(f"{node.name} appeared but does not carry cluster {self.cluster_name}'s mark")
            self._mark(vm.ref)
        changes = self.p._differences(node, vm)
        if changes:
            self.p._say(node.name, "reconfiguring: " + ", ".join(changes))
            yield vm.ref.ReconfigVM_Task(self._reconfig_spec(node, vm))
        if vm.power != "poweredOn":
            self.p._say(node.name, "powering on")
            yield vm.ref.PowerOnVM_Task()
        return vm.ref

    def _find(self, name: str) -> dict:
        from pyVmomi import vim

        observed = self.p.observe()
        if name not in observed:
            raise InfrastructureError(f"{name} could not be cloned and does not exist")
        return vs_session.retrieve(self.session, [observed[name].ref], vim.VirtualMachine, VM_PROPS)

    def _reconfig_spec(self, node, vm: ObservedVM):
        from pyVmomi import vim

        spec = vim.vm.ConfigSpec(numCPUs=node.cpus, memoryMB=node.memoryMiB)
        want_kb = node.diskGiB * 1024 * 1024
        if vm.disk is not None and vm.disk_kb < want_kb:
            vm.disk.capacityInKB = want_kb
            spec.deviceChange = [vim.vm.device.VirtualDeviceSpec(operation="edit", device=vm.disk)]
        return spec

    def _mark(self, ref) -> None:
        """The custom attribute is for people (visible in the vSphere client); the extraConfig mark
        is what ccp relies on, so a failure here is only logged."""
        from pyVmomi import vim

        try:
            cfm = self.session.content.customFieldsManager
            if self._field_key is None:
                field = next((f for f in cfm.field or [] if f.name == ATTRIBUTE), None)
                if field is None:
                    try:
                        field = cfm.AddCustomFieldDef(name=ATTRIBUTE, moType=vim.VirtualMachine)
                    except vim.fault.DuplicateName:
                        field = next(f for f in cfm.field if f.name == ATTRIBUTE)
                self._field_key = field.key
            cfm.SetField(entity=ref, key=self._field_key, value=self.cluster_name)
        except Exception as exc:  # permissions to custom attributes are often missing; not fatal
            if self.p.ctx.log:
                self.p.ctx.log.warning("could not set custom attribute %s: %s", ATTRIBUTE, exc)

    # -------------------------------------------------- DRS
    def _rules(self) -> list:
        from pyVmomi import vim

        if not isinstance(self.pl.cluster, vim.ClusterComputeResource):
            return []
        props = vs_session.retrieve(self.session, [self.pl.cluster], vim.ClusterComputeResource, ["configurationEx"])
        return list(props[self.pl.cluster]["configurationEx"].rule or [])

    def ensure_anti_affinity(self, vms: dict[str, object]) -> None:
        """Control planes (etcd) and load balancers each spread over ESXi hosts."""
        from pyVmomi import vim

        if not isinstance(self.pl.cluster, vim.ClusterComputeResource):
            return
        existing = {r.name: r for r in self._rules()}
        specs = []
        for role in ("control-plane", "loadbalancer"):
            members = [vms[n.name] for n in self.p.nodes if n.role == role and n.name in vms]
            if len(members) < 2:
                continue
            name = f"{self.cluster_name}-{role}-anti-affinity"
            rule = existing.get(name)
            if rule is not None and {v._moId for v in rule.vm} == {v._moId for v in members}:
                continue
            info = vim.cluster.AntiAffinityRuleSpec(name=name, enabled=True, vm=members)
            if rule is not None:
                info.key = rule.key
            specs.append(vim.cluster.RuleSpec(operation="edit" if rule is not None else "add", info=info))
        if specs:
            self._reconfigure_cluster(specs)

    def remove_anti_affinity(self) -> None:
        from pyVmomi import vim

        prefix = f"{self.cluster_name}-"
        specs = [vim.cluster.RuleSpec(operation="remove", removeKey=r.key) for r in self._rules()
                 if r.name.startswith(prefix) and r.name.endswith("-anti-affinity")]
        if specs:
            self._reconfigure_cluster(specs)

    def _reconfigure_cluster(self, rule_specs) -> None:
        from pyVmomi import vim

        from ccp.providers.vsphere_flows import run_flows

        def flow():
            yield self.pl.cluster.ReconfigureComputeResource_Task(vim.cluster.ConfigSpecEx(rulesSpec=rule_specs), modify=True)

        res = run_flows(self.session, [("drs-rules", flow())], 1)
        if res.failed:
            raise InfrastructureError(f"the DRS anti-affinity rules could not be set: {res.failed['drs-rules']}",
                                      "check the DRS permissions of the vSphere user, then resume")

    # -------------------------------------------------- IPs
    def wait_for_ips(self, vms: dict[str, object]) -> dict[str, str]:
        """Wait (WaitForUpdatesEx, no polling loop) until every VM reports the address ccp gave it."""
        from pyVmomi import vim, vmodl

        want = {n.name: str(n.address) for n in self.p.nodes if n.name in vms}
        names = {ref: name for name, ref in vms.items()}
        seen: dict[str, str | None] = {}
        pc = self.session.content.propertyCollector.CreatePropertyCollector()
        try:
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=ref) for ref in vms.values()],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=["guest.ipAddress"])])
            pc.CreateFilter(spec, partialUpdates=False)
            deadline = time.monotonic() + self.p.vs.ipTimeoutSeconds
            self._last_said = time.monotonic()
            version = ""
            while any(seen.get(n) != ip for n, ip in want.items()):
                left = int(deadline - time.monotonic())
                if left <= 0:
                    break
                self._waiting(want, seen, left)
                slice_ = min(left, self.p.vs.poll_seconds, 10)   # wake up to say who is still waiting
                update = pc.WaitForUpdatesEx(version, vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=slice_))
                if update is None:
                    continue
                version = update.version
                for fs in update.filterSet or []:
                    for obj in fs.objectSet or []:
                        for change in obj.changeSet or []:
                            name = names[obj.obj]
                            seen[name] = change.val
                            if change.val == want[name]:
                                self.p._say(name, f"up at {change.val}")
        finally:
            pc.Destroy()
        missing = {n: seen.get(n) for n, ip in want.items() if seen.get(n) != ip}
        if missing:
            raise InfrastructureError(
                f"{len(missing)} VMs did not report their address within {self.p.vs.ipTimeoutSeconds}s",
                "open a VM's console: the template needs VMware Tools and cloud-init with the VMware datasource; "
                "then resume (the VMs are kept)",
                [f"{n}: expected {want[n]}, reports {ip or 'nothing'}" for n, ip in sorted(missing.items())])
        return {n: seen[n] for n in want}

    def _waiting(self, want: dict[str, str], seen: dict, left: int) -> None:
        """Which VMs have not reported their address yet, and how long ccp still waits: on the spinner at a
        terminal, every 30 s as a line otherwise (and always in the run log)."""
        waiting = sorted(n for n, ip in want.items() if seen.get(n) != ip)
        shown = ", ".join(waiting[:6]) + (f" and {len(waiting) - 6} more" if len(waiting) > 6 else "")
        text = f"waiting for the addresses of {len(waiting)} VMs ({shown}); {left}s left"
        reporter = self.p.ctx.reporter
        if reporter is None:
            return
        now = time.monotonic()
        if now - self._last_said >= 30:
            self._last_said = now
            reporter.note(text)
        else:
            reporter.progress(text)

    # -------------------------------------------------- destroy
    def destroy_flow(self, vm: ObservedVM):
        if vm.power == "poweredOn":
            self.p._say(vm.name, "powering off")
            try:
                yield vm.ref.PowerOffVM_Task()
            except vs_session.TaskFailed as exc:
                if "InvalidPowerState" not in exc.message:
                    raise
        self.p._say(vm.name, "destroying")
        yield vm.ref.Destroy_Task()
