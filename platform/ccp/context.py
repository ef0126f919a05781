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
            from ccp.providers.base import for_context

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

    def close(self) -> None:
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
