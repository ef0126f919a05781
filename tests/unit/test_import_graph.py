"""House rule 11, checked: imports go one way, down the layers, and none go round in a cycle.

Every module under platform/ccp is parsed with ``ast`` (not imported): an import at the top and one
inside a function count the same, because a function-level import that points up a layer is still a
dependency — it only fails later, at run time, and it kept an 11-module cycle alive before this test.
An import names a module; the parent packages Python runs first are not edges (a package whose
``__init__`` imports its own modules would otherwise always be a cycle). Imports under
``if TYPE_CHECKING:`` count too: there are none, and a type is a dependency all the same.

The rules (LAYERS below is the one place the order is written down):
  - every module belongs to exactly one layer; a new module fails here until it is placed;
  - a module imports its own layer and the layers below it, never one above;
  - no cycle at all, within a layer or across layers;
  - ccp.workflows is the only importer of ccp.phases.* (so a phase never imports another phase: what
    phases share lives below them, in ccp.cluster and further down);
  - nobody imports the command line but the command line itself and ``python -m ccp`` (the top layer).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "platform" / "ccp"

# Bottom first. A name is a module, or a package together with everything under it ("ccp" alone is
# only the package's __init__: its version). House rule 11's "config → engine → remote/providers →
# cluster facts → phases → workflows → cli", refined to where each module has to sit:
#   base → config → engine → remote → render → providers → context → cluster facts → day-2 → phases
#   → workflows → cli
LAYERS = [
    # Leaves: the error families, secret scrubbing, the files shipped inside the package.
    ("base", ["ccp", "ccp.errors", "ccp.redact", "ccp.resources", "ccp.yaml_check"]),
    # cluster.yaml: model, loading, bill of materials, inventory. Knows nothing of how it is used.
    ("config", ["ccp.config"]),
    # The generic phase engine (knows nothing of Kubernetes), the console and progress reporter a run
    # reports through (ui), and the printing of the engine's plans (plan_view).
    ("engine", ["ccp.engine", "ccp.ui", "ccp.plan_view"]),
    # How ccp reaches things: SSH, the Kubernetes API (objects, nodes, the Eviction-API drain), etcdctl
    # inside etcd's container.
    ("remote", ["ccp.remote"]),
    # What ccp makes from the config: the one jinja environment (templating), rendered files and the
    # add-ons package (discover, render, and apply through the Kubernetes API — the add-ons phase and
    # `ccp addons apply` share it). Below the providers,
    # because they render Terraform and cloud-init; above remote for the etcdctl flags the scheduled
    # backup script is rendered with.
    ("render", ["ccp.templating", "ccp.render", "ccp.render_security", "ccp.addons"]),
    # Where machines come from (vSphere through Terraform or pyvmomi, static hosts, local machines).
    # Handed the run's context, never importing it nor anything above: what they need of the journal
    # (the machines the last provision recorded) they read from the context they are given.
    ("providers", ["ccp.providers"]),
    # The run's ClusterContext: config, state directory, journal outputs, and the provider and SSH
    # sessions it makes (so it sits above the providers).
    ("context", ["ccp.context"]),
    # Cluster facts, read through the context: roles, the API endpoint, the kubeconfig path, the nodes
    # gone from the config, which control planes are initialised and the one ccp acts through, the
    # Kubernetes clients of a run; and the helpers the host phases share.
    ("cluster facts", ["ccp.cluster"]),
    # Day-2 capabilities, each a core under its command: they read cluster facts (backup: the acting
    # control plane; diagnose: the endpoint), and phases reuse them (validation, restore, the bundle, the
    # upgrade's preflight and nodes: its phases are in phases/upgrade.py, their order in workflows.py).
    ("day-2", ["ccp.backup", "ccp.bundle", "ccp.diagnose", "ccp.validation", "ccp.appliance", "ccp.upgrade"]),
    ("phases", ["ccp.phases"]),
    # The phase orders, `ccp upgrade`'s among them.
    ("workflows", ["ccp.workflows"]),
    # The command line, and `python -m ccp`: nothing else imports it.
    ("cli", ["ccp.cli", "ccp.__main__"]),
]
PHASES, PHASE_IMPORTER = "ccp.phases", "ccp.workflows"


def module_sources(root: Path = PACKAGE) -> dict[str, tuple[str, bool]]:
    """{dotted module name: (source, is a package)} for every .py file under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path.read_text(), package)
    return out


def imports(sources: dict[str, tuple[str, bool]]) -> dict[str, dict[str, int]]:
    """{module: {ccp module it imports: first line}}, from every import statement anywhere in it."""
    known = set(sources)

    def nearest(name: str) -> str | None:   # `import ccp.a.b.C`-style names end at the module
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for module, (text, package) in sources.items():
        edges = graph.setdefault(module, {})
        for node in ast.walk(ast.parse(text, module)):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:   # relative: from the module's own package, up level-1 more
                    here = module.split(".") if package else module.split(".")[:-1]
                    here = here[:len(here) - node.level + 1]
                    base = ".".join(here + ([node.module] if node.module else []))
                # `from pkg import name`: the module pkg.name if there is one, else pkg itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            for t in targets:
                if t == "ccp" or t.startswith("ccp."):
                    target = nearest(t)
                    if target and target != module:
                        edges.setdefault(target, node.lineno)
    return graph


def layer_of(module: str) -> int | None:
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            if module == name or (name != "ccp" and module.startswith(name + ".")):
                return i
    return None


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def problems(graph: dict[str, dict[str, int]]) -> list[str]:
    """Every breach of the rules, one line each (empty: the graph is as the house rule says)."""
    out = []
    for module in sorted(graph):
        if layer_of(module) is None:
            out.append(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")
    for module, edges in sorted(graph.items()):
        mine = layer_of(module)
        for target, line in sorted(edges.items()):
            theirs = layer_of(target)
            where = f"{module}:{line} imports {target}"
            if mine is not None and theirs is not None and theirs > mine:
                out.append(f"{where}: up a layer ({LAYERS[mine][0]} -> {LAYERS[theirs][0]})")
            if (target == PHASES or target.startswith(PHASES + ".")) and module != PHASE_IMPORTER:
                out.append(f"{where}: only {PHASE_IMPORTER} imports phases (shared helpers go below them)")
    for component in cycles(graph):
        out.append(f"import cycle of {len(component)} modules: {', '.join(component)}")
    return out


def planted(**modules: str) -> list[str]:
    """The problems that involve ``modules`` (name with '__' for '.': source), planted in the real package."""
    sources = module_sources()
    for name, text in modules.items():
        sources[name.replace("__", ".")] = (text, False)
    return [p for p in problems(imports(sources)) if ".planted" in p]


def test_the_package_follows_the_layers_with_no_cycle():
    found = problems(imports(module_sources()))
    assert not found, "\n".join(found)


def test_every_layer_entry_names_a_module_that_exists():
    known = set(module_sources())
    stale = [name for _, names in LAYERS for name in names
             if name not in known and not any(m.startswith(name + ".") for m in known)]
    assert stale == []


def test_an_import_inside_a_function_pointing_up_is_reported():
    assert planted(ccp__remote__planted="def f():\n    from ccp.phases.kubeadm import KubeadmInit\n") == [
        "ccp.remote.planted:2 imports ccp.phases.kubeadm: up a layer (remote -> phases)",
        "ccp.remote.planted:2 imports ccp.phases.kubeadm: only ccp.workflows imports phases (shared helpers go below them)",
    ]


def test_a_planted_cycle_is_reported_even_within_one_layer():
    assert planted(ccp__providers__planted_a="from ccp.providers import planted_b\n",
                   ccp__providers__planted_b="def f():\n    import ccp.providers.planted_a\n") == [
        "import cycle of 2 modules: ccp.providers.planted_a, ccp.providers.planted_b"]


def test_a_phase_importing_another_phase_and_the_cli_imported_from_below_are_reported():
    assert planted(ccp__phases__planted="from ccp.phases.cni import Cni\n",
                   ccp__cli__planted="from ccp.phases import validate\n",
                   ccp__diagnose__planted="from ccp.cli.common import load_config\n") == [
        "ccp.cli.planted:1 imports ccp.phases.validate: only ccp.workflows imports phases (shared helpers go below them)",
        "ccp.diagnose.planted:1 imports ccp.cli.common: up a layer (day-2 -> cli)",
        "ccp.phases.planted:1 imports ccp.phases.cni: only ccp.workflows imports phases (shared helpers go below them)",
    ]


def test_a_module_in_no_layer_and_a_relative_import_are_reported():
    assert planted(ccp__planted="from .phases import cni\n") == [
        f"ccp.planted is in no layer: add it to LAYERS in {Path(__file__).name}",
        "ccp.planted:1 imports ccp.phases.cni: only ccp.workflows imports phases (shared helpers go below them)"]
