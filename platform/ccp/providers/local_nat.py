"""Outbound access for local machines (spec.local.nat): the host masquerades the machines' subnet, so
nodes can reach package repositories and registries the host reaches — what a VM network's router
does. Off by default: installs from an offline bundle need no way out, and a lab stays closed.

Every rule carries the comment ``ccp:<bridge>``: ``remove`` deletes exactly these and nothing else.
IPv4 forwarding is switched on when it is off (said once, never silently) and left on afterwards,
since other things on the host may rely on it by then.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ccp.errors import InfrastructureError

FORWARDING = Path("/proc/sys/net/ipv4/ip_forward")


def _rules(bridge: str, cidr: str) -> list[tuple[str, list[str]]]:
    tag = ["-m", "comment", "--comment", f"ccp:{bridge}"]
    return [("nat", ["POSTROUTING", "-s", cidr, "!", "-o", bridge, "-j", "MASQUERADE", *tag]),
            # a host whose FORWARD policy is DROP (Docker sets it) would still stop the machines' traffic
            ("filter", ["FORWARD", "-i", bridge, "-j", "ACCEPT", *tag]),
            ("filter", ["FORWARD", "-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT", *tag])]


def _iptables(*args: str) -> subprocess.CompletedProcess:
    """A host without iptables answers like a failed call (127), never with a traceback: ``ensure`` says what to
    install, and ``remove`` (run by every destroy, NAT or not) finds nothing to remove."""
    try:
        return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True)
    except FileNotFoundError:
        return subprocess.CompletedProcess(["iptables", *args], 127, "", "iptables: command not found")


def ensure(bridge: str, cidr: str, say=lambda msg: None) -> bool:
    """Add what is missing; -> whether anything changed."""
    changed = False
    if FORWARDING.read_text().strip() != "1":
        try:
            FORWARDING.write_text("1\n")
        except OSError as exc:
            raise InfrastructureError(f"could not switch on IPv4 forwarding for spec.local.nat: {exc.strerror}",
                                      "run ccp as root, or set net.ipv4.ip_forward=1 yourself") from None
        say("switched on IPv4 forwarding (net.ipv4.ip_forward=1) for spec.local.nat; it stays on")
        changed = True
    for table, rule in _rules(bridge, cidr):
        if _iptables("-t", table, "-C", *rule).returncode == 0:
            continue
        r = _iptables("-t", table, "-A", *rule)
        if r.returncode:
            raise InfrastructureError(f"could not add the NAT rule for {bridge} ({table}: {' '.join(rule[:6])}): "
                                      f"{r.stderr.strip()}", "check that iptables works on this host (apt-get install "
                                      "iptables), or set spec.local.nat: false and install from an offline bundle")
        changed = True
    return changed


def remove(bridge: str) -> list[str]:
    """Delete every rule tagged for ``bridge``; -> the rules deleted (as iptables -S prints them)."""
    gone = []
    for table in ("nat", "filter"):
        listed = _iptables("-t", table, "-S").stdout.splitlines()
        for line in listed:
            if f'--comment "ccp:{bridge}"' not in line and f"--comment ccp:{bridge}" not in line:
                continue
            args = line.split()
            args[0] = "-D"   # "-A CHAIN ..." -> "-D CHAIN ..."
            if _iptables("-t", table, *[a.strip('"') for a in args]).returncode == 0:
                gone.append(f"{table}: {line}")
    return gone


def present(bridge: str) -> list[str]:
    return [line for table in ("nat", "filter") for line in _iptables("-t", table, "-S").stdout.splitlines()
            if f"ccp:{bridge}" in line]
