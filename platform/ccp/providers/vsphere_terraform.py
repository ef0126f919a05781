"""The terraform provisioner: the rendered module driven by our -json driver. State lives in
<state>/terraform/; the password travels only as TF_VAR_vsphere_password."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ccp.engine.phase import Action
from ccp.errors import CcpError, InfrastructureError
from ccp.providers.terraform import Terraform, mirror_cli_config

RESOURCE = "vsphere_virtual_machine.node"


class TerraformProvider:
    name = "terraform"

    def __init__(self, ctx):
        self.ctx = ctx
        self.cfg = ctx.config
        self.nodes = ctx.nodes
        self.dir = ctx.state_dir / "terraform"
        opts = ctx.config.spec.terraform
        cli_config = None
        if opts.providerMirror:
            mirror = Path(os.path.expanduser(opts.providerMirror))
            mirror = mirror if mirror.is_absolute() else ctx.loaded.base_dir / mirror
            cli_config = mirror_cli_config(mirror, self.dir / "terraformrc")
        from ccp.render import terraform_env

        self.tf = Terraform(ctx.rendered_dir / "terraform", binary=opts.binary, env=terraform_env(ctx.loaded),
                            data_dir=self.dir / ".terraform", state=self.dir / "terraform.tfstate", cli_config=cli_config)

    def _event(self, kind: str, address: str, msg: dict) -> None:
        name = address.split('"')[1] if '"' in address else address
        text = {"apply_start": "creating" if msg.get("hook", {}).get("action") == "create" else msg.get("hook", {}).get("action", ""),
                "apply_progress": f"still working ({msg.get('hook', {}).get('elapsed_seconds', 0)}s)",
                "apply_complete": "done", "apply_errored": "failed"}.get(kind)
        if text and self.ctx.reporter is not None:
            self.ctx.reporter.item(name, text)
        if self.ctx.log:
            self.ctx.log.info("terraform %s %s", kind, address or msg.get("@message", ""))

    def _in_state(self) -> set[str]:
        try:
            state = json.loads((self.dir / "terraform.tfstate").read_text())
        except (OSError, ValueError):
            return set()
        return {str(i.get("index_key")) for r in state.get("resources", []) if f"{r.get('type')}.{r.get('name')}" == RESOURCE
                for i in r.get("instances", [])}

    def plan(self) -> list[Action]:
        note = self.ctx.reporter.note if self.ctx.reporter is not None else (lambda text: None)
        if not self.tf.workdir.is_dir():
            note("Terraform plan unavailable until the render phase has written the module; showing ccp's own plan")
        elif not (self.dir / ".terraform").is_dir():
            # a plan changes nothing, and `terraform init` would (provider downloads, a lock file)
            note("Terraform is not initialised yet (the provision phase does that); showing ccp's own plan")
        elif self.tf.available():
            try:
                result = self.tf.plan()
                ips = {f'{RESOURCE}["{n.name}"]': n.address for n in self.nodes}   # a new VM's address, said in the plan
                return [Action(a, f"{addr}", f"terraform plan, {ips[addr]}" if a == "create" and addr in ips else "terraform plan")
                        for a, addr in result.planned if a != "no-op"]
            except CcpError as exc:
                note(f"Terraform plan unavailable ({exc.message}); showing ccp's own plan from the state file")
        else:
            note(f"Terraform plan unavailable: {self.tf.binary} is not installed; showing ccp's own plan")
        have = self._in_state()
        return [Action("create", f"VM {n.name}", f"{n.cpus} vCPU, {n.memoryMiB} MiB, {n.diskGiB} GiB, {n.address}")
                for n in self.nodes if n.name not in have]

    def apply(self, actions) -> dict[str, dict]:
        self.tf.init(self._event)
        plan_file = self.dir / "install.tfplan"
        self.tf.plan(plan_file, on_event=self._event)
        try:
            result = self.tf.apply(plan_file, on_event=self._event)
        finally:
            plan_file.unlink(missing_ok=True)
        nodes = result.outputs.get("nodes") or {}
        missing = [n.name for n in self.nodes if n.name not in nodes]
        if missing:
            raise InfrastructureError(f"terraform finished but its outputs lack {', '.join(missing)}",
                                      "inspect the state in the state directory's terraform/ folder")
        return {n.name: {"role": n.role, "address": str(n.address), "reported": nodes[n.name].get("guest_address"),
                         "moid": nodes[n.name].get("moid", ""), "uuid": nodes[n.name].get("uuid", "")} for n in self.nodes}

    def remove_plan(self, names: list[str]) -> list[Action]:
        return []   # terraform's own plan deletes them: the rendered module no longer has them

    def remove(self, names: list[str]) -> list[str]:
        return [n for n in names if n not in self._in_state()]

    def replace_plan(self, names: list[str]) -> list[Action]:
        have = self._in_state()
        return [Action("replace", f"VM {n}", "terraform apply -replace: destroyed and created again") for n in names if n in have]

    def replace(self, names: list[str]) -> list[str]:
        self.tf.init(self._event)
        plan_file = self.dir / "replace.tfplan"
        self.tf.plan(plan_file, on_event=self._event, replace=[f'{RESOURCE}["{n}"]' for n in names])
        try:
            self.tf.apply(plan_file, on_event=self._event)
        finally:
            plan_file.unlink(missing_ok=True)
        return list(names)

    def destroy_plan(self) -> list[Action]:
        return [Action("destroy", f"VM {name}", "in the Terraform state") for name in sorted(self._in_state())]

    def destroy(self, actions) -> dict:
        self.tf.init(self._event)
        self.tf.destroy(self._event)
        return {"destroyed": sorted(a.target.removeprefix("VM ") for a in actions)}

    def close(self) -> None:
        pass
