"""A vSphere session over pyvmomi: TLS as configured, reads through the PropertyCollector (one
round trip for many objects; vcsim also drops the connection on some unset attributes read one by
one), name lookups that list what exists on a miss, and many tasks waited on at once."""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccp.errors import InfrastructureError, PreflightError


@dataclass
class Session:
    si: Any
    server: str
    _content: Any = None
    poll_seconds: int = 30    # long polls end before the read timeout does

    @property
    def content(self):
        # ServiceInstance.content is a server round trip on every access: fetch it once.
        if self._content is None:
            self._content = self.si.RetrieveContent()
        return self._content

    def close(self) -> None:
        from pyVim.connect import Disconnect

        try:
            Disconnect(self.si)
        except Exception:  # closing a dead session is not worth an error
            pass


def connect(vs, base_dir: Path) -> Session:
    from pyVim.connect import SmartConnect
    from pyVmomi import vim

    kwargs: dict[str, Any] = {"host": vs.host, "port": vs.port, "user": vs.username,
                              "pwd": vs.password.reveal(), "connectionPoolTimeout": 60,
                              "httpConnectionTimeout": vs.timeoutSeconds}
    if vs.insecure:
        kwargs["disableSslCertValidation"] = True
    elif vs.thumbprint:
        try:
            kwargs["sslContext"] = pinned_context(vs.host, vs.port, vs.thumbprint, vs.timeoutSeconds)
        except TimeoutError:
            raise _no_answer(vs) from None
        except OSError as exc:
            raise PreflightError(f"cannot reach vCenter at {vs.server}: {exc.strerror or exc}",
                                 "check vsphere.server, DNS and the firewall") from None
    else:
        ca = Path(os.path.expanduser(vs.caFile)) if vs.caFile else None
        if ca and not ca.is_absolute():
            ca = base_dir / ca
        if ca and not ca.exists():
            raise PreflightError(f"vsphere.caFile {ca} does not exist", "point caFile at the PEM file of vCenter's CA")
        kwargs["sslContext"] = ssl.create_default_context(cafile=str(ca) if ca else None)
    # pyvmomi's API-version discovery opens its own HTTP connection without a timeout; the process-wide
    # default covers it (and is put back at once). httpConnectionTimeout covers every later request.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(vs.timeoutSeconds)
    try:
        si = SmartConnect(**kwargs)
    except ssl.SSLCertVerificationError as exc:
        raise PreflightError(f"vCenter {vs.server} presented a certificate this machine does not trust ({exc.verify_message})",
                             "set vsphere.caFile to its CA's PEM file, or vsphere.thumbprint to pin it; "
                             "insecure: true skips the check (labs only)") from None
    except ssl.SSLError as exc:
        raise PreflightError(f"TLS with vCenter {vs.server} failed: {exc.reason or exc}",
                             "check that server points at vCenter's HTTPS port and that the thumbprint is right") from None
    except TimeoutError:   # socket.timeout: TCP was accepted (or not) but nothing answered in time
        raise _no_answer(vs) from None
    except vim.fault.InvalidLogin:
        raise PreflightError(f"vCenter {vs.server} rejected the login of {vs.username}",
                             f"check vsphere.username and the password ({vs.password.source})") from None
    except (socket.gaierror, ConnectionError, TimeoutError, OSError) as exc:
        raise PreflightError(f"cannot reach vCenter at {vs.server}: {getattr(exc, 'strerror', None) or exc}",
                             "check vsphere.server (host or host:port), DNS and the firewall between here and vCenter") from None
    except Exception as exc:  # a SOAP fault or an unexpected answer: say what it was
        raise PreflightError(f"vCenter {vs.server} did not accept the connection: {_fault(exc)}",
                             "check vsphere.server and that it is a vCenter or ESXi endpoint") from None
    finally:
        socket.setdefaulttimeout(previous)
    return Session(si=si, server=vs.server, poll_seconds=vs.poll_seconds)


def _no_answer(vs) -> PreflightError:
    return PreflightError(f"vCenter at {vs.host}:{vs.port} did not answer within {vs.timeoutSeconds}s",
                          f"check that {vs.host}:{vs.port} is vCenter's HTTPS endpoint and that it is up (a proxy or "
                          "firewall may accept connections and drop them); raise vsphere.timeoutSeconds for a slow vCenter")


def pinned_context(host: str, port: int, thumbprint: str, timeout: int = 15) -> ssl.SSLContext:
    """A context that trusts exactly the certificate whose thumbprint the user pinned.

    The certificate is fetched once and compared; every connection after that must present that very
    certificate (it becomes the only trust anchor), so nothing is left unverified. pyvmomi's own
    thumbprint option only applies after ordinary verification fails, and its version discovery
    fails before that, so it cannot be used here.
    """
    import hashlib

    want = thumbprint.replace(":", "").lower()
    algo = {40: "sha1", 64: "sha256", 128: "sha512"}[len(want)]
    pem = ssl.get_server_certificate((host, port), timeout=timeout)
    got = hashlib.new(algo, ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    if got != want:
        raise PreflightError(f"vCenter {host}:{port} presented a certificate with {algo} thumbprint {got}, not the pinned {want}",
                             "if the certificate was renewed on purpose, update vsphere.thumbprint; otherwise do not connect")
    ctx = ssl.create_default_context(cadata=pem)
    ctx.check_hostname = False                       # identity is the pinned certificate itself
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a leaf may be the trust anchor
    ctx.set_ciphers("DEFAULT:@SECLEVEL=1")           # a pinned cert is trusted even with a 1024-bit key
    return ctx


def _fault(exc: Exception) -> str:
    return getattr(exc, "msg", None) or str(exc) or type(exc).__name__


# ------------------------------------------------------------------ reads

def retrieve(session: Session, objs: list, obj_type, paths: list[str]) -> dict[Any, dict]:
    """Properties of many objects in one call (paged). Unset properties are absent from the dict."""
    from pyVmomi import vmodl

    if not objs:
        return {}
    pc = session.content.propertyCollector
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=o) for o in objs],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=obj_type, pathSet=paths)])
    return _collect(pc, spec)


def retrieve_all(session: Session, root, obj_type, paths: list[str]) -> dict[Any, dict]:
    """Properties of every object of a type below ``root`` (a container view, one call, paged)."""
    from pyVmomi import vmodl

    content = session.content
    view = content.viewManager.CreateContainerView(root, [obj_type], True)
    try:
        traversal = vmodl.query.PropertyCollector.TraversalSpec(name="view", path="view", skip=False, type=type(view))
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=obj_type, pathSet=paths)])
        return _collect(content.propertyCollector, spec)
    finally:
        view.Destroy()


def _collect(pc, spec) -> dict[Any, dict]:
    from pyVmomi import vmodl

    out: dict[Any, dict] = {}
    result = pc.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=1000))
    while result:
        for obj in result.objects:
            out[obj.obj] = {p.name: p.val for p in (obj.propSet or [])}
        result = pc.ContinueRetrievePropertiesEx(result.token) if result.token else None
    return out


# ------------------------------------------------------------------ name lookups

class NotFound(Exception):
    def __init__(self, kind: str, name: str, existing: list[str]):
        self.kind, self.name, self.existing = kind, name, sorted(existing)
        shown = ", ".join(self.existing[:15]) + (" ..." if len(self.existing) > 15 else "")
        super().__init__(f"{kind} {name!r} not found" + (f"; there is: {shown}" if existing else f"; there is no {kind} at all"))


@dataclass
class Placement:
    """The vSphere objects a cluster's VMs go into, found by the names in cluster.yaml."""

    datacenter: Any = None
    cluster: Any = None
    pool: Any = None
    datastore: Any = None
    network: Any = None
    folder: Any = None
    template: Any = None
    missing: dict[str, NotFound] = field(default_factory=dict)


def find_placement(session: Session, vs) -> Placement:
    """Look everything up; a miss is recorded (with the names that do exist), not raised."""
    from pyVmomi import vim

    pl = Placement()
    dcs = {p["name"]: o for o, p in retrieve_all(session, session.content.rootFolder, vim.Datacenter, ["name"]).items()}
    pl.datacenter = dcs.get(vs.datacenter)
    if pl.datacenter is None:
        pl.missing["datacenter"] = NotFound("datacenter", vs.datacenter, list(dcs))
        return pl
    dc = retrieve(session, [pl.datacenter], vim.Datacenter, ["hostFolder", "vmFolder", "datastore", "network"])[pl.datacenter]

    clusters = retrieve_all(session, dc["hostFolder"], vim.ComputeResource, ["name", "resourcePool"])
    by_name = {p["name"]: (o, p) for o, p in clusters.items()}
    if vs.cluster in by_name:
        pl.cluster, props = by_name[vs.cluster]
        pl.pool = _find_pool(session, props["resourcePool"], vs.resourcePool, pl)
    else:
        pl.missing["cluster"] = NotFound("cluster", vs.cluster, [n for n, (o, _) in by_name.items() if isinstance(o, vim.ClusterComputeResource)])

    names = retrieve(session, list(dc["datastore"]), vim.Datastore, ["name"])
    pl.datastore = next((o for o, p in names.items() if p["name"] == vs.datastore), None)
    if pl.datastore is None:
        pl.missing["datastore"] = NotFound("datastore", vs.datastore, [p["name"] for p in names.values()])
    nets = retrieve(session, list(dc["network"]), vim.Network, ["name"])
    pl.network = next((o for o, p in nets.items() if p["name"] == vs.network), None)
    if pl.network is None:
        pl.missing["network"] = NotFound("network", vs.network, sorted({p["name"] for p in nets.values()}))

    pl.folder = _find_folder(session, dc["vmFolder"], vs.folder, pl)
    vms = retrieve_all(session, dc["vmFolder"], vim.VirtualMachine, ["name"])
    pl.template = next((o for o, p in vms.items() if p["name"] == vs.template), None)
    if pl.template is None:
        templates = retrieve(session, list(vms), vim.VirtualMachine, ["name", "config.template"])
        pl.missing["template"] = NotFound("template", vs.template,
                                          [p["name"] for p in templates.values() if p.get("config.template")])
    return pl


def _find_folder(session: Session, root, path: str, pl: Placement):
    from pyVmomi import vim

    node = root
    for part in [p for p in path.strip("/").split("/") if p]:
        children = retrieve(session, [node], vim.Folder, ["childEntity"])[node].get("childEntity", [])
        folders = {p["name"]: o for o, p in retrieve(session, [c for c in children if isinstance(c, vim.Folder)], vim.Folder, ["name"]).items()}
        if part not in folders:
            pl.missing["folder"] = NotFound("folder", path, list(folders))
            return None
        node = folders[part]
    return node


def _find_pool(session: Session, root_pool, path: str | None, pl: Placement):
    from pyVmomi import vim

    if not path:
        return root_pool
    node = root_pool
    for part in [p for p in path.strip("/").split("/") if p and p != "Resources"]:
        children = retrieve(session, [node], vim.ResourcePool, ["resourcePool"])[node].get("resourcePool", [])
        pools = {p["name"]: o for o, p in retrieve(session, list(children), vim.ResourcePool, ["name"]).items()}
        if part not in pools:
            pl.missing["resource-pool"] = NotFound("resource pool", path, list(pools))
            return None
        node = pools[part]
    return node


# ------------------------------------------------------------------ tasks

class TaskFailed(InfrastructureError):
    pass


class TaskWaiter:
    """Waits on many tasks at once through a private PropertyCollector and WaitForUpdatesEx
    (no sleep-polling, and no interference with other waits on the session's collector)."""

    def __init__(self, session: Session):
        self.session = session
        self.pc = session.content.propertyCollector.CreatePropertyCollector()
        self.version = ""
        self.filters: dict[Any, Any] = {}
        self.state: dict[Any, dict] = {}
        self.fresh: list[Any] = []      # added since the last wait

    def add(self, task) -> None:
        self.fresh.append(task)

    def _watch(self, tasks) -> None:
        from pyVmomi import vim, vmodl

        for task in tasks:
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=task)],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.Task, pathSet=["info.state", "info.error", "info.result"])])
            self.filters[task] = self.pc.CreateFilter(spec, partialUpdates=False)
            self.state[task] = {}

    def _finished_already(self) -> list[tuple[Any, Any, Any]]:
        """One read of the tasks added since the last wait: short tasks are often done already (no
        filter needed then), and some servers (vcsim) report a new filter's first state only on
        their next tick. The rest get a filter and are waited on."""
        from pyVmomi import vim

        fresh, self.fresh = self.fresh, []
        props = retrieve(self.session, fresh, vim.Task, ["info.state", "info.error", "info.result"])
        done = [(t, p.get("info.result"), p.get("info.error")) for t, p in props.items()
                if p.get("info.state") in ("success", "error")]
        finished = {t for t, _, _ in done}
        self._watch([t for t in fresh if t not in finished])
        return done

    def _forget(self, done) -> None:
        for task, _, _ in done:
            f = self.filters.pop(task, None)
            if f is not None:
                f.Destroy()
            self.state.pop(task, None)

    def wait(self, timeout: int = 60) -> list[tuple[Any, Any, Any]]:
        """-> [(task, result, error)] for tasks that finished; [] on timeout."""
        from pyVmomi import vmodl

        if self.fresh:
            done = self._finished_already()
            if done:
                return done
        if not self.filters:
            return []
        update = self.pc.WaitForUpdatesEx(self.version, vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=timeout))
        if update is None:
            return []
        self.version = update.version
        done = []
        for fs in update.filterSet or []:
            for obj in fs.objectSet or []:
                if obj.kind == "leave" or obj.obj not in self.filters:
                    continue  # a filter we destroyed says goodbye (vcsim repeats the final state then)
                st = self.state.setdefault(obj.obj, {})
                for change in obj.changeSet or []:
                    st[change.name] = change.val
                if st.get("info.state") in ("success", "error") and all(obj.obj != t for t, _, _ in done):
                    done.append((obj.obj, st.get("info.result"), st.get("info.error")))  # once, however often reported
        self._forget(done)
        return done

    def close(self) -> None:
        try:
            self.pc.Destroy()
        except Exception:
            pass


def fault_text(error) -> str:
    if error is None:
        return "unknown error"
    msg = getattr(error, "localizedMessage", None) or getattr(error, "msg", None)
    fault = getattr(error, "fault", None)
    name = type(fault).__name__ if fault is not None else type(error).__name__
    return f"{msg or name} ({name})" if msg else name
