"""A VM of vCenter as the native provisioner observes it, and the properties it reads for that. Apart
from vsphere_native.py so that the operations module (vsphere_native_ops.py), which that one calls,
can use them without importing it back."""

from __future__ import annotations

from dataclasses import dataclass

from ccp.providers.base import OWNER_KEY

ATTRIBUTE = "ccp-cluster"   # a custom attribute too, so people can see and search ownership in the vSphere client
VM_PROPS = ["name", "config.extraConfig", "config.hardware.numCPU", "config.hardware.memoryMB",
            "config.hardware.device", "runtime.powerState", "guest.ipAddress", "config.instanceUuid"]
# A VM ccp has just cloned carries its mark by construction (it was in the clone spec): its
# extraConfig (kilobytes of base64 cloud-init) need not be read back.
FRESH_PROPS = [p for p in VM_PROPS if p != "config.extraConfig"]


@dataclass
class ObservedVM:
    ref: object
    name: str
    owner: str | None
    cpus: int
    memory: int
    disk_kb: int
    power: str
    ip: str | None
    uuid: str
    disk: object = None   # the first VirtualDisk device, to grow it without reading the VM again

    @classmethod
    def from_props(cls, ref, p: dict, owner: str | None = None) -> ObservedVM:
        extra = {o.key: o.value for o in p.get("config.extraConfig") or []}
        if owner is not None:
            extra[OWNER_KEY] = owner
        disks = [d for d in p.get("config.hardware.device") or [] if type(d).__name__.endswith("VirtualDisk")]
        return cls(ref=ref, name=p["name"], owner=extra.get(OWNER_KEY), cpus=p.get("config.hardware.numCPU", 0),
                   memory=p.get("config.hardware.memoryMB", 0), disk_kb=disks[0].capacityInKB if disks else 0,
                   power=str(p.get("runtime.powerState", "")), ip=p.get("guest.ipAddress"),
                   uuid=p.get("config.instanceUuid", ""), disk=disks[0] if disks else None)
