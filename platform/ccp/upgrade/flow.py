"""What `ccp upgrade` checks and writes around its phases: the inputs (skew, hosts, a package repository)
before the plan is shown, the PodDisruptionBudgets that may block a drain, the preflight (the diagnose
checks, one API server version), and cluster.yaml's version, written only when everything finished."""

from __future__ import annotations

from ccp.errors import ConfigError, PreflightError


def check_inputs(loaded, target: str) -> str:
    """-> "noop", "patch" or "minor"; a ConfigError for a target or a cluster ccp cannot upgrade, before
    anything is shown or changed."""
    from ccp.upgrade import skew
    from ccp.upgrade.nodes import node_script

    kind = skew.check(loaded.config.spec.kubernetes.version, target)
    if loaded.config.spec.provisioner == "static" and not loaded.config.spec.hosts:
        raise ConfigError("no hosts to upgrade", "check spec.hosts")
    if kind != "noop":
        node_script(loaded.config, target)   # an air-gapped cluster has no repository for the nodes' packages
    return kind


def pdb_warnings(ctx) -> list[str]:
    """The PodDisruptionBudgets that allow no disruption now: a drain would wait on them."""
    from ccp.cluster.facts import nodes_port
    from ccp.remote.drain import tight_budgets

    port = nodes_port(ctx)
    return [f"may block a drain: {b}" for b in tight_budgets(port.pdbs())] if port is not None else []


def apiserver_versions(snapshot) -> set[str]:
    return {c["image"].rsplit(":", 1)[-1] for p in snapshot.pods
            if (p["metadata"].get("labels") or {}).get("component") == "kube-apiserver"
            for c in (p.get("spec") or {}).get("containers") or [] if ":" in c.get("image", "")}


def preflight(ctx, target: str, say) -> list[str]:
    """-> warnings to show; raises PreflightError with every failing check at once."""
    from ccp.cluster.facts import kubeconfig_path
    from ccp.diagnose import runner
    from ccp.diagnose.port import LightkubeDiagnose

    current = ctx.config.spec.kubernetes.version   # cluster.yaml changes only once the upgrade finished
    kube_path = kubeconfig_path(ctx)
    kube = LightkubeDiagnose(kube_path)
    rep = runner.run(ctx=ctx, kube=kube, kubeconfig=kube_path, only={"hosts", "kubernetes", "certs"}, say=say)
    failed = [f"{f.section}/{f.check}: {f.what}" + "".join(f"\n    {e}" for e in f.evidence[:3]) for f in rep.findings
              if f.severity == "fail"]
    failed += [f"certs/expiry: {f.what}" for f in rep.findings if f.section == "certs" and f.severity == "warn"
               and "expires in" in f.what]   # an upgrade renews them, but one about to lapse is a risk now
    versions = apiserver_versions(kube.snapshot())
    if len(versions) > 1:
        failed.append(f"kubernetes/apiserver-versions: API servers run different versions: {', '.join(sorted(versions))}")
    elif versions and versions != {f"v{current}"}:
        failed.append(f"kubernetes/apiserver-versions: the API servers run {versions.pop()}, cluster.yaml says {current}")
    if failed:
        raise PreflightError(f"the upgrade to {target} cannot start: {len(failed)} check(s) failed",
                             "fix each one (`ccp diagnose --config F` says more), then run ccp upgrade again", failed)
    return pdb_warnings(ctx)


def write_version(path, target: str) -> str | None:
    """Set spec.kubernetes.version in cluster.yaml by replacing that one value where it stands, so every
    comment and the layout stay as the user wrote them; -> None, or what the user must change by hand."""
    import re

    from ruamel.yaml import YAML

    todo = f'set spec.kubernetes.version: "{target}" in {path}'
    try:
        text = path.read_text()
        node = YAML(typ="rt").load(text)["spec"]["kubernetes"]
        line, col = node.lc.value("version")
        lines = text.splitlines(keepends=True)
        m = re.compile(r"""("[^"]*"|'[^']*'|[^\s#]+)""").match(lines[line], col)
        if not m:
            return todo
        lines[line] = lines[line][:col] + f'"{target}"' + lines[line][m.end():]
        path.write_text("".join(lines))
        return None
    except Exception:  # read-only, templated or unusual files: say exactly what to change instead
        return todo
