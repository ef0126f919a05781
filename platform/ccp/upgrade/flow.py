"""What `ccp upgrade` checks and writes around its phases: the inputs (skew, hosts, a package repository)
before the plan is shown, the PodDisruptionBudgets that may block a drain, the preflight (the diagnose
checks, one API server version), and cluster.yaml's version, written only when everything finished."""

from __future__ import annotations

from ccp.errors import ConfigError, PreflightError


def check_inputs(loaded, target: str, bill_of_materials=None) -> tuple[str, str | None]:
    """-> ("noop", "patch" or "minor", the target's bill of materials: an absolute path or None); a
    ConfigError for a target or a cluster ccp cannot upgrade, before anything is shown or changed."""
    from ccp.config.versions import retarget
    from ccp.upgrade import skew
    from ccp.upgrade.nodes import node_script

    cfg = loaded.config
    kind = skew.check(cfg.spec.kubernetes.version, target)
    bom = target_bom(cfg, target, bill_of_materials)
    if cfg.spec.provisioner == "static" and not cfg.spec.hosts:
        raise ConfigError("no hosts to upgrade", "check spec.hosts")
    if kind != "noop":
        target_cfg = retarget(cfg, target, bom)
        node_script(cfg, target_cfg)   # where the nodes' packages come from: refused if nowhere
        if cfg.spec.offline.bundle:
            from ccp.cluster.facts import bundle_path_of
            from ccp.upgrade.stage import check_bundle

            check_bundle(cfg, target_cfg, bundle_path_of(loaded))
    return kind, bom


def target_bom(cfg, target: str, given) -> str | None:
    """The target's own bill of materials (--bill-of-materials), checked: required when the cluster runs
    on one of its own (ccp's cannot know a custom build's images), and about the target version."""
    from pathlib import Path

    from ccp.config.versions import load_custom

    current = cfg.spec.kubernetes.billOfMaterials
    if given is None:
        if current:
            raise ConfigError(f"this cluster runs on a bill of materials of its own ({current}): the images and packages "
                              f"of {target} are in another", "pass the target's with --bill-of-materials FILE "
                              f"(its kubernetes: is {target}; e.g. examples/lab/bom-next.yaml for the lab)")
        return None
    path = Path(given).expanduser().resolve()
    try:
        bom = load_custom(path)
    except ValueError as exc:
        what, _, todo = str(exc).partition("||")
        raise ConfigError(what, todo or "fix the file given to --bill-of-materials") from None
    if bom.kubernetes != target.lstrip("v"):
        raise ConfigError(f"the bill of materials {path} is for Kubernetes {bom.kubernetes}, not {target}",
                          f"pass the one for {target}, or --to {bom.kubernetes}")
    return str(path)


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


def write_version(path, target: str, bill_of_materials: str | None = None) -> str | None:
    """Set spec.kubernetes.version (and billOfMaterials, for a cluster with one of its own: written
    relative to cluster.yaml) in cluster.yaml by replacing those values where they stand, so every
    comment and the layout stay as the user wrote them; -> None, or what the user must change by hand."""
    import os

    values = {"version": target}
    if bill_of_materials is not None:
        values["billOfMaterials"] = os.path.relpath(bill_of_materials, path.parent.resolve())
    todo = "set " + " and ".join(f'spec.kubernetes.{k}: "{v}"' for k, v in values.items()) + f" in {path}"
    try:
        text = path.read_text()
        for key, value in values.items():
            text = _replace_value(text, key, value)
        path.write_text(text)
        return None
    except Exception:  # read-only, templated or unusual files: say exactly what to change instead
        return todo


def _replace_value(text: str, key: str, value: str) -> str:
    """spec.kubernetes.<key>'s value in the YAML ``text`` replaced where it stands (a KeyError if absent)."""
    import re

    from ruamel.yaml import YAML

    node = YAML(typ="rt").load(text)["spec"]["kubernetes"]
    line, col = node.lc.value(key)
    lines = text.splitlines(keepends=True)
    m = re.compile(r"""("[^"]*"|'[^']*'|[^\s#]+)""").match(lines[line], col)
    if not m:
        raise KeyError(key)
    lines[line] = lines[line][:col] + f'"{value}"' + lines[line][m.end():]
    return "".join(lines)
