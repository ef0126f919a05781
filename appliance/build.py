"""Build the ccp appliance OVA from Debian packages on this machine (run as root; `ccp appliance build` runs it).

Steps, each reported as one JSON line on stdout when --events is given (else as plain lines):
  tools     the programs the build needs are present
  rootfs    Debian bookworm minbase + packages.txt with mmdebstrap, cached by its inputs
  wheels    a wheel of this checkout and of its dependencies (versions from requirements/test.lock)
  assemble  a copy of the cached root filesystem with ccp's venv, the first-boot service, terraform, the bundle
  image     a raw disk with one bootable ext4 partition (extlinux), written without mounting but for the boot loader
  vmdk      the raw disk as a streamOptimized VMDK
  ova       the OVF descriptor, the SHA256 manifest, and the ustar OVA (ovf, mf, vmdk in that order)
The root filesystem is reused while packages.txt, the suite and the apt sources are unchanged; the
whole disk is reused while nothing that goes into it changed. Tool output goes to <out>/build.log.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SUITE = "bookworm"
PART_OFFSET = 1024 * 1024        # the partition starts at 1 MiB
TOOLS = {"mmdebstrap": "mmdebstrap", "sfdisk": "fdisk", "mkfs.ext4": "e2fsprogs", "extlinux": "extlinux",
         "qemu-img": "qemu-utils", "mount": "mount"}
MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
ROOTFS_CHANGES = 2   # bump when the mmdebstrap options below change


class BuildError(Exception):
    def __init__(self, message: str, resolution: str, code: int = 4):
        super().__init__(message)
        self.resolution, self.code = resolution, code


class Reporter:
    def __init__(self, events: bool, log: Path):
        self.events, self.log_path = events, log
        self.log = log.open("a")

    def emit(self, **event) -> None:
        if self.events:
            sys.stdout.write(json.dumps(event) + "\n")
        elif event.get("state") in ("done", "reused"):
            sys.stdout.write(f"{event['step']:<9} {event['state']:<6} {event.get('seconds', 0):6.1f} s  {event.get('detail', '')}\n")
        sys.stdout.flush()

    def run(self, argv: list[str], step: str, **kw) -> subprocess.CompletedProcess:
        self.log.write(f"\n$ {' '.join(map(str, argv))}\n")
        self.log.flush()
        r = subprocess.run(argv, stdout=self.log, stderr=subprocess.STDOUT, **kw)
        if r.returncode != 0:
            raise BuildError(f"step {step}: {Path(argv[0]).name} exited with {r.returncode}",
                             f"see the end of {self.log_path} for its output, fix that and run the build again")
        return r


def sha256_file(path: Path) -> str:
    from ccp.bundle.archive import sha256_file as digest   # this script runs with ccp's own Python

    return digest(path)


def tree_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for base in paths:
        files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for p in files:
            h.update(str(p.relative_to(base.parent)).encode() + b"\0" + p.read_bytes() + b"\0")
            h.update(oct(p.stat().st_mode & 0o777).encode())
    return h.hexdigest()


def packages() -> list[str]:
    lines = (HERE / "packages.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def mmdebstrap_version() -> str:
    return subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True).stdout.strip()


def unmount_below(path: Path) -> None:
    """Unmount whatever a killed build left mounted below ``path`` (proc, /dev, /sys binds, the loop
    mount), deepest first. Deleting a tree with /dev still bound into it would delete the host's /dev."""
    root = str(path.resolve())
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mnt in sorted((m for m in points if m == root or m.startswith(root + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-R", "-l", mnt], capture_output=True)


def remove_tree(path: Path) -> None:
    if path.exists():
        unmount_below(path)
        shutil.rmtree(path, ignore_errors=True)


class Build:
    def __init__(self, args: argparse.Namespace, rep: Reporter):
        self.args, self.rep = args, rep
        self.out: Path = args.out
        self.cache: Path = args.cache
        self.version = args.version
        self.name = f"ccp-appliance-{self.version}"

    def step(self, name: str, fn) -> None:
        self.rep.emit(step=name, state="start")
        t0 = time.monotonic()
        state, detail = fn()
        self.rep.emit(step=name, state=state, detail=detail, seconds=round(time.monotonic() - t0, 2))

    # -- steps ----------------------------------------------------------------------------------
    def tools(self):
        if os.geteuid() != 0:
            raise BuildError("the appliance build needs root (mmdebstrap, a loop mount for the boot loader)",
                             "run it as root: sudo ccp appliance build", code=3)
        missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None}
                         | ({"syslinux-common"} if not MBR.exists() else set()))
        if missing:
            raise BuildError(f"the appliance build needs Debian packages that are missing: {' '.join(missing)}",
                             f"install them: apt-get install --no-install-recommends {' '.join(missing)}", code=3)
        if not self.args.mirror.exists():
            raise BuildError(f"no apt sources at {self.args.mirror}",
                             "pass --mirror with an apt sources file (.list or .sources) that reaches a Debian mirror",
                             code=3)
        detail = f"{len(TOOLS) + 1} tools present"
        if self.args.bundle:
            from ccp.bundle.archive import check_self
            from ccp.errors import CcpError

            try:
                count = check_self(self.args.bundle)
            except CcpError as exc:
                raise BuildError(exc.message + "".join(f"; {d}" for d in exc.details[:3]), exc.resolution, code=3) from None
            detail += f"; bundle {self.args.bundle.name}: {count} items, each matching its sha256"
        return "done", detail

    def rootfs_key(self) -> str:
        h = hashlib.sha256(json.dumps([SUITE, packages(), ROOTFS_CHANGES, mmdebstrap_version(),
                                       self.args.mirror.read_text()]).encode())
        return h.hexdigest()[:16]

    def rootfs(self):
        self.base = self.cache / f"rootfs-{self.rootfs_key()}"
        if (self.base / ".complete").exists():
            return "reused", f"root filesystem {self.base.name} (packages.txt and apt sources unchanged)"
        tmp = self.base.with_name(self.base.name + ".partial")
        remove_tree(tmp)   # a killed mmdebstrap may leave its own mounts there
        self.cache.mkdir(parents=True, exist_ok=True)
        # Documentation and translations stay out (the copyright files stay in).
        dpkg = ["path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
                "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*",
                "path-include=/usr/share/locale/locale.alias"]
        argv = ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(packages())]
        argv += [f"--dpkgopt={o}" for o in dpkg]
        argv += [SUITE, str(tmp), str(self.args.mirror)]
        self.rep.run(argv, "rootfs")
        (tmp / ".complete").write_text(" ".join(packages()) + "\n")
        os.replace(tmp, self.base)
        for old in self.cache.glob("rootfs-*"):
            if old.is_dir() and old.name != self.base.name:
                remove_tree(old)   # keep one: each is ~700 MB
        return "done", f"bootstrapped {len(packages())} packages into {self.base.name}"

    def wheels(self):
        self.wheelhouse = self.cache / "wheels"
        fresh = self.cache / "wheels.partial"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        py = sys.executable
        self.rep.run([py, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(fresh), str(REPO)], "wheels")
        ccp_wheel = next(fresh.glob("ccp-*.whl"))
        lock = REPO / "requirements" / "test.lock"
        key = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + lock.read_bytes()).hexdigest()[:16]
        deps = self.cache / f"deps-{key}"
        if not (deps / ".complete").exists():
            shutil.rmtree(deps, ignore_errors=True)
            self.rep.run([py, "-m", "pip", "wheel", "-q", "-w", str(deps), "-c", str(lock), str(ccp_wheel)], "wheels")
            (deps / ccp_wheel.name).unlink(missing_ok=True)
            (deps / ".complete").touch()
        shutil.rmtree(self.wheelhouse, ignore_errors=True)
        os.replace(fresh, self.wheelhouse)
        self.deps = deps
        self.ccp_wheel = self.wheelhouse / ccp_wheel.name
        count = len(list(deps.glob("*.whl")))
        return "done", f"{ccp_wheel.name} and {count} dependency wheels"

    def disk_key(self) -> str:
        inputs = [self.base.name, sha256_file(self.ccp_wheel), self.deps.name,
                  tree_digest([HERE / "rootfs"]), tree_digest([Path(__file__).resolve()]), self.args.disk_gb]
        for extra in (self.terraform, self.args.bundle):
            inputs.append(sha256_file(extra) if extra else "")
        return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:16]

    def assemble(self):
        self.terraform = self.args.terraform if self.args.terraform and self.args.terraform.exists() else None
        self.disk_dir = self.cache / f"disk-{self.disk_key()}"
        if (self.disk_dir / "disk.vmdk").exists():
            return "reused", f"disk {self.disk_dir.name} (nothing that goes into it changed)"
        self.work = self.cache / "work"
        root = self.work / "rootfs"
        remove_tree(self.work)
        self.work.mkdir(parents=True)
        self.rep.run(["cp", "-a", "--reflink=auto", str(self.base), str(root)], "assemble")
        (root / ".complete").unlink()
        self.rep.run(["cp", "-a", "--no-preserve=ownership", f"{HERE / 'rootfs'}/.", str(root)], "assemble")
        stage = root / "tmp" / "ccp-wheels"
        shutil.copytree(self.deps, stage)
        shutil.copy2(self.ccp_wheel, stage)
        (root / "etc/ccp-appliance-release").write_text(f"NAME=ccp appliance\nVERSION={self.version}\n")
        self.chroot(root, ["useradd", "--create-home", "--shell", "/bin/bash", "--groups", "sudo", "ccp"])
        self.chroot(root, ["python3", "-m", "venv", "/opt/ccp"])
        self.chroot(root, ["/opt/ccp/bin/pip", "install", "-q", "--no-index", "--no-cache-dir",
                           "--find-links", "/tmp/ccp-wheels", f"/tmp/ccp-wheels/{self.ccp_wheel.name}"])
        (root / "usr/local/bin/ccp").symlink_to("/opt/ccp/bin/ccp")
        shutil.rmtree(stage)
        doc = root / "usr/share/doc/ccp-appliance"
        doc.mkdir(parents=True, exist_ok=True)
        shutil.copy2(HERE / "README.md", doc / "README.md")
        notes = ["ccp is Apache-2.0 licensed; Debian packages carry their copyright in /usr/share/doc/*/copyright."]
        if self.terraform:
            shutil.copy2(self.terraform, root / "usr/local/bin/terraform")
            notes.append("terraform in /usr/local/bin is HashiCorp's binary, copied from the build machine; it is under "
                         "the Business Source License 1.1 (versions 1.6 and later): read its licence before "
                         "redistributing this appliance.")
        if self.args.bundle:
            bundles = root / "var/lib/ccp/bundles"
            bundles.mkdir(parents=True)
            shutil.copy2(self.args.bundle, bundles / self.args.bundle.name)
            notes.append(f"the offline bundle is at /var/lib/ccp/bundles/{self.args.bundle.name}.")
        (doc / "NOTICE").write_text("\n".join(notes) + "\n")
        self.chroot(root, ["systemctl", "enable", "ccp-firstboot.service", "systemd-networkd.service",
                           "systemd-resolved.service"])
        # One appliance, many VMs: no host keys, machine id or apt lists baked in.
        for key in (root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        (root / "etc/machine-id").write_text("")
        (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
        for d in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for p in (root / d).glob("*"):
                if p.is_file():
                    p.unlink()
        (root / "etc/hostname").write_text("ccp-appliance\n")
        self.boot_config(root)
        return "done", f"ccp {self.version} in /opt/ccp" + (", terraform" if self.terraform else "") + \
            (", bundle" if self.args.bundle else "")

    def chroot(self, root: Path, argv: list[str]) -> None:
        mounts = []
        try:
            for src, dst, extra in (("proc", "proc", ["-t", "proc"]), ("/dev", "dev", ["--bind"]),
                                    ("/sys", "sys", ["--rbind"])):
                subprocess.run(["mount", *extra, src, str(root / dst)], check=True)
                mounts.append(root / dst)
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
            self.rep.run(["chroot", str(root), *argv], "assemble", env=env)
        finally:
            for m in reversed(mounts):
                subprocess.run(["umount", "-R", "-l", str(m)])

    def boot_config(self, root: Path) -> None:
        self.fs_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ccp-appliance/{self.version}/{self.disk_dir.name}"))
        kernel = sorted((root / "boot").glob("vmlinuz-*"))[-1].name
        initrd = sorted((root / "boot").glob("initrd.img-*"))[-1].name
        (root / "etc/fstab").write_text(f"UUID={self.fs_uuid} / ext4 errors=remount-ro 0 1\n")
        conf = root / "boot/extlinux/extlinux.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("DEFAULT ccp\nPROMPT 0\nTIMEOUT 10\n\nLABEL ccp\n"
                        f"  LINUX /boot/{kernel}\n  INITRD /boot/{initrd}\n"
                        f"  APPEND root=UUID={self.fs_uuid} ro console=tty0 console=ttyS0,115200n8\n")

    def image(self):
        if (self.disk_dir / "disk.vmdk").exists():
            return "reused", "raw disk kept from the last build"
        root = self.work / "rootfs"
        raw = self.work / "disk.raw"
        size = self.args.disk_gb * 1024 ** 3
        with raw.open("wb") as f:
            f.truncate(size)
        self.rep.run(["sfdisk", "-q", str(raw)], "image", input=b"start=2048, type=83, bootable\n")
        fs_kib = (size - PART_OFFSET) // 1024
        # extlinux reads ext4 without the 64bit and csum-seed features; the disk is far below 16 TiB.
        self.rep.run(["mkfs.ext4", "-q", "-F", "-L", "ccp-root", "-U", self.fs_uuid, "-O", "^64bit,^metadata_csum_seed",
                      "-d", str(root), "-E", f"offset={PART_OFFSET}", str(raw), f"{fs_kib}k"], "image")
        mnt = self.work / "mnt"
        mnt.mkdir()
        self.rep.run(["mount", "-o", f"loop,offset={PART_OFFSET}", str(raw), str(mnt)], "image")
        try:
            self.rep.run(["extlinux", "--install", str(mnt / "boot/extlinux")], "image")
        finally:
            subprocess.run(["umount", str(mnt)])
        with raw.open("r+b") as f:
            f.write(MBR.read_bytes()[:440])
        remove_tree(root)
        return "done", f"{self.args.disk_gb} GiB raw disk, ext4 root {self.fs_uuid}"

    def vmdk(self):
        if (self.disk_dir / "disk.vmdk").exists():
            return "reused", f"{self.disk_dir.name}/disk.vmdk"
        tmp = self.work / "disk.vmdk"
        self.rep.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                      "subformat=streamOptimized,adapter_type=lsilogic", str(self.work / "disk.raw"), str(tmp)], "vmdk")
        (self.work / "disk.raw").unlink()
        shutil.rmtree(self.disk_dir, ignore_errors=True)
        self.disk_dir.mkdir(parents=True)
        os.replace(tmp, self.disk_dir / "disk.vmdk")
        (self.disk_dir / "capacity").write_text(str(self.args.disk_gb * 1024 ** 3))
        for old in self.cache.glob("disk-*"):
            if old.name != self.disk_dir.name:
                remove_tree(old)
        remove_tree(self.work)
        return "done", f"{(self.disk_dir / 'disk.vmdk').stat().st_size // 2**20} MiB streamOptimized"

    def ova(self):
        from ccp.appliance import ova, ovf

        vmdk_name = f"{self.name}-disk1.vmdk"
        vmdk = self.disk_dir / "disk.vmdk"
        descriptor = ovf.descriptor(name=self.name, version=self.version, vmdk_file=vmdk_name,
                                    vmdk_bytes=vmdk.stat().st_size,
                                    capacity_bytes=int((self.disk_dir / "capacity").read_text()))
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{self.name}.ova"
        ova.write(path, f"{self.name}.ovf", descriptor, {vmdk_name: vmdk})
        return "done", f"{path} ({path.stat().st_size // 2**20} MiB)"

    def run(self) -> Path:
        for name in ("tools", "rootfs", "wheels", "assemble", "image", "vmdk", "ova"):
            self.step(name, getattr(self, name))
        return self.out / f"{self.name}.ova"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("dist"), help="where the OVA goes (default: dist/)")
    p.add_argument("--bundle", type=Path, help="an offline bundle (ccp bundle create) to put in the appliance")
    p.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ccp" / "appliance")
    p.add_argument("--mirror", type=Path, default=Path("/etc/apt/sources.list.d/debian.sources")
                   if Path("/etc/apt/sources.list.d/debian.sources").exists() else Path("/etc/apt/sources.list"),
                   help="the apt sources file mmdebstrap uses (default: this machine's Debian sources)")
    p.add_argument("--terraform", type=Path, default=Path(shutil.which("terraform") or "/nonexistent"),
                   help="the terraform binary to include (default: the one on PATH, if any)")
    p.add_argument("--disk-gb", type=int, default=16, help="the virtual disk's size in GiB (default 16)")
    p.add_argument("--version", default=None, help="the appliance version (default: ccp's)")
    p.add_argument("--events", action="store_true", help="report steps as JSON lines (for `ccp appliance build`)")
    args = p.parse_args(argv)
    if args.version is None:
        from ccp import __version__
        args.version = __version__
    return args


def fail(rep: Reporter, args: argparse.Namespace, message: str, resolution: str, code: int) -> int:
    rep.emit(error=message, resolution=resolution, code=code)
    if not args.events:
        sys.stderr.write(f"error: {message}\n  to fix: {resolution}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rep = Reporter(args.events, args.out / "build.log")
    if args.bundle and not args.bundle.is_file():
        rep.emit(error=f"no bundle at {args.bundle}", resolution="make one with `ccp bundle create`", code=2)
        return 2
    t0 = time.monotonic()
    try:
        path = Build(args, rep).run()
    except BuildError as exc:
        return fail(rep, args, str(exc), exc.resolution, exc.code)
    except Exception as exc:   # a bug here, not the user's doing: the traceback goes to the log
        import traceback

        rep.log.write(traceback.format_exc())
        return fail(rep, args, f"internal error: {type(exc).__name__}: {exc}",
                    f"see {rep.log_path}; please report it with that file", 70)
    rep.emit(step="total", state="done", detail=str(path), seconds=round(time.monotonic() - t0, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
