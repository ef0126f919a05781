"""SIMULATOR ONLY — never active against a real vCenter unless someone sets CCP_VCSIM_SHIM=1.

On real vSphere a VM reports its IP through VMware Tools once cloud-init has configured the
network from guestinfo metadata. vcsim runs no guest, so nothing would ever report one; vcsim's own
extraConfig key `SET.guest.ipAddress` makes it report the address ccp assigned. `make demo` and the
simulator tests set CCP_VCSIM_SHIM=1; the production provider contains no trace of the key.
"""

from __future__ import annotations

import os

ENV = "CCP_VCSIM_SHIM"


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def wrap(provider_cls):
    class VcsimShimProvider(provider_cls):
        def guest_extra_config(self, node) -> dict[str, str]:
            return {**super().guest_extra_config(node), "SET.guest.ipAddress": str(node.address)}

    VcsimShimProvider.__name__ = f"VcsimShim{provider_cls.__name__}"
    return VcsimShimProvider
