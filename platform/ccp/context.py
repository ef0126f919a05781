"""The context ccp's phases share: the loaded config and where this cluster's state lives."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccp.config.load import Loaded
from ccp.engine.phase import Context


def state_dir_for(cluster_name: str, override: Path | None) -> Path:
    if override:
        return Path(override)
    env = os.environ.get("CCP_STATE_DIR")
    return Path(env) if env else Path.cwd() / ".ccp" / cluster_name


@dataclass
class ClusterContext(Context):
    loaded: Loaded | None = None
    cache: dict[str, Any] = field(default_factory=dict)   # per-run memo (e.g. the render between plan and apply)
    ignore_preflight: set[str] = field(default_factory=set)

    def provider(self):
        """The machine provider for spec.provisioner, made once per run (it holds the vSphere session)."""
        if "provider" not in self.cache:
            from ccp.providers.factory import for_context

            self.cache["provider"] = for_context(self)
        return self.cache["provider"]

    def vsphere(self):
        """Read access to vCenter (preflight), shared with the native provider when that is in use."""
        from ccp.providers.vsphere_native import VsphereInventory

        provider = self.provider()
        if isinstance(provider, VsphereInventory):
            return provider
        if "vsphere" not in self.cache:
            self.cache["vsphere"] = VsphereInventory(self)
        return self.cache["vsphere"]

    def ssh(self):
        """One SSH session manager per run: connections are reused across phases."""
        if "ssh" not in self.cache:
            from ccp.remote.hostkeys import HostKeys
            from ccp.remote.ssh import SSH, Target

            spec = self.config.spec.ssh
            base = self.loaded.base_dir
            known = spec.knownHostsFile and Path(os.path.expanduser(spec.knownHostsFile))
            pins = self.cache.setdefault("pinned-host-keys", {})
            hostkeys = HostKeys(self.state_dir / "known_hosts", (known if known is None or known.is_absolute() else base / known),
                                on_pin=lambda host, fp: self._pinned(pins, host, fp))
            bastion = spec.bastion and Target("bastion", spec.bastion.address, spec.bastion.port)
            self.cache["ssh"] = SSH(spec.user, spec.private_key_path(base), hostkeys, bastion=bastion,
                                    bastion_user=spec.bastion.user if spec.bastion else None, limit=spec.parallelism,
                                    timeout=spec.commandTimeoutSeconds, log=self.log)
        return self.cache["ssh"]

    def take_pins(self) -> dict[str, str]:
        """Host keys pinned since the last call, for the phase's journal entry."""
        pins = dict(self.cache.get("pinned-host-keys", {}))
        self.cache.get("pinned-host-keys", {}).clear()
        return pins

    def _pinned(self, pins: dict, host: str, fingerprint: str) -> None:
        pins[host] = fingerprint
        if self.reporter is not None:
            self.reporter.note(f"pinned the SSH host key of {host}: {fingerprint}")

    def targets(self, names=None) -> list:
        """SSH targets for the machines the provision phase recorded (in inventory order)."""
        from ccp.config import inventory
        from ccp.remote.ssh import Target

        recorded = self.outputs.get("provision", {}).get("nodes", {})
        port = self.config.spec.ssh.port
        nodes = [n for n in inventory.build(self.config) if names is None or n.name in names]
        return [Target(n.name, recorded.get(n.name, {}).get("address", str(n.address)), port) for n in nodes]

    def provisioned(self) -> bool:
        return bool(self.outputs.get("provision", {}).get("nodes"))

    def close(self) -> None:
        held = self.cache.pop("ssh", None)
        if held is not None:
            held.close()
        for key in ("provider", "vsphere"):
            held = self.cache.pop(key, None)
            if held is not None:
                held.close()

    @property
    def config(self):
        return self.loaded.config

    @property
    def rendered_dir(self) -> Path:
        return self.state_dir / "rendered"

    def spec_dump(self) -> dict:
        """The config as JSON data; secrets appear as their source (env:NAME), never their value."""
        return self.config.model_dump(mode="json")
