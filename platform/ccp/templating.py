"""The one jinja2 environment every ccp template renders through: the node and cluster files of
ccp.render (loaded from templates/) and the add-on manifests of ccp.addons (given as text).

One environment, so a filter or a policy means the same in both and neither can drift into rendering
a missing value as an empty string: StrictUndefined turns it into an error naming the template.
jinja2 is imported when the environment is first asked for, not with this module, so commands that
render nothing (`ccp --help`, `ccp addons list` without a config) never load it.
"""

from __future__ import annotations

from functools import cache

from ccp import resources


def short_sha256(text: str, digits: int) -> str:
    """The first hex digits of the text's SHA-256. hashlib is imported here: loading OpenSSL is a good
    part of what `ccp addons list` would otherwise spend."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:digits]


def b64encode(value) -> str:
    import base64

    return base64.b64encode(str(value).encode()).decode()


def es_duration(text: str) -> str:
    """cluster.yaml's 2w or 1y in units Elasticsearch's lifecycle ages accept (d, h)."""
    n, unit = int(text[:-1]), text[-1]
    return {"w": f"{n * 7}d", "y": f"{n * 365}d"}.get(unit, text)


@cache
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,   # the shipped templates do not change under a running ccp: no stat() per file rendered
    )
    env.filters["b64encode"] = b64encode
    # a Job is immutable: name it after what it does, so a change makes a new Job (and prunes the old)
    env.filters["short_hash"] = lambda s: short_sha256(str(s), 8)
    env.filters["es_duration"] = es_duration
    # tojson keeps the order a mapping was written in (kubeadm args, cloud-init facts read in that order)
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}
    return env
