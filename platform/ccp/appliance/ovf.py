"""The appliance's OVF descriptor (DMTF DSP0243 1.x, schema DSP8023) and the vApp properties it offers.

Written with ElementTree, never by string pasting, so a description with `<` or `&` stays valid XML.
Element order inside each RASD/VSSD item follows the CIM schema's sequence (alphabetical), which
validators enforce.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
VMW = "http://www.vmware.com/schema/ovf"
ENV = "http://schemas.dmtf.org/ovf/environment/1"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
for _prefix, _uri in (("ovf", OVF), ("rasd", RASD), ("vssd", VSSD), ("vmw", VMW), ("xsi", XSI)):
    ET.register_namespace(_prefix, _uri)

VMDK_STREAM = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
NETWORK = "VM Network"
CPUS = 2
MEMORY_MIB = 4096


@dataclass(frozen=True)
class Property:
    key: str
    label: str
    description: str
    default: str = ""
    password: bool = False


PROPERTIES = (
    Property("hostname", "Host name", "The appliance's host name (a DNS label or a fully qualified name).",
             "ccp-appliance"),
    Property("ip", "IP address", "The address with its prefix length, like 192.0.2.10/24, or dhcp.", "dhcp"),
    Property("gateway", "Gateway", "The default gateway for a static address; empty with dhcp."),
    Property("dns", "DNS servers", "Name servers, separated by commas; empty to take them from DHCP."),
    Property("ntp", "NTP servers", "Time servers, separated by commas; empty to keep the Debian pool."),
    Property("ssh_authorized_key", "SSH public key",
             "An OpenSSH public key for the ccp user. When one is given, password login over SSH is turned off."),
    Property("admin_password", "Admin password",
             "The password of the ccp user (console login and sudo). Stored only as a hash at first boot.",
             password=True),
)
KEYS = tuple(p.key for p in PROPERTIES)


def _el(parent: ET.Element, ns: str, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    e = ET.SubElement(parent, f"{{{ns}}}{tag}", {(f"{{{OVF}}}{k}" if ":" not in k else k): v for k, v in attrs.items()})
    if text is not None:
        e.text = text
    return e


def _item(hw: ET.Element, fields: list[tuple[str, str]]) -> None:
    item = _el(hw, OVF, "Item")
    for tag, value in sorted(fields):   # the CIM RASD sequence is alphabetical
        _el(item, RASD, tag, value)


def descriptor(*, name: str, version: str, vmdk_file: str, vmdk_bytes: int, capacity_bytes: int,
               populated_bytes: int | None = None) -> bytes:
    """The .ovf for one VM: 2 vCPU, 4 GiB, one SCSI disk, one VMXNET3 NIC, a CD-ROM and the vApp properties."""
    env = ET.Element(f"{{{OVF}}}Envelope", {f"{{{XSI}}}schemaLocation": f"{OVF} DSP8023.xsd"})
    refs = _el(env, OVF, "References")
    _el(refs, OVF, "File", href=vmdk_file, id="file1", size=str(vmdk_bytes))
    disks = _el(env, OVF, "DiskSection")
    _el(disks, OVF, "Info", "The appliance's system disk")
    disk_attrs = {"capacity": str(capacity_bytes), "capacityAllocationUnits": "byte", "diskId": "vmdisk1",
                  "fileRef": "file1", "format": VMDK_STREAM}
    if populated_bytes:
        disk_attrs["populatedSize"] = str(populated_bytes)
    _el(disks, OVF, "Disk", **disk_attrs)
    nets = _el(env, OVF, "NetworkSection")
    _el(nets, OVF, "Info", "The network the appliance is attached to")
    net = _el(nets, OVF, "Network", name=NETWORK)
    _el(net, OVF, "Description", "The network that reaches vCenter and the cluster's VMs")

    vs = _el(env, OVF, "VirtualSystem", id=name)
    _el(vs, OVF, "Info", "The ccp appliance: ccp ready to install Kubernetes clusters on vSphere")
    _el(vs, OVF, "Name", name)
    product = _el(vs, OVF, "ProductSection", required="false")
    _el(product, OVF, "Info", "Settings applied at every boot by ccp-firstboot")
    _el(product, OVF, "Product", "ccp appliance")
    _el(product, OVF, "Vendor", "ccp")
    _el(product, OVF, "Version", version)
    _el(product, OVF, "FullVersion", f"ccp {version} on Debian 12")
    _el(product, OVF, "Category", "Appliance")
    for p in PROPERTIES:
        attrs = {"key": p.key, "type": "string", "userConfigurable": "true", "value": p.default}
        if p.password:
            attrs["password"] = "true"
        prop = _el(product, OVF, "Property", **attrs)
        _el(prop, OVF, "Label", p.label)
        _el(prop, OVF, "Description", p.description)
    os_section = _el(vs, OVF, "OperatingSystemSection", id="96", **{f"{{{VMW}}}osType": "debian12_64Guest"})
    _el(os_section, OVF, "Info", "Debian GNU/Linux 12 (64-bit)")

    hw = _el(vs, OVF, "VirtualHardwareSection", transport="com.vmware.guestInfo iso")
    _el(hw, OVF, "Info", f"{CPUS} vCPU, {MEMORY_MIB} MiB of memory, one disk, one VMXNET3 NIC")
    system = _el(hw, OVF, "System")
    for tag, value in (("ElementName", "Virtual Hardware Family"), ("InstanceID", "0"),
                       ("VirtualSystemIdentifier", name), ("VirtualSystemType", "vmx-15")):
        _el(system, VSSD, tag, value)
    _item(hw, [("AllocationUnits", "hertz * 10^6"), ("Description", "Number of virtual CPUs"),
               ("ElementName", f"{CPUS} virtual CPU(s)"), ("InstanceID", "1"), ("ResourceType", "3"),
               ("VirtualQuantity", str(CPUS))])
    _item(hw, [("AllocationUnits", "byte * 2^20"), ("Description", "Memory size"),
               ("ElementName", f"{MEMORY_MIB} MB of memory"), ("InstanceID", "2"), ("ResourceType", "4"),
               ("VirtualQuantity", str(MEMORY_MIB))])
    _item(hw, [("Address", "0"), ("Description", "SCSI controller"), ("ElementName", "SCSI controller 0"),
               ("InstanceID", "3"), ("ResourceSubType", "VirtualSCSI"), ("ResourceType", "6")])
    _item(hw, [("AddressOnParent", "0"), ("ElementName", "Hard disk 1"), ("HostResource", "ovf:/disk/vmdisk1"),
               ("InstanceID", "4"), ("Parent", "3"), ("ResourceType", "17")])
    _item(hw, [("AddressOnParent", "7"), ("AutomaticAllocation", "true"), ("Connection", NETWORK),
               ("Description", "VMXNET3 ethernet adapter"), ("ElementName", "Network adapter 1"),
               ("InstanceID", "5"), ("ResourceSubType", "VMXNET3"), ("ResourceType", "10")])
    _item(hw, [("Address", "1"), ("Description", "IDE controller"), ("ElementName", "IDE controller 1"),
               ("InstanceID", "6"), ("ResourceType", "5")])
    _item(hw, [("AddressOnParent", "0"), ("AutomaticAllocation", "false"), ("ElementName", "CD-ROM 1"),
               ("InstanceID", "7"), ("Parent", "6"), ("ResourceType", "15")])
    ET.indent(env)
    return ET.tostring(env, encoding="utf-8", xml_declaration=True)


def environment(props: dict[str, str], instance: str = "ccp-appliance") -> bytes:
    """An OVF environment document (DSP8027) carrying ``props``: what vSphere hands the VM, used for the ISO transport."""
    oe = f"{{{ENV}}}"
    ET.register_namespace("oe", ENV)
    root = ET.Element(f"{oe}Environment", {f"{oe}id": instance})
    section = ET.SubElement(root, f"{oe}PropertySection")
    for key, value in props.items():
        ET.SubElement(section, f"{oe}Property", {f"{oe}key": key, f"{oe}value": value})
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def properties_of(ovf_xml: bytes) -> list[str]:
    """The property keys an OVF descriptor declares (deploy refuses keys the appliance does not know)."""
    root = ET.fromstring(ovf_xml)
    return [p.get(f"{{{OVF}}}key", "") for p in root.iter(f"{{{OVF}}}Property")]
