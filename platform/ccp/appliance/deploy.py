"""Deploy the appliance OVA to vSphere: OvfManager.CreateImportSpec, ResourcePool.ImportVApp, an
HttpNfcLease upload of the disk streamed out of the OVA, then power on.

Where it goes comes from cluster.yaml's vsphere section (datacenter, cluster/pool, datastore, network,
folder); the vApp properties come from the command's flags. The upload keeps the lease alive with
progress reports (vSphere drops an idle lease after about five minutes) and aborts the lease on any
failure so no half-imported VM stays behind.
"""

from __future__ import annotations

import http.client
import ssl
import tarfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ccp.appliance import ova, ovf
from ccp.errors import ConfigError, InfrastructureError, PreflightError

CHUNK = 1 << 20


@dataclass
class Deployed:
    name: str
    created: bool
    powered_on: bool
    uploaded_bytes: int
    seconds: float


def check_properties(values: dict[str, str], declared: list[str]) -> dict[str, str]:
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ConfigError(f"the OVA does not declare the properties {', '.join(unknown)}",
                          f"it declares: {', '.join(declared)}; rebuild it with this ccp or drop those flags")
    return {k: v for k, v in values.items() if v is not None}


def ssl_context(vs, base_dir: Path) -> ssl.SSLContext:
    """The same trust as the SOAP session: insecure, a pinned thumbprint, or a CA file."""
    from ccp.providers.vsphere_session import pinned_context

    if vs.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        return ctx
    if vs.thumbprint:
        return pinned_context(vs.host, vs.port, vs.thumbprint, vs.timeoutSeconds)
    ca = Path(vs.caFile).expanduser() if vs.caFile else None
    if ca and not ca.is_absolute():
        ca = base_dir / ca
    return ssl.create_default_context(cafile=str(ca) if ca else None)


def deploy(loaded, package: Path, name: str, values: dict[str, str], *, power_on: bool = True,
           say: Callable[[str], None] = lambda _t: None) -> Deployed:
    from pyVmomi import vim

    from ccp.providers import vsphere_session as vss

    t0 = time.monotonic()
    pkg = ova.read(package)
    props = check_properties(values, ovf.properties_of(pkg.descriptor))
    say(f"{package.name}: layout and SHA256 manifest checked ({len(pkg.disks)} disk)")
    vs = loaded.config.spec.vsphere
    session = vss.connect(vs, loaded.base_dir)
    try:
        pl = vss.find_placement(session, vs)
        missing = {k: v for k, v in pl.missing.items() if k != "template"}
        if missing:
            raise PreflightError("; ".join(str(v) for v in missing.values()),
                                 "fix the vsphere section of the config, or create what is missing in vCenter")
        existing = [o for o, p in vss.retrieve_all(session, pl.folder, vim.VirtualMachine, ["name"]).items()
                    if p.get("name") == name]
        if existing:
            say(f"a VM named {name} exists already in the folder: nothing imported")
            return Deployed(name, False, _power_state(session, existing[0]) == "poweredOn", 0, time.monotonic() - t0)
        spec = _import_spec(session, pkg, pl, name, props)
        lease = pl.pool.ImportVApp(spec.importSpec, folder=pl.folder)
        info = _wait_ready(session, lease)
        try:
            sent = _upload(session, vs, loaded.base_dir, pkg, spec, info, lease, say)
            lease.HttpNfcLeaseProgress(100)
            lease.HttpNfcLeaseComplete()
        except BaseException as exc:
            try:
                lease.HttpNfcLeaseAbort(vim.fault.RequestCanceled(msg=f"ccp: {type(exc).__name__}"))
            except Exception:   # the lease may have timed out already; the original error matters
                pass
            raise
        vm = info.entity
        say(f"imported {name} ({sent // 2**20} MiB uploaded)")
        if power_on:
            waiter = vss.TaskWaiter(session)
            waiter.add(vm.PowerOnVM_Task())
            deadline, done = time.monotonic() + 300, []
            try:
                while not done and time.monotonic() < deadline:
                    done = waiter.wait(timeout=30)
            finally:
                waiter.close()
            if not done:
                raise InfrastructureError(f"{name} was imported, but vCenter did not finish powering it on within 300s",
                                          "look at the VM's tasks in vCenter; it may still be starting")
            error = done[0][2]
            if error is not None:
                raise InfrastructureError(f"{name} was imported but did not power on: {vss.fault_text(error)}",
                                          "look at the VM's events in vCenter, then power it on there")
            say(f"{name} powered on: it applies its properties at boot")
        return Deployed(name, True, power_on, sent, time.monotonic() - t0)
    finally:
        session.close()


def _power_state(session, vm) -> str:
    from pyVmomi import vim

    from ccp.providers.vsphere_session import retrieve

    return retrieve(session, [vm], vim.VirtualMachine, ["runtime.powerState"]).get(vm, {}).get("runtime.powerState", "")


def _import_spec(session, pkg: ova.Package, pl, name: str, props: dict[str, str]):
    from pyVmomi import vim

    params = vim.OvfManager.CreateImportSpecParams(
        entityName=name, diskProvisioning="thin",
        propertyMapping=[vim.KeyValue(key=k, value=v) for k, v in props.items()],
        networkMapping=[vim.OvfManager.NetworkMapping(name=ovf.NETWORK, network=pl.network)])
    result = session.content.ovfManager.CreateImportSpec(pkg.descriptor.decode(), pl.pool, pl.datastore, params)
    if result.error:
        raise InfrastructureError(f"vCenter refused the OVF descriptor: {'; '.join(_msg(e) for e in result.error)}",
                                  "check that the datastore and network exist and that the OVA came from `ccp appliance build`")
    return result


def _msg(fault) -> str:
    return getattr(fault, "localizedMessage", None) or getattr(fault, "msg", None) or type(fault).__name__


def _wait_ready(session, lease, timeout: float = 300):
    from pyVmomi import vim

    from ccp.providers.vsphere_session import retrieve

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = retrieve(session, [lease], vim.HttpNfcLease, ["state", "error", "info"]).get(lease, {})
        if p.get("state") == "ready":
            return p["info"]
        if p.get("state") == "error":
            raise InfrastructureError(f"vCenter could not start the import: {_msg(p.get('error'))}",
                                      "check the datastore's free space and your permissions (VApp.Import)")
        time.sleep(0.5)
    raise InfrastructureError(f"the import lease was not ready within {timeout:.0f}s",
                              "vCenter is busy or the host is unreachable from vCenter; try again later")


def _upload(session, vs, base_dir: Path, pkg: ova.Package, spec, info, lease, say) -> int:
    by_device = {item.deviceId: item for item in spec.fileItem or []}
    total = sum(item.size or 0 for item in by_device.values()) or 1
    ctx = ssl_context(vs, base_dir)
    cookie = session.si._stub.cookie   # the SOAP session's cookie authorises the lease's URLs
    sent = 0
    with tarfile.open(pkg.path, "r:") as tar:
        for device in info.deviceUrl or []:
            item = by_device.get(device.importKey)
            if item is None:
                continue
            url = urllib.parse.urlsplit(device.url)
            host, port = (vs.host, vs.port) if url.hostname == "*" else (url.hostname, url.port or 443)
            member = tar.getmember(item.path)
            try:
                sent += _send(host, port, ctx, vs.timeoutSeconds, url, item, member, tar, cookie, lease, say,
                              sent, total)
            except OSError as exc:
                raise InfrastructureError(f"uploading {item.path} to {host}:{port} failed: {exc.strerror or exc}",
                                          f"check that this machine reaches {host} on port {port} (the ESXi host "
                                          "behind the import lease), then deploy again") from None
    return sent


def _send(host, port, ctx, timeout, url, item, member, tar, cookie, lease, say, before: int, total: int) -> int:
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    conn.putrequest("PUT" if item.create else "POST", url.path + (f"?{url.query}" if url.query else ""))
    conn.putheader("Content-Type", "application/x-vnd.vmware-streamVmdk")
    conn.putheader("Content-Length", str(member.size))
    conn.putheader("Cookie", cookie)
    conn.endheaders()
    f = tar.extractfile(member)
    last, sent = time.monotonic(), 0
    for chunk in iter(lambda: f.read(CHUNK), b""):
        conn.send(chunk)
        sent += len(chunk)
        if time.monotonic() - last > 5:   # keep the lease alive and show progress
            pct = min(99, (before + sent) * 100 // total)
            lease.HttpNfcLeaseProgress(pct)
            say(f"uploading {item.path}: {pct}%")
            last = time.monotonic()
    r = conn.getresponse()
    body = r.read(2000)
    conn.close()
    if r.status >= 300:
        raise InfrastructureError(f"uploading {item.path} to {host} failed: HTTP {r.status} {r.reason}",
                                  f"the host said: {body.decode(errors='replace').strip()[:200] or 'nothing'}")
    return sent
