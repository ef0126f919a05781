"""The context ccp's phases share: the loaded config, where this cluster's state lives, the options of
the command that runs them, and the sessions a run opens.

Everything on it is a typed field or property: what a run computes once (the nodes, the rendered
files) is a property computed on first use for this config, what it connects to (SSH, the provider,
the Kubernetes clients) lives on ``sessions`` and is closed once, by ``close``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ccp.config.load import Loaded
from ccp.engine.phase import Context

if TYPE_CHECKING:
    from ccp.addons import RenderedAddon
    from ccp.config.inventory import Node
    from ccp.providers.base import Provider
    from ccp.providers.vsphere_native import VsphereInventory
    from ccp.remote.kube_nodes import LightkubeNodes
    from ccp.remote.kube_objects import LightkubeObjects
    from ccp.remote.ssh import SSH, Target
    from ccp.render import Change, Rendered


def state_dir_for(cluster_name: str, override: Path | None) -> Path:
    if override:
        return Path(override)
    env = os.environ.get("CCP_STATE_DIR")
    return Path(env) if env else Path.cwd() / ".ccp" / cluster_name


@dataclass
class Sessions:
    """What a run connects to, made on first use and closed once at the end (ClusterContext.close). A
    context made for another Kubernetes version (at_version) holds the same Sessions, so nothing is
    opened twice or left open."""

    ssh: SSH | None = None
    provider: Provider | None = None
    vsphere: VsphereInventory | None = None    # read access to vCenter when the provider is not native
    objects: LightkubeObjects | None = None    # the cni and add-ons phases' client (cluster.facts.objects_port)
    nodes: LightkubeNodes | None = None        # cordon, drain, node reads (cluster.facts.nodes_port)
    pinned: dict[str, str] = field(default_factory=dict)   # host -> key fingerprint, pinned since take_pins

    def close(self) -> None:
        for name in ("ssh", "provider", "vsphere"):   # the Kubernetes clients hold no connection to end
            held = getattr(self, name)
            setattr(self, name, None)
            if held is not None:
                held.close()


@dataclass
class ClusterContext(Context):
    loaded: Loaded | None = None
    ignore_preflight: set[str] = field(default_factory=set)   # --ignore-preflight
    merge_kubeconfig: bool = False                            # --merge-kubeconfig (the kubeconfig phase)
    sessions: Sessions = field(default_factory=Sessions)
    # the render phase's diff of what it would write (its plan), so its apply writes exactly that
    render_changes: list[Change] | None = field(default=None, init=False, repr=False)

    @property
    def config(self):
        return self.loaded.config

    @property
    def rendered_dir(self) -> Path:
        return self.state_dir / "rendered"

    # -------------------------------------------------- computed once for this config
    @cached_property
    def nodes(self) -> list[Node]:
        """Every node of cluster.yaml in role order (the inventory). A node whose machine the last provision
        recorded keeps that address; a new one takes the lowest free address of the range (inventory.build).
        Read after the journal's outputs are recalled (cluster_run does that first), so every phase, the
        rendered files and the provider see the same addresses."""
        from ccp.config import inventory

        return inventory.build(self.config, recorded=self.recorded_addresses())

    def recorded_addresses(self) -> dict[str, str]:
        """{node name: address} of the machines the last provision recorded (empty for a fresh cluster)."""
        recorded = self.outputs.get("provision", {}).get("nodes") or {}
        return {name: rec["address"] for name, rec in recorded.items() if rec.get("address")}

    @cached_property
    def rendered(self) -> Rendered:
        """Every file the render phase writes, rendered once between its plan and its apply."""
        from ccp import render

        return render.render_all(self.loaded, self.nodes)

    @cached_property
    def rendered_addons(self) -> list[RenderedAddon]:
        """The enabled add-ons rendered from this config's bill of materials (without their secrets)."""
        from ccp import addons
        from ccp.config.versions import bom_of

        bom = bom_of(self.config)
        return [addons.render(a, self.config, bom) for a in addons.enabled_addons(self.config)]

    def at_version(self, version: str, bill_of_materials: str | None = None) -> ClusterContext:
        """This context with spec.kubernetes.version set to ``version`` (and its own bill of materials,
        for a cluster that has one): `ccp upgrade` applies the add-ons from the target's. Sessions,
        outputs and reporter are shared; the nodes and rendered files are computed anew."""
        from ccp.config.versions import retarget

        cfg = retarget(self.config, version, bill_of_materials)
        return dataclasses.replace(self, loaded=dataclasses.replace(self.loaded, config=cfg))

    # -------------------------------------------------- sessions
    def provider(self) -> Provider:
        """The machine provider for spec.provisioner, made once per run (it holds the vSphere session)."""
        if self.sessions.provider is None:
            from ccp.providers.factory import for_context

            self.sessions.provider = for_context(self)
        return self.sessions.provider

    def vsphere(self) -> VsphereInventory:
        """Read access to vCenter (preflight), shared with the native provider when that is in use."""
        from ccp.providers.vsphere_native import VsphereInventory

        provider = self.provider()
        if isinstance(provider, VsphereInventory):
            return provider
        if self.sessions.vsphere is None:
            self.sessions.vsphere = VsphereInventory(self)
        return self.sessions.vsphere

    def ssh(self) -> SSH:
        """One SSH session manager per run: connections are reused across phases."""
        if self.sessions.ssh is None:
            from ccp.remote.hostkeys import HostKeys
            from ccp.remote.ssh import SSH, Target

            spec = self.config.spec.ssh
            base = self.loaded.base_dir
            known = spec.knownHostsFile and Path(os.path.expanduser(spec.knownHostsFile))
            hostkeys = HostKeys(self.state_dir / "known_hosts", (known if known is None or known.is_absolute() else base / known),
                                on_pin=self._pinned)
            bastion = spec.bastion and Target("bastion", spec.bastion.address, spec.bastion.port)
            self.sessions.ssh = SSH(spec.user, spec.private_key_path(base), hostkeys, bastion=bastion,
                                    bastion_user=spec.bastion.user if spec.bastion else None, limit=spec.parallelism,
                                    timeout=spec.commandTimeoutSeconds, log=self.log)
        return self.sessions.ssh

    def take_pins(self) -> dict[str, str]:
        """Host keys pinned since the last call, for the phase's journal entry."""
        pins = dict(self.sessions.pinned)
        self.sessions.pinned.clear()
        return pins

    def _pinned(self, host: str, fingerprint: str) -> None:
        self.sessions.pinned[host] = fingerprint
        if self.reporter is not None:
            self.reporter.note(f"pinned the SSH host key of {host}: {fingerprint}")

    def targets(self, names=None) -> list[Target]:
        """SSH targets for the machines the provision phase recorded (in inventory order)."""
        from ccp.remote.ssh import Target

        recorded = self.outputs.get("provision", {}).get("nodes", {})
        port = self.config.spec.ssh.port
        nodes = [n for n in self.nodes if names is None or n.name in names]
        return [Target(n.name, recorded.get(n.name, {}).get("address", str(n.address)), port) for n in nodes]

    def provisioned(self) -> bool:
        return bool(self.outputs.get("provision", {}).get("nodes"))

    def close(self) -> None:
        self.sessions.close()

    def spec_dump(self) -> dict:
        """The config as JSON data; secrets appear as their source (env:NAME), never their value."""
        return self.config.model_dump(mode="json")
