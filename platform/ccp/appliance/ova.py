"""OVA packages: a ustar tar holding the .ovf first, then the .mf (SHA256 of each file), then the disks.

vSphere streams an OVA and wants the descriptor before anything else; the manifest right after it
lets a reader check each disk as it arrives.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ccp.bundle.archive import sha256_file
from ccp.errors import ConfigError

MF_LINE = re.compile(r"^SHA256\((?P<name>[^)]+)\)= (?P<digest>[0-9a-f]{64})$")


def manifest(entries: dict[str, str]) -> bytes:
    return "".join(f"SHA256({name})= {digest}\n" for name, digest in entries.items()).encode()


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uname, info.gname = size, 0o644, "root", "root"
    return info


def write(path: Path, ovf_name: str, descriptor: bytes, disks: dict[str, Path]) -> None:
    """Write the OVA atomically (a .partial file renamed at the end)."""
    digests = {ovf_name: hashlib.sha256(descriptor).hexdigest()}
    digests.update({name: sha256_file(p) for name, p in disks.items()})
    mf = manifest(digests)
    tmp = path.with_name(path.name + ".partial")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(_info(ovf_name, len(descriptor)), io.BytesIO(descriptor))
        tar.addfile(_info(Path(ovf_name).with_suffix(".mf").name, len(mf)), io.BytesIO(mf))
        for name, p in disks.items():
            with p.open("rb") as f:
                tar.addfile(_info(name, p.stat().st_size), f)
    tmp.replace(path)


@dataclass
class Package:
    path: Path
    members: list[str]
    descriptor: bytes
    manifest: dict[str, str]

    @property
    def disks(self) -> list[str]:
        return [m for m in self.members if not m.endswith((".ovf", ".mf", ".cert"))]


def read(path: Path, verify: bool = True) -> Package:
    """Open an OVA, check its layout and (with ``verify``) every file's SHA256 against the manifest."""
    problem = f"{path} is not a usable OVA"
    try:
        tar = tarfile.open(path, "r:")
    except (OSError, tarfile.TarError) as exc:
        raise ConfigError(f"{problem}: {exc}", "pass the .ova that `ccp appliance build` wrote") from None
    with tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        if not names or not names[0].endswith(".ovf"):
            raise ConfigError(f"{problem}: its first file is {names[:1] or 'missing'}, not the .ovf descriptor",
                              "rebuild it with `ccp appliance build`; an OVA must start with its .ovf")
        descriptor = tar.extractfile(members[0]).read()
        mf: dict[str, str] = {}
        if len(names) > 1 and names[1].endswith(".mf"):
            for line in tar.extractfile(members[1]).read().decode().splitlines():
                m = MF_LINE.match(line.strip())
                if m:
                    mf[m["name"]] = m["digest"]
        if verify:
            for member in members:
                if member.name.endswith(".mf"):
                    continue
                want = mf.get(member.name)
                if want is None:
                    raise ConfigError(f"{problem}: {member.name} is not in its manifest",
                                      "rebuild it with `ccp appliance build`")
                h = hashlib.sha256()
                f = tar.extractfile(member)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                if h.hexdigest() != want:
                    raise ConfigError(f"{problem}: {member.name} does not match its SHA256 in the manifest",
                                      "the file is damaged: copy it again or rebuild it")
    return Package(path, names, descriptor, mf)
