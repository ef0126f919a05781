"""The stage step of an air-gapped upgrade (spec.offline.bundle): before any node changes, the target's
packages and images that the running version does not have already (kubeadm, kubelet and kubectl, the
control-plane and kube-proxy images, changed add-on images) go from the offline bundle onto every node
that needs them, and the images are imported into containerd. Nothing is pulled from a registry: once
`kubeadm upgrade apply` moves kube-proxy to the target, every node already holds its image.

The packages wait in STAGE_DIR/<target>/packages for the node script (upgrade-node.sh) to install."""

from __future__ import annotations

from pathlib import Path

from ccp.errors import ConfigError

STAGE_DIR = "/var/lib/ccp/upgrade"


def packages_dir(target: str) -> str:
    return f"{STAGE_DIR}/{target}/packages"


def images_dir(target: str) -> str:
    return f"{STAGE_DIR}/{target}/images"


def new_items(cfg, target_cfg) -> list:
    """The target's packages and images that the running version's bill of materials does not hold."""
    from ccp.bundle.manifest import items

    have = {i.pattern for i in items(cfg)}
    return [i for i in items(target_cfg) if i.kind in ("package", "image") and i.pattern not in have]


def check_bundle(cfg, target_cfg, bundle: Path) -> None:
    """Before the plan is shown: the offline bundle holds what the target needs (its index is read; the
    stage step checks each file's sha256 as it reads it)."""
    import json
    import tarfile

    from ccp.bundle.archive import INDEX

    try:
        with tarfile.open(bundle, "r:") as tar:
            index = json.load(tar.extractfile(INDEX))
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise ConfigError(f"the offline bundle {bundle} cannot be read ({exc})",
                          "point spec.offline.bundle at a bundle made by `ccp bundle create`") from None
    files = [e.get("file", "") for e in index.get("items", [])]
    version = target_cfg.spec.kubernetes.version
    missing = [f"{i.kind} {i.name} {i.version} (expected as {i.pattern})" for i in new_items(cfg, target_cfg)
               if not any(i.matches(f) for f in files)]
    if missing:
        raise ConfigError(f"the offline bundle {bundle} lacks {len(missing)} items the upgrade to {version} needs",
                          "make a bundle holding both versions: `ccp bundle create --config F --with-bom TARGET_BOM "
                          "--from DIR --out BUNDLE` (make lab-bundle does for the lab), then point spec.offline.bundle at it",
                          missing)


def stage(ctx, target_cfg, names: list[str], say=lambda text: None) -> dict[str, int]:
    """Upload and import on every node in ``names``; -> node -> files staged. Idempotent: a rerun uploads
    and imports again (an image import of the same content changes nothing)."""
    from ccp.cluster.facts import bundle_path
    from ccp.bundle.archive import node_files
    from ccp.cluster.hostwork import control_plane_only
    from ccp.config import inventory

    target = target_cfg.spec.kubernetes.version
    files = node_files(bundle_path(ctx), new_items(ctx.config, target_cfg), packages_dir(target), images_dir(target),
                       verify=True)
    workers = {n.name for n in ctx.nodes if n.role == inventory.ROLE_WORKER}
    ssh = ctx.ssh()
    script = (f"set -e; n=0; for f in {images_dir(target)}/*.tar; do [ -f \"$f\" ] || continue; "
              "ctr -n k8s.io images import \"$f\" >/dev/null; rm -f \"$f\"; n=$((n + 1)); done; "
              "echo \"ccp: images: imported $n\"")

    async def one(t):
        mine = {p: (data, 0o644) for p, data in files.items() if not (t.name in workers and control_plane_only(p))}
        await ssh.upload(t, mine)
        r = await ssh.run(t, script, sudo=True, check=False, timeout=900)
        if not r.ok:
            from ccp.errors import RemoteError

            raise RemoteError(f"{t.name}: importing the {target} images failed (exit {r.exit_status})",
                              "read the output; then rerun with --resume (the stage step runs again)",
                              (r.stderr or r.stdout).splitlines()[-8:])
        say(f"{t.name}: {len(mine)} files of {target} staged")
        return len(mine)

    fan = ssh.call(ssh.each(ctx.targets(names), one))
    fan.raise_if_failed(f"staging {target} on the nodes")
    return dict(fan.results)
