#!/usr/bin/env python3
"""Debian packages of kubeadm, kubelet and kubectl made from the ../shared/k8s binaries, for the
offline bundle of ccp's local lab (`make lab-bundle`). Debian has no kubeadm/kubelet/kubectl, and the
lab's build is a pre-release no upstream repository carries, so hack/lab-bundle.sh makes them here.

    lab_debs.py BIN_DIR OUT_DIR [NAME ...]     (NAME: kubeadm, kubelet, kubectl; default all three)

Laid out like the upstream packages (/usr/bin/<binary>; kubelet adds its systemd unit and kubeadm's
drop-in), versioned from what the binary reports (v1.35.0-alpha.0 -> 1.35.0~alpha.0-1, so the
pre-release sorts below 1.35.0). Reproducible: every mtime is the binary's build date (or
SOURCE_DATE_EPOCH when set), owners are root, xz runs in one thread, so a rebuild gives the same
bytes. OUT_DIR/.<name>.stamp records the inputs: a binary whose sha256 is unchanged is not
packaged again. Standard library only: it runs before and without the venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

MAINTAINER = "ccp lab build <none>"
ARCH = "amd64"
REVISION = "1"

# Only packages every node root filesystem holds (a bookworm minbase plus iproute2, iptables,
# conntrack, socat, ethtool): an install from the bundle must never need a repository. Upstream's
# kubernetes-cni and cri-tools do not exist in Debian (the nodes carry containernetworking-plugins),
# ebtables is not on the nodes.
DEPENDS = {
    "kubeadm": "kubelet, kubectl",
    "kubelet": "iptables, iproute2, mount, util-linux, conntrack, socat, ethtool",
    "kubectl": "",
}
SUMMARY = {
    "kubeadm": "Kubernetes cluster bootstrapping tool",
    "kubelet": "Kubernetes node agent",
    "kubectl": "Kubernetes command-line client",
}
# How each binary reports its version.Info (gitVersion, gitCommit, buildDate)
PROBE = {
    "kubeadm": ["version", "-o", "json"],
    "kubelet": ["--version=raw"],
    "kubectl": ["version", "--client", "-o", "json"],
}

KUBELET_UNIT = """\
# The kubelet as a plain service; kubeadm's drop-in (kubelet.service.d/10-kubeadm.conf) supplies
# its flags. Until kubeadm init/join writes the kubelet's configuration it exits, and systemd
# starts it again every 10 seconds, without a limit on the number of restarts.
[Unit]
Description=kubelet: the Kubernetes node agent
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

KUBEADM_DROPIN = """\
# Written for kubeadm: kubeadm init/join create the files named here, the kubelet finds them at start.
# Local flags go into /etc/default/kubelet as KUBELET_EXTRA_ARGS=...; this package does not ship that file.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# KUBELET_KUBEADM_ARGS, written by kubeadm init/join
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# KUBELET_EXTRA_ARGS, the node's own (optional)
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""

# systemd reads new or changed unit files only after a reload
RELOAD_SCRIPT = """\
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
"""


def say(text: str) -> None:
    print(f"[lab-bundle] {text}", file=sys.stderr)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def debian_version(reported: str, revision: str = REVISION) -> str:
    """v1.35.0-alpha.0 -> 1.35.0~alpha.0-1: `~` sorts a pre-release below its release in Debian."""
    m = re.fullmatch(r"v?(\d+\.\d+\.\d+)(?:-([0-9A-Za-z.-]+))?(\+[0-9A-Za-z.]+)?", reported.strip())
    if not m:
        raise ValueError(f"not a Kubernetes version: {reported!r}")
    pre = f"~{m[2].replace('-', '.')}" if m[2] else ""
    return f"{m[1]}{pre}{m[3] or ''}-{revision}"


def probe(name: str, binary: Path) -> dict[str, str]:
    """gitVersion, gitCommit and buildDate as the binary reports them (JSON or Go's %#v text)."""
    r = subprocess.run([str(binary), *PROBE[name]], capture_output=True, text=True, timeout=60)
    text = r.stdout + r.stderr
    info = {}
    for key in ("gitVersion", "gitCommit", "buildDate"):
        m = re.search(rf'"?{key}"?\s*:\s*"([^"]*)"', text, re.IGNORECASE)
        info[key] = m[1] if m else ""
    if not info["gitVersion"]:
        raise SystemExit(f"{binary} {' '.join(PROBE[name])} reported no version (exit {r.returncode}): {text.strip()[:300]}")
    return info


def source_date_epoch(info: dict[str, str]) -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    if not info["buildDate"]:
        raise SystemExit("the binary reports no build date: set SOURCE_DATE_EPOCH for reproducible packages")
    return int(datetime.fromisoformat(info["buildDate"].replace("Z", "+00:00")).timestamp())


def control(name: str, version: str, info: dict[str, str], installed_kib: int) -> str:
    commit = info["gitCommit"] or "unknown"
    fields = [("Package", name), ("Version", version), ("Architecture", ARCH), ("Maintainer", MAINTAINER),
              ("Installed-Size", str(installed_kib)), ("Depends", DEPENDS[name]), ("Section", "admin"),
              ("Priority", "optional"),
              ("Description", f"{SUMMARY[name]} ({info['gitVersion']}, lab build)\n"
                              f" Built from the ../shared/k8s binaries (Kubernetes commit {commit}) for\n"
                              f" ccp's local lab, which installs it from an offline bundle. Not an upstream package.")]
    return "".join(f"{k}: {v}\n" for k, v in fields if v)


def _write(path: Path, data: bytes | str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)


def _layout(root: Path, name: str, binary: Path) -> None:
    _write(root / "usr/bin" / name, binary.read_bytes(), 0o755)
    if name == "kubelet":
        _write(root / "lib/systemd/system/kubelet.service", KUBELET_UNIT, 0o644)
        _write(root / "lib/systemd/system/kubelet.service.d/10-kubeadm.conf", KUBEADM_DROPIN, 0o644)
        for script in ("postinst", "postrm"):
            _write(root / "DEBIAN" / script, RELOAD_SCRIPT, 0o755)


def _installed_kib(root: Path) -> int:
    """As dpkg-gencontrol counts it: each file rounded up to a KiB, one per directory or link."""
    total = 0
    for dirpath, dirs, files in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts[:1] == ("DEBIAN",):
            continue
        total += len(dirs) + sum(((root / rel / f).stat().st_size + 1023) // 1024 for f in files)
    return total


def _normalise(root: Path, epoch: int) -> None:
    for dirpath, dirs, files in os.walk(root):
        for n in dirs:
            os.chmod(os.path.join(dirpath, n), 0o755)
        for n in dirs + files:
            os.utime(os.path.join(dirpath, n), (epoch, epoch), follow_symlinks=False)
    os.chmod(root, 0o755)
    os.utime(root, (epoch, epoch))


def build(name: str, binary: Path, out: Path) -> Path:
    """OUT/<name>_<version>_amd64.deb from BINARY; nothing is done when the stamp says the inputs are the same."""
    out.mkdir(parents=True, exist_ok=True)
    stamp_path = out / f".{name}.stamp"
    inputs = {"binary_sha256": sha256_file(binary), "recipe_sha256": sha256_file(Path(__file__)),
              "source_date_epoch": os.environ.get("SOURCE_DATE_EPOCH", "")}
    try:
        stamp = json.loads(stamp_path.read_text())
        deb = out / stamp["deb"]
        if stamp["inputs"] == inputs and deb.is_file() and sha256_file(deb) == stamp["deb_sha256"]:
            say(f"{deb.name}: up to date (binary sha256 {inputs['binary_sha256'][:12]} unchanged)")
            return deb
    except (OSError, ValueError, KeyError, TypeError):
        pass
    info = probe(name, binary)
    version = debian_version(info["gitVersion"])
    epoch = source_date_epoch(info)
    deb = out / f"{name}_{version}_{ARCH}.deb"
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out) as tmp:
        root = Path(tmp) / "root"
        _layout(root, name, binary)
        _write(root / "DEBIAN/control", control(name, version, info, _installed_kib(root)), 0o644)
        _normalise(root, epoch)
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        # One compressor thread: multi-threaded xz writes other bytes (blocks), so the output would depend
        # on the machine. Level 1: a quarter of level 6's time (~8 s for the kubelet) for 14% more bytes.
        r = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-z1", "--threads-max=1", "--build",
                            str(root), str(Path(tmp) / "pkg.deb")], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"dpkg-deb --build {name} failed: {r.stderr.strip()}")
        os.replace(Path(tmp) / "pkg.deb", deb)
    for old in out.glob(f"{name}_*_{ARCH}.deb"):
        if old != deb:
            old.unlink()
    new_stamp = stamp_path.with_name(stamp_path.name + ".tmp")
    new_stamp.write_text(json.dumps({"inputs": inputs, "deb": deb.name, "deb_sha256": sha256_file(deb)}, indent=1))
    os.replace(new_stamp, stamp_path)
    say(f"{deb.name}: built from {binary} ({info['gitVersion']}, {deb.stat().st_size} bytes)")
    return deb


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any(n not in DEPENDS for n in argv[2:]):
        print(__doc__, file=sys.stderr)
        return 2
    bin_dir, out = Path(argv[0]), Path(argv[1])
    for name in argv[2:] or list(DEPENDS):
        binary = bin_dir / name
        if not binary.is_file():
            raise SystemExit(f"{binary} is missing (../shared/k8s/lab images lays out the binaries)")
        print(build(name, binary, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
