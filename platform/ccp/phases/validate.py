"""validate: the install ends by proving the platform works — the same checks as `ccp validate`."""

from __future__ import annotations

from ccp.cluster.facts import kubeconfig_path
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase


class Validate(Phase):
    name = "validate"
    layer = "validation"
    summary = "prove it works: PVC across nodes, API endpoints, DNS, Services and NetworkPolicy, metrics, logs"
    always = True

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"validation": ctx.spec_dump()["spec"]["validation"]}

    @staticmethod
    def checks(ctx: ClusterContext) -> list[str]:
        from ccp.validation.checks import CHECKS

        return [c for c in CHECKS if c != "pvc-persistence" or ctx.config.spec.validation.pvc.enabled]

    def plan(self, ctx: ClusterContext) -> list[Action]:
        checks = self.checks(ctx)
        return [Action("check", f"{len(checks)} checks", ", ".join(checks), len(checks))]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        from ccp.validation import runner
        from ccp.validation.options import from_config
        from ccp.validation.port import LightkubeValidation
        from ccp.validation.report import print_table

        checks = self.checks(ctx)
        port = LightkubeValidation(kubeconfig_path(ctx))
        results, notes = runner.run(port, from_config(ctx.config, nodes=ctx.nodes), only=checks, say=ctx.reporter.progress)
        print_table(results, notes)
        runner.raise_if_failed(results)
        return {r.check: {"status": r.status, "seconds": round(r.seconds, 1), **r.measurements,
                          **({"reason": r.detail} if r.status == "skipped" else {})} for r in results}
