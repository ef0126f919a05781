"""The add-on framework: add-ons are folders of templated YAML (addons/<name>/addon.yaml and
manifests/*.yaml.j2, shipped in the wheel and found through ccp.resources).

  catalog    discover the add-ons, order them by depends_on, decide which a cluster enables
  images     the images from the bill of materials, registry mirror applied (`ccp images`)
  manifests  render an add-on's manifests, label them, stamp their digest
  secrets    the Secrets an add-on needs, built in memory at apply time, never written to disk
  apply      apply, prune, wait for, report on and delete add-ons through an ObjectsPort

The package re-exports what the commands, phases and cluster context use to list and render add-ons;
apply and secrets are imported by name where a cluster is changed (`from ccp.addons import apply`).
"""

from ccp.addons.catalog import Addon, Readiness, discover, enabled_addons, is_enabled, order
from ccp.addons.images import all_images, images_for, mirrored
from ccp.addons.manifests import ADDON_LABEL, HASH_ANNOTATION, MANAGED_BY, RenderedAddon, render

__all__ = ["ADDON_LABEL", "HASH_ANNOTATION", "MANAGED_BY", "Addon", "Readiness", "RenderedAddon", "all_images",
           "discover", "enabled_addons", "images_for", "is_enabled", "mirrored", "order", "render"]
