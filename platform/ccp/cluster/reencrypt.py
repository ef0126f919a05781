"""Every object of the encrypted resources read and written again, so etcd stores it as the API servers' current
configuration says (Kubernetes' documented way: `kubectl get secrets -A -o json | kubectl replace -f -`), run on a
control plane with its admin.conf: the objects go from one kubectl to the other through a pipe on that node, never
through ccp. An object changed or deleted meanwhile (Conflict, NotFound) was written by its own writer through an
API server that already writes the new way, so it needs nothing more.

Then etcd itself is asked how many values still carry the prefix of a provider about to be dropped
(k8s:enc:secretbox:v1:ccp-1:), over the whole /registry/ keyspace: only 0 lets a key go. The count is all that
leaves the node."""

from __future__ import annotations

import shlex

from ccp.cluster.apiserver import KUBECTL
from ccp.errors import KubernetesError, RemoteError
from ccp.remote.etcd import CERTS, ETCD

MARK = "ccp-rewrite"
# (Conflict), (NotFound): changed or deleted meanwhile; "no objects passed": a resource with no object at all
_MEANWHILE = '-e "(Conflict)" -e "(NotFound)"'
_OTHER = f'grep -v -F {_MEANWHILE} -e "no objects passed to replace" "$e"'
_REWRITE = f"""e=$(mktemp); g=$(mktemp); trap 'rm -f "$e" "$g"' EXIT
one() {{
  n=$({{ {{kubectl}} get "$1" --all-namespaces -o json; echo $? > "$g"; }} | {{kubectl}} replace -f - -o name 2>"$e" | wc -l)
  if [ "$(cat "$g")" != 0 ]; then echo "{MARK} $1 0 0 1"; echo "$1: kubectl get failed" >&2; return 0; fi
  c=$(grep -c -F {_MEANWHILE} "$e" || true)
  b=$({_OTHER} | grep -c . || true)
  echo "{MARK} $1 $n $c $b"
  {_OTHER} | tail -n 5 >&2 || true
}}
"""


def rewrite_script(resources: list[str], kubectl: str = KUBECTL) -> str:
    """Prints "ccp-rewrite <resource> <replaced> <changed meanwhile> <failed>" per resource; the failures' last
    lines on stderr. ``kubectl``: how to reach the API (a control plane's admin.conf)."""
    return _REWRITE.replace("{kubectl}", kubectl) + "\n".join(f"one {shlex.quote(r)}" for r in resources) + "\n"


def parse_counts(stdout: str) -> dict[str, tuple[int, int, int]]:
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == MARK:
            out[parts[1]] = tuple(int(x) for x in parts[2:])
    return out


def prefixes(dropped: list[str]) -> list[str]:
    """The etcd value prefixes of providers ("secretbox:ccp-1") as the API server writes them."""
    return [f"k8s:enc:{p.split(':', 1)[0]}:v1:{p.split(':', 1)[1]}:" for p in dropped if ":" in p]


def count_script(dropped: list[str], etcdctl: str = f"{ETCD} etcdctl {CERTS}") -> str:
    """Prints how many values under /registry/ start with a dropped provider's prefix (each value is printed
    on lines of its own; its prefix at the start of one)."""
    patterns = " ".join(f"-e {shlex.quote(p)}" for p in prefixes(dropped))
    return (f's=$(mktemp); n=$({{ {etcdctl} get /registry/ --prefix --print-value-only; echo $? > "$s"; }} '
            f'| grep -a -c -F {patterns} || true); rc=$(cat "$s"); rm -f "$s"; '
            f'[ "$rc" = 0 ] || {{ echo "etcdctl get exited $rc" >&2; exit 1; }}; echo "ccp-left $n"')


def rewrite(ssh, t, resources: list[str], dropped: list[str], say=lambda text: None) -> dict:
    """Rewrite ``resources`` through ``t``, then check that nothing is stored with ``dropped`` (synchronous)."""
    counts = {}
    if resources:
        say(f"{t.name}: rewriting every {', '.join(resources)} object")
        r = ssh.call(ssh.run(t, rewrite_script(resources), sudo=True, check=False, timeout=3600))
        counts = parse_counts(r.stdout)
        failed = {res: c[2] for res, c in counts.items() if c[2]}
        if not r.ok or failed or set(counts) != set(resources):
            raise KubernetesError(f"rewriting {', '.join(failed) or ', '.join(resources)} through {t.name} failed "
                                  f"({sum(failed.values())} objects)" if failed else
                                  f"rewriting {', '.join(resources)} through {t.name} failed (exit {r.exit_status})",
                                  "the old key stays until every object is rewritten: fix what the lines below say, "
                                  "then rerun to rewrite again", (r.stderr or "").splitlines()[-5:])
    left = 0
    if dropped:
        say(f"{t.name}: counting what etcd still stores with {', '.join(dropped)}")
        r = ssh.call(ssh.run(t, count_script(dropped), sudo=True, check=False, timeout=900))
        found = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("ccp-left ")]
        if not r.ok or not found or not found[0].isdigit():
            raise RemoteError(f"{t.name}: etcd could not be read to check the rewrite (exit {r.exit_status})",
                              "check that etcd runs on it; nothing was dropped; then rerun",
                              (r.stderr or r.stdout).splitlines()[-5:])
        left = int(found[0])
        if left:
            raise KubernetesError(f"{left} object(s) in etcd are still stored with {', '.join(dropped)} after the rewrite",
                                  "nothing was dropped: rerun to rewrite them again (an object that failed to be "
                                  "written is named in the API server's log)")
    return {"rewritten": {r: c[0] for r, c in counts.items()}, "changedMeanwhile": sum(c[1] for c in counts.values()),
            "leftWithDropped": left}
