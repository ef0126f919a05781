"""A thin driver for the Terraform CLI's machine-readable UI (`-json`).

python-terraform is not usable (its destroy passes -force, removed in Terraform 0.15). Flags go
before the plan file. Every event line is parsed; resource progress goes to a callback, error
diagnostics become an InfrastructureError that names file:line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ccp import redact
from ccp.errors import InfrastructureError

Event = Callable[[str, str, dict], None]   # (event type, resource address, the raw message)


@dataclass
class RunResult:
    changes: dict[str, int] = field(default_factory=dict)          # add / change / remove
    planned: list[tuple[str, str]] = field(default_factory=list)   # (action, address)
    outputs: dict = field(default_factory=dict)
    diagnostics: list[dict] = field(default_factory=list)


class Terraform:
    def __init__(self, workdir: Path, *, binary: str = "terraform", env: dict[str, str] | None = None,
                 data_dir: Path | None = None, state: Path | None = None, cli_config: Path | None = None):
        self.workdir = workdir
        self.binary = binary
        self.state = state
        self.env = {**(env if env is not None else os.environ), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0",
                    "CHECKPOINT_DISABLE": "1"}
        if data_dir:
            self.env["TF_DATA_DIR"] = str(data_dir)
        if cli_config:
            self.env["TF_CLI_CONFIG_FILE"] = str(cli_config)

    def available(self) -> bool:
        return shutil.which(self.binary, path=self.env.get("PATH")) is not None

    # -------------------------------------------------- commands
    def init(self, on_event: Event | None = None) -> RunResult:
        args = ["init", "-json", "-input=false", "-no-color"]
        if self.state:
            self.state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            args.append(f"-backend-config=path={self.state}")
        return self._run(args, "terraform init", on_event)

    def plan(self, out_file: Path | None = None, *, destroy: bool = False, on_event: Event | None = None,
             variables: dict[str, str] | None = None, replace: list[str] = ()) -> RunResult:
        args = ["plan", "-json", "-input=false", "-no-color", "-lock-timeout=30s"]
        args += ["-destroy"] if destroy else []
        args += [f"-replace={address}" for address in replace]
        args += [f"-var={k}={v}" for k, v in (variables or {}).items()]
        args += [f"-out={out_file}"] if out_file else []
        return self._run(args, "terraform plan", on_event)

    def apply(self, plan_file: Path, on_event: Event | None = None) -> RunResult:
        result = self._run(["apply", "-json", "-input=false", "-no-color", "-auto-approve", str(plan_file)],
                           "terraform apply", on_event)
        result.outputs = self.output()
        return result

    def destroy(self, on_event: Event | None = None, variables: dict[str, str] | None = None) -> RunResult:
        args = ["destroy", "-json", "-input=false", "-no-color", "-auto-approve"]
        args += [f"-var={k}={v}" for k, v in (variables or {}).items()]
        return self._run(args, "terraform destroy", on_event)

    def output(self) -> dict:
        proc = subprocess.run([self.binary, "output", "-json", "-no-color"], cwd=self.workdir, env=self.env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise InfrastructureError(f"terraform output failed: {redact.scrub(proc.stderr.strip())[:500]}",
                                      "inspect the state with `terraform show` in the state directory")
        return {k: v.get("value") for k, v in json.loads(proc.stdout or "{}").items()}

    # -------------------------------------------------- streaming
    def _run(self, args: list[str], what: str, on_event: Event | None) -> RunResult:
        result = RunResult()
        if not self.available():
            raise InfrastructureError(f"{self.binary} is not installed", "install Terraform >= 1.5, or use provisioner: native")
        if not self.workdir.is_dir():
            raise InfrastructureError(f"the Terraform module {self.workdir} does not exist", "run the render phase first")
        try:
            proc = subprocess.Popen([self.binary, *args], cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        except FileNotFoundError:
            raise InfrastructureError(f"{self.binary} is not installed", "install Terraform >= 1.5, or use provisioner: native") from None
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            kind = msg.get("type", "")
            address = (msg.get("hook") or msg.get("change") or {}).get("resource", {}).get("addr", "")
            if kind == "planned_change":
                result.planned.append((msg["change"].get("action", ""), address))
            elif kind == "change_summary":
                result.changes = {k: msg["changes"].get(k, 0) for k in ("add", "change", "remove")}
            elif kind == "outputs":
                result.outputs = {k: v.get("value") for k, v in msg.get("outputs", {}).items()}
            elif kind == "diagnostic":
                result.diagnostics.append(msg["diagnostic"])
            if on_event is not None:
                on_event(kind, address, msg)
        stderr = proc.stderr.read()
        code = proc.wait()
        if code != 0:
            raise _error(what, result.diagnostics, stderr, self.workdir)
        return result


def _where(diag: dict, workdir: Path) -> str:
    rng = diag.get("range") or {}
    if not rng.get("filename"):
        return ""
    return f"{workdir / rng['filename']}:{rng.get('start', {}).get('line', 0)}: "


def _error(what: str, diagnostics: list[dict], stderr: str, workdir: Path) -> InfrastructureError:
    errors = [d for d in diagnostics if d.get("severity") == "error"]
    if not errors:
        tail = redact.scrub(stderr.strip())[-800:] or "no diagnostic"
        return InfrastructureError(f"{what} failed: {tail}", "rerun with --debug and read the run log")
    first = errors[0]
    details = [redact.scrub(f"{_where(d, workdir)}{d.get('summary', '')}: {d.get('detail', '')}".strip(": "))
               for d in errors]
    message = redact.scrub(f"{what} failed: {_where(first, workdir)}{first.get('summary', '')}")
    return InfrastructureError(message, _resolution(first), details)


def _resolution(diag: dict) -> str:
    text = f"{diag.get('summary', '')} {diag.get('detail', '')}".lower()
    if "provider" in text and any(w in text for w in ("install", "registry", "query", "download", "mirror")):
        return ("the vSphere provider cannot be installed (no network to a provider registry?): set "
                "spec.terraform.providerMirror to a directory made with `terraform providers mirror`, "
                "or use provisioner: native")
    return "fix the cause above, then resume"


def mirror_cli_config(mirror: Path, into: Path) -> Path:
    """A CLI config that takes every provider from a filesystem mirror (air-gapped installs)."""
    into.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    into.write_text("provider_installation {\n  filesystem_mirror {\n"
                    f"    path = {json.dumps(str(mirror))}\n  }}\n}}\n")
    return into
