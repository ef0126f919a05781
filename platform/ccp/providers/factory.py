"""The provider for spec.provisioner. Apart from base.py, which every provider imports: the factory
imports every provider, and the two in one module were an import cycle."""

from __future__ import annotations

from ccp.providers.base import Provider


def for_context(ctx) -> Provider:
    kind = ctx.config.spec.provisioner
    if kind == "static":
        from ccp.providers.static import StaticProvider

        return StaticProvider(ctx)
    if kind == "local":
        from ccp.providers.local import LocalProvider

        return LocalProvider(ctx)
    if kind == "terraform":
        from ccp.providers.vsphere_terraform import TerraformProvider

        return TerraformProvider(ctx)
    from ccp.providers import vcsim_shim
    from ccp.providers.vsphere_native import NativeProvider

    return vcsim_shim.wrap(NativeProvider)(ctx) if vcsim_shim.enabled() else NativeProvider(ctx)
