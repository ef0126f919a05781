"""A bundle is one uncompressed tar (images and packages are compressed already): bundle.json first
— the index of every file with its sha256 — then the files. `create` packs one from a directory a
site filled from its mirror; `verify` checks a bundle against what cluster.yaml needs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ccp.bundle.manifest import Item
from ccp.errors import ConfigError, PreflightError

INDEX = "bundle.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def create(needed: list[Item], source: Path, out: Path, say=lambda text: None) -> dict:
    if not source.is_dir():
        raise ConfigError(f"{source} is not a directory", "pass --from DIR holding images/, packages/ (and terraform/)")
    files = sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    chosen, missing = {}, []
    for item in needed:
        hits = [f for f in files if item.matches(f)]
        if not hits:
            missing.append(f"{item.kind} {item.name} {item.version} (expected as {item.pattern})")
            continue
        chosen[max(hits)] = item   # the newest name when several match (a provider mirror may hold two)
    if missing:
        raise ConfigError(f"{len(missing)} of {len(needed)} items are not in {source}",
                          "copy them there from your mirror (file names as shown), then run ccp bundle create again", missing)
    entries = []
    for rel, item in chosen.items():
        digest = sha256_file(source / rel)
        if item.sha256 and digest != item.sha256:
            raise ConfigError(f"{rel} has sha256 {digest}, the bill of materials expects {item.sha256}",
                              "fetch that item again from a trusted mirror")
        entries.append({**item.to_dict(), "file": rel, "sha256": digest, "bytes": (source / rel).stat().st_size})
        say(f"{rel}: {entries[-1]['bytes']} bytes")
    index = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "items": entries}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        data = json.dumps(index, indent=1).encode()
        info = tarfile.TarInfo(INDEX)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(data))
        for e in entries:
            tar.add(source / e["file"], arcname=e["file"], recursive=False)
    os.replace(tmp, out)
    return index


@dataclass
class Verdict:
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.damaged


def verify(needed: list[Item], bundle: Path) -> Verdict:
    """Every needed item present, each file's sha256 matching the index (and the BOM where it knows one)."""
    try:
        tar = tarfile.open(bundle, "r:")
    except (OSError, tarfile.TarError) as exc:
        raise PreflightError(f"the offline bundle {bundle} cannot be read: {exc}",
                             "point spec.offline.bundle (or --bundle) at a file made by `ccp bundle create`") from None
    v = Verdict()
    with tar:
        try:
            index = json.load(tar.extractfile(INDEX))
        except (KeyError, ValueError, TypeError):
            raise PreflightError(f"{bundle} has no {INDEX}: it was not made by `ccp bundle create`",
                                 "make it with `ccp bundle create --config F --from DIR --out BUNDLE`") from None
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        for item in needed:
            entry = next((e for e in index.get("items", []) if item.matches(e.get("file", ""))), None)
            label = f"{item.kind} {item.name} {item.version}"
            if entry is None or entry["file"] not in members:
                v.missing.append(f"{label} (expected as {item.pattern})")
                continue
            h = hashlib.sha256()
            f = tar.extractfile(members[entry["file"]])
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
            actual = h.hexdigest()
            want = item.sha256 or entry.get("sha256")
            if actual != want:
                v.damaged.append(f"{label}: {entry['file']} has sha256 {actual}, expected {want}")
            else:
                v.present.append(label)
    return v


def raise_unless_complete(v: Verdict, bundle: Path) -> None:
    if not v.ok:
        raise PreflightError(f"the offline bundle {bundle} lacks {len(v.missing)} and has {len(v.damaged)} damaged of the "
                             f"{len(v.present) + len(v.missing) + len(v.damaged)} items this cluster needs",
                             "add them to the source directory and run `ccp bundle create` again",
                             [f"missing: {m}" for m in v.missing] + [f"damaged: {d}" for d in v.damaged])


def check_self(bundle: Path) -> int:
    """A bundle on its own (no config at hand, as when it goes into the appliance): readable, indexed,
    every indexed file present with its sha256. Returns the item count; raises PreflightError otherwise."""
    try:
        with tarfile.open(bundle, "r:") as tar:
            index = json.load(tar.extractfile(INDEX))
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            bad = []
            for e in index.get("items", []):
                member = members.get(e.get("file", ""))
                if member is None:
                    bad.append(f"{e.get('file')}: missing")
                    continue
                h = hashlib.sha256()
                f = tar.extractfile(member)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                if h.hexdigest() != e.get("sha256"):
                    bad.append(f"{e['file']}: sha256 {h.hexdigest()}, the index says {e.get('sha256')}")
    except (OSError, tarfile.TarError, KeyError, ValueError, TypeError) as exc:
        raise PreflightError(f"{bundle} is not an offline bundle ({exc})",
                             "make it with `ccp bundle create --config F --from DIR --out BUNDLE`") from None
    if bad:
        raise PreflightError(f"the offline bundle {bundle} is damaged: {len(bad)} files do not match its index",
                             "create it again with `ccp bundle create`", bad)
    return len(index.get("items", []))


def node_files(bundle, needed, packages_dir: str, images_dir: str, *, verify: bool) -> dict[str, bytes]:
    """Remote path -> content of the bundle's files for the items ``needed`` (ccp.bundle.manifest.items
    of a config): its packages under packages_dir, its images under images_dir. Only what the config
    needs: a bundle may hold more (e.g. an upgrade's target beside the running version), and a node
    given both kubeadm packages could install neither. With ``verify``, each file's sha256 is checked
    against the bundle's index as it is read (the install's preflight/offline-bundle checked them all)."""
    try:
        return _node_files(bundle, needed, packages_dir, images_dir, verify)
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:   # unreadable, or a file its index names is absent
        raise PreflightError(f"the offline bundle {bundle} cannot be read ({exc})",
                             "copy the bundle again, or make it again with `ccp bundle create`") from None


def _node_files(bundle, needed, packages_dir: str, images_dir: str, verify: bool) -> dict[str, bytes]:
    from pathlib import PurePosixPath

    out: dict[str, bytes] = {}
    with tarfile.open(bundle, "r:") as tar:
        index = json.load(tar.extractfile(INDEX))
        for item in needed:
            if item.kind not in ("package", "image"):
                continue
            entry = next((e for e in index.get("items", []) if item.matches(e.get("file", ""))), None)
            if entry is None:
                raise PreflightError(f"the offline bundle {bundle} holds no {item.kind} {item.name} {item.version}",
                                     "make the bundle again with `ccp bundle create` (see `ccp bundle manifest`)")
            data = tar.extractfile(entry["file"]).read()
            if verify and hashlib.sha256(data).hexdigest() != entry.get("sha256"):
                raise PreflightError(f"{entry['file']} in the offline bundle {bundle} does not match its sha256",
                                     "copy the bundle again, or make it again with `ccp bundle create`")
            name = PurePosixPath(entry["file"]).name
            out[f"{packages_dir if item.kind == 'package' else images_dir}/{name}"] = data
    return out
