"""Stopping and destroying local machines (the LocalHost half that ends a machine's life).

Power-off first, with the kubelet and the containers quiesced (a machine whose pods run does not
power off); then SIGKILL whatever is left in the machine's cgroups, by pid; then what the host holds
for it: the overlay mount, the cgroups, nspawn's lock and propagate directory (/run is not a tmpfs
here, so they would stay), and the veth when the kernel is slow to drop it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from ccp.errors import InfrastructureError
from ccp.providers.local_probes import mounts_below

NSPAWN_RUN = Path("/run/systemd/nspawn")   # not a tmpfs here: nspawn leaves its propagate dir and locks behind
# Power-off waits for pods that do not stop: kubelet goes first and the containers are killed.
QUIESCE = ("systemctl stop kubelet 2>/dev/null; for ns in $(ctr namespaces ls -q 2>/dev/null); do "
           "for t in $(ctr -n $ns tasks ls -q 2>/dev/null); do ctr -n $ns tasks kill -a -s SIGKILL $t; done; done")


class MachineTeardown:
    """Mixed into LocalHost, whose records (_read, _write), cgroups (_cgroups) and process probes
    (_leader, _alive) it uses."""

    def stop(self, cluster: str, name: str) -> None:
        rec = self._read(name)
        if rec is not None and rec.get("cluster") == cluster:
            self._halt(rec, grace=10.0)
            rec.update(pid=None, launcher_pid=None, launcher_start=None)
            self._write(rec)

    def destroy(self, cluster: str, name: str) -> None:
        rec = self._read(name)
        if rec is None or rec.get("cluster") != cluster:
            if rec is not None:
                self.say(f"machine {name} belongs to cluster {rec.get('cluster')}: left alone")
            return
        self._halt(rec, grace=0)   # its disks go with it: no need for a clean shutdown
        self._remove_dir(name)

    def _remove_dir(self, name: str) -> None:
        import shutil

        d = self.dir / name
        for mnt in mounts_below(d):
            subprocess.run(["umount", mnt], capture_output=True)
        if mounts_below(d):   # never delete through a mount
            raise InfrastructureError(f"machine {name}: {mounts_below(d)[0]} is still mounted; its directory is kept",
                                      f"find what holds it (fuser -vm {mounts_below(d)[0]}), unmount it, then destroy again")
        if d.exists():
            shutil.rmtree(d)

    def _processes(self, name: str) -> set[int]:
        pids = set()
        for procs in (p for cg in self._cgroups(name) if cg.exists() for p in cg.rglob("cgroup.procs")):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                continue
        return pids

    def _halt(self, rec: dict, grace: float) -> None:
        """Power the machine off (``grace`` seconds for its systemd to do so), kill what is left in its
        cgroups, and remove what the host holds for it: overlay mount, cgroups, nspawn's leftovers."""
        import shutil

        name, merged = rec["name"], Path(rec["dir"]) / "merged"
        lock = None
        if str(merged) in mounts_below(merged):   # nspawn's lock on the directory, left behind when it is killed
            try:
                st = os.stat(merged)
                lock = NSPAWN_RUN / "locks" / f"inode-{st.st_dev}:{st.st_ino}"
            except OSError:
                pass
        leader = self._leader(rec) if self._alive(rec) and grace > 0 else None
        if leader:
            if Path(f"/proc/{leader}/root/usr/bin/kubelet").exists():
                try:
                    subprocess.run(["nsenter", "-t", str(leader), "-m", "-u", "-i", "-n", "-p", "--", "/bin/sh", "-c", QUIESCE],
                                   capture_output=True, timeout=30)
                except subprocess.TimeoutExpired:
                    self.say(f"{name}: stopping kubelet and its containers took over 30s; powering off anyway")
            try:
                os.kill(leader, signal.SIGRTMIN + 4)   # systemd's "poweroff"
            except ProcessLookupError:
                pass
            t0 = time.monotonic()
            while self._alive(rec) and time.monotonic() - t0 < grace:
                time.sleep(0.1)
        for _ in range(100):
            pids = self._processes(name) | ({rec["launcher_pid"]} if self._alive(rec) else set())
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        else:
            raise InfrastructureError(f"machine {name}: processes {sorted(pids)[:5]} survive SIGKILL",
                                      "look at them with ps; once they are gone, run the command again")
        if lock is not None:
            lock.unlink(missing_ok=True)
        for mnt in mounts_below(merged):
            subprocess.run(["umount", mnt], capture_output=True)
        self._remove_cgroups(name)
        shutil.rmtree(NSPAWN_RUN / "propagate" / name, ignore_errors=True)
        t0 = time.monotonic()   # the kernel deletes the veth pair with the machine's network namespace, a moment later
        while rec.get("veth") and Path(f"/sys/class/net/{rec['veth']}").exists():
            if time.monotonic() - t0 > 3:
                subprocess.run(["ip", "link", "del", rec["veth"]], capture_output=True)
                break
            time.sleep(0.1)

    def _remove_cgroups(self, name: str) -> None:
        for cg in (c for c in self._cgroups(name) if c.exists()):
            for _ in range(50):   # deepest first; a cgroup whose last task is exiting is busy for a moment
                for sub in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [cg]:
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
                if not cg.exists():
                    break
                time.sleep(0.1)
            try:
                cg.parent.rmdir()   # ccp-local itself, after the last machine
            except OSError:
                pass
