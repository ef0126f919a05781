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

    @property
    def config(self):
        return self.loaded.config

    @property
    def rendered_dir(self) -> Path:
        return self.state_dir / "rendered"

    def spec_dump(self) -> dict:
        """The config as JSON data; secrets appear as their source (env:NAME), never their value."""
        return self.config.model_dump(mode="json")
