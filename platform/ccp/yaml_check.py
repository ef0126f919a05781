"""Does a YAML text load with PyYAML's safe loader, and is any of its documents non-empty? The same
answer as ``any(yaml.load_all(text, Loader=CSafeLoader))`` (the Python SafeLoader without libyaml),
and the same error when it fails, at about two thirds of the cost: rendering 5,000 workers parses
20,000 YAML files (bench/render_scale.py).

Building the Python objects is most of a load, and for most documents it cannot fail: mappings with
scalar keys, sequences, strings, nulls, valid booleans, and numbers and dates their own constructor
accepts. Such a document is only composed (parsed into nodes). Any other node (a refused number or
date, an explicit or unknown tag, a merge key, a collection as a key) sends its whole document
through the safe constructor, which fails as it always did, with the same error.
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _SEQ, _MAP = (_TAG + t for t in ("str", "null", "bool", "seq", "map"))
_BOOLS = yaml.constructor.SafeConstructor.bool_values
# scalars whose constructor may refuse a value (0x_, 2024-02-30): asked one by one, side-effect free
_BUILD = {_TAG + t: _LOADER.yaml_constructors[_TAG + t] for t in ("int", "float", "timestamp")}


def any_document(text: str) -> bool:
    """True when some document of ``text`` is not empty; raises what loading it raises."""
    loader = _LOADER(text)
    found = False
    try:
        while loader.check_node():
            node = loader.get_node()
            if _plain(loader, node):
                found = found or bool(node.value)
            else:
                found = bool(loader.construct_document(node)) or found
    finally:
        loader.dispose()
    return found


def _plain(loader, root) -> bool:
    """Whether the safe constructor would build ``root`` without fail (and it is a non-scalar whose
    truth is that of its node's value): only such nodes, each checked, shared collections once."""
    if root.__class__ is ScalarNode:
        return False
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.__class__ is MappingNode and node.tag == _MAP:
            for key, value in node.value:
                if key.__class__ is not ScalarNode or not _scalar_ok(loader, key):   # also keeps out merge keys (<<)
                    return False
                if value.__class__ is not ScalarNode:
                    stack.append(value)
                elif value.tag != _STR and not _scalar_ok(loader, value):
                    return False
        elif node.__class__ is SequenceNode and node.tag == _SEQ:
            for item in node.value:
                if item.__class__ is not ScalarNode:
                    stack.append(item)
                elif item.tag != _STR and not _scalar_ok(loader, item):
                    return False
        else:
            return False
    return True


def _scalar_ok(loader, node) -> bool:
    tag = node.tag
    if tag == _STR or tag == _NULL:
        return True
    if tag == _BOOL:
        return node.value.lower() in _BOOLS
    build = _BUILD.get(tag)
    if build is None:
        return False
    try:
        build(loader, node)
    except Exception:  # refused: the whole document goes through the constructor, which says why
        return False
    return True
