"""`ccp appliance build`: runs appliance/build.py from this checkout and shows its steps as they go.

The build script reports each step as a JSON line; this side turns them into progress (a spinner
with the running time of the current step, a line per finished step with its time, the total at
the end) and its errors into ccp's error families.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ccp.errors import ConfigError, InfrastructureError, InternalError, PreflightError

STEPS = {
    "tools": "check the build tools",
    "rootfs": "Debian root filesystem (mmdebstrap, minutes on first run)",
    "wheels": "wheels of ccp and its dependencies",
    "assemble": "ccp's venv, first-boot service, terraform, bundle",
    "image": "raw disk with a bootable ext4 partition",
    "vmdk": "streamOptimized VMDK",
    "ova": "OVF descriptor, SHA256 manifest, OVA",
}
FAMILIES = {2: ConfigError, 3: PreflightError}


@dataclass
class Result:
    ova: Path | None = None
    steps: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def script() -> Path:
    path = Path(__file__).resolve().parents[3] / "appliance" / "build.py"
    if not path.is_file():
        raise ConfigError("the appliance is built from a ccp checkout, and this ccp is installed without one",
                          "clone ccp's repository and run `ccp appliance build` from its .venv")
    return path


def build(args: list[str], on_event) -> Result:
    """Run the build script with ``args``; ``on_event(event)`` sees every step event as it comes."""
    import tempfile

    stderr = tempfile.TemporaryFile(mode="w+")   # a file, not a pipe: a long traceback cannot block the build
    proc = subprocess.Popen([sys.executable, str(script()), "--events", *args], stdout=subprocess.PIPE,
                            stderr=stderr, text=True)
    result = Result()
    error = None
    try:
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "error" in event:
                error = event
                continue
            if event.get("step") == "total":
                result.ova, result.seconds = Path(event["detail"]), event["seconds"]
            elif event.get("state") in ("done", "reused"):
                result.steps.append(event)
            on_event(event)
    finally:
        rc = proc.wait()
    if error is not None:
        family = FAMILIES.get(error.get("code"), InfrastructureError)
        raise family(f"appliance build: {error['error']}", error.get("resolution", ""))
    if rc != 0:
        stderr.seek(0)
        raise InternalError(f"the appliance build script stopped with exit code {rc}",
                            f"its last words: {stderr.read().strip()[-300:] or 'none'}; the build log is in the --out directory")
    stderr.close()
    return result


class Progress:
    """A line per finished step with its time; a spinner naming the running step on a terminal."""

    def __init__(self, console):
        self.console, self.status, self.t0 = console, None, time.monotonic()

    def __call__(self, event: dict) -> None:
        from ccp import ui

        step, state = event.get("step"), event.get("state")
        if state == "start":
            if self.console.is_terminal:
                self.status = self.console.status(f"{step}: {STEPS.get(step, '')}")
                self.status.start()
            return
        if self.status is not None:
            self.status.stop()
            self.status = None
        if step == "total":
            return
        mark = "[green]✓[/]" if state == "done" else "[dim]•[/]"
        self.console.print(f"{mark} {step:<9} {ui.fmt_seconds(event.get('seconds', 0)):>8}  "
                           f"[dim]{ui.escape(state)}: {ui.escape(event.get('detail', ''))}[/]")

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
