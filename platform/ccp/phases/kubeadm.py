"""kubeadm/init, kubeadm/join-control-plane, kubeadm/join-workers.

Each probes membership first (admin.conf on the first control plane, kubelet.conf on the others),
so a rerun joins only what is missing. kubeadm init is never retried blindly. Join secrets (token, CA
hash, certificate key) are made on the first control plane at join time, travel to the joining node
through the SSH channel's stdin and are substituted in /run (tmpfs): never on this machine's disk,
never on a command line, never in a log.
"""

from __future__ import annotations

import time

from ccp.cluster.facts import acting_first, api_endpoint, by_role, holding, initialized, wait_api
from ccp.cluster.hostwork import before_provisioning, new_machines, rendered
from ccp.cluster.security import control_plane_files, init_actions
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.errors import RemoteError

KUBEADM_DIR = "/etc/ccp/kubeadm"
SECRETS_REUSE = 600.0   # seconds one set of control-plane join secrets is used for (the token lives 30 min)
CA_HASH = ("openssl x509 -pubkey -in /etc/kubernetes/pki/ca.crt | openssl rsa -pubin -outform der 2>/dev/null"
           " | sha256sum | cut -d' ' -f1")
# awk, not envsubst (gettext may be missing) and not sed (its arguments would show the secrets in `ps`):
# awk reads them from its environment. The values are [a-z0-9.:] only, nothing gsub treats specially.
_SUBSTITUTE = ("umask 077; mkdir -p /run/ccp; awk '{{"
               "gsub(/\\$\\{{CCP_BOOTSTRAP_TOKEN\\}}/, ENVIRON[\"CCP_BOOTSTRAP_TOKEN\"]); "
               "gsub(/\\$\\{{CCP_CA_CERT_HASH\\}}/, ENVIRON[\"CCP_CA_CERT_HASH\"]); "
               "gsub(/\\$\\{{CCP_CERTIFICATE_KEY\\}}/, ENVIRON[\"CCP_CERTIFICATE_KEY\"]); print }}' {cfg} > /run/ccp/{name}.yaml; ")
JOIN = _SUBSTITUTE + "kubeadm join --config /run/ccp/{name}.yaml; rc=$?; rm -f /run/ccp/{name}.yaml; exit $rc"
# kubeadm refuses --certificate-key next to --config: the key goes into the config, filled in on the node.
# --skip-*-print: kubeadm would otherwise print its bootstrap token and the key into our log.
INIT = (_SUBSTITUTE + "kubeadm init --config /run/ccp/{name}.yaml --upload-certs --skip-token-print "
        "--skip-certificate-key-print; rc=$?; rm -f /run/ccp/{name}.yaml; exit $rc")


def patch_files(ctx: ClusterContext) -> dict[str, tuple[str, int]]:
    """kubernetes.kubeadm.patches: the directory's files, for the control planes (init and joins use them)."""
    from pathlib import Path

    from ccp.render import KUBEADM_PATCHES_DIR

    d = ctx.config.spec.kubernetes.kubeadm.patches
    if not d:
        return {}
    return {f"{KUBEADM_PATCHES_DIR}/{p.name}": (p.read_text(), 0o600) for p in sorted(Path(d).iterdir()) if p.is_file()}


class KubeadmInit(Phase):
    name = "kubeadm/init"
    layer = "cluster"
    summary = "kubeadm init on the first control plane, API endpoint on the VIP"

    def inputs(self, ctx: ClusterContext) -> dict:
        spec = ctx.spec_dump()["spec"]
        return {"first": by_role(ctx, inventory.ROLE_CP)[0], "kubernetes": spec["kubernetes"], "security": spec["security"]}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        first = by_role(ctx, inventory.ROLE_CP)[0]
        early = before_provisioning(ctx, "kubeadm init on", [first])
        if early is not None:
            return [*init_actions(ctx, first), *early]
        ssh = ctx.ssh()
        members = initialized(ctx)
        if not members:   # never init when any control plane holds the cluster (a replaced first one joins it)
            return [*init_actions(ctx, first), Action("kubeadm init", f"on {first}", "no control plane yet")]
        (t,) = ctx.targets(members[:1])
        answers = ssh.call(ssh.run(t, f"curl -ksf --max-time 5 https://{api_endpoint(ctx)}/readyz", check=False))
        return [] if answers.ok else [Action("wait for", f"the API at {api_endpoint(ctx)}",
                                             "initialised, but the API does not answer through the VIP")]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        first = by_role(ctx, inventory.ROLE_CP)[0]
        (t,) = ctx.targets([first])
        ssh = ctx.ssh()
        if all(a.verb == "wait for" for a in actions):   # never init twice: only wait for the API
            (t,) = ctx.targets([acting_first(ctx)])
            ssh.call(wait_api(ssh, t, api_endpoint(ctx)))
            return {"initialized": first, "hostKeysPinned": ctx.take_pins()}

        async def init():   # spec.security's files are in place before kubeadm starts the API server
            await ssh.upload(t, {f"{KUBEADM_DIR}/init.yaml": (rendered(ctx, f"kubeadm/{first}/init.yaml"), 0o600),
                                 **patch_files(ctx), **await control_plane_files(ctx, ssh)})
            key = (await ssh.run(t, "kubeadm certs certificate-key", sudo=True, secret_output=True)).stdout.strip()
            ctx.reporter.item(first, "kubeadm init (a few minutes)")
            await ssh.run(t, INIT.format(cfg=f"{KUBEADM_DIR}/init.yaml", name="init"), sudo=True,
                          env_secrets={"CCP_CERTIFICATE_KEY": key, "CCP_BOOTSTRAP_TOKEN": "", "CCP_CA_CERT_HASH": ""})
            return await wait_api(ssh, t, api_endpoint(ctx))

        ssh.call(init())
        ctx.reporter.item(first, "done")
        return {"initialized": first, "hostKeysPinned": ctx.take_pins()}


async def join_secrets(ssh, first, *, control_plane: bool) -> dict[str, str]:
    token = (await ssh.run(first, "kubeadm token create --ttl 30m", sudo=True, secret_output=True)).stdout.strip()
    ca_hash = "sha256:" + (await ssh.run(first, CA_HASH, sudo=True)).stdout.strip()
    secrets = {"CCP_BOOTSTRAP_TOKEN": token, "CCP_CA_CERT_HASH": ca_hash, "CCP_CERTIFICATE_KEY": ""}
    if control_plane:
        key = (await ssh.run(first, "kubeadm certs certificate-key", sudo=True, secret_output=True)).stdout.strip()
        await ssh.run(first, 'kubeadm init phase upload-certs --upload-certs --certificate-key "$CCP_CERTIFICATE_KEY"',
                      sudo=True, env_secrets={"CCP_CERTIFICATE_KEY": key})
        secrets["CCP_CERTIFICATE_KEY"] = key
    return secrets


async def join(ctx: ClusterContext, ssh, t, secrets: dict[str, str], security: dict | None = None) -> None:
    cfg = f"{KUBEADM_DIR}/join.yaml"
    patches = patch_files(ctx) if secrets.get("CCP_CERTIFICATE_KEY") else {}   # control planes only
    await ssh.upload(t, {cfg: (rendered(ctx, f"kubeadm/{t.name}/join.yaml"), 0o600), **patches, **(security or {})})
    ctx.reporter.item(t.name, "joining")
    await ssh.run(t, JOIN.format(cfg=cfg, name="join"), sudo=True, env_secrets=secrets)
    ctx.reporter.item(t.name, "done")


class _Join(Phase):
    role: str
    control_plane: bool

    def targets(self, ctx):
        names = by_role(ctx, self.role)
        return names[1:] if self.control_plane else names

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"nodes": self.targets(ctx)}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        names = self.targets(ctx)
        early = before_provisioning(ctx, "join", names) if names else None
        if early is not None or not ctx.provisioned():
            return early or []
        ssh = ctx.ssh()
        if self.control_plane:
            # Every control plane but the one the cluster runs through: the first one too, when it was
            # replaced and another holds the cluster now (before init, none does, and the first is init's).
            names = [n for n in by_role(ctx, self.role) if n != acting_first(ctx)]
        names, later = new_machines(ctx, names, "join", "node {}")
        if not names:
            return later
        members = ssh.call(holding(ssh, ctx.targets(names), "/etc/kubernetes/kubelet.conf"))
        actions = later + [Action("join", f"node {n}", "as a control plane" if self.control_plane else "as a worker")
                           for n in names if not members[n]]
        if self.control_plane:
            half = half_joined(ssh, ctx.targets([n for n in names if members[n]]))
            actions += [Action("join", f"node {n}", f"as a control plane again: {HALF_JOINED}") for n in half]
            actions += _unready_api_servers(ctx, ssh, [acting_first(ctx)] + [n for n in names if members[n] and n not in half])
        return actions


LOCAL_READYZ = "curl -ksf --max-time 3 https://127.0.0.1:6443/readyz"
ETCD_MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
# A control plane to join that holds kubeadm's files already: a join stopped half-way (real nodes: ccp killed
# after control-plane-prepare wrote the static pod manifests, the rerun's join refused them). Not a member:
# nothing of the cluster is lost by the reset.
RESET_LEFTOVERS = ("if [ -e /etc/kubernetes/kubelet.conf ] || ls /etc/kubernetes/manifests/*.yaml >/dev/null 2>&1; "
                   "then kubeadm reset -f; fi")
HALF_JOINED = "its last join stopped half-way (a kubelet, no etcd member): kubeadm reset first"


def half_joined(ssh, targets) -> list[str]:
    """Control planes whose `kubeadm join` was stopped (ccp killed, the machine gone) after kubelet-start but
    before control-plane-join: they hold kubelet.conf and an API server manifest whose local etcd never came,
    so that API server never answers. Real nodes: a resumed install waited on it for minutes, then failed.
    They are reset and joined again (kubeadm refuses a join over kubelet.conf)."""
    if not targets:
        return []
    found = ssh.call(holding(ssh, targets, ETCD_MANIFEST))
    return [name for name, has in found.items() if not has]


def _unready_api_servers(ctx: ClusterContext, ssh, names: list[str]) -> list[Action]:
    """A member whose API server does not answer its own /readyz (its machine was just started again): NGINX
    sends it requests as soon as its port opens, and they fail until it is ready, so the install waits."""
    async def probe(t):
        return (await ssh.run(t, LOCAL_READYZ, check=False)).ok
    fan = ssh.call(ssh.each(ctx.targets(names), probe))
    fan.raise_if_failed("probing the API servers")
    return [Action("wait for", f"the API server on {n}", "it does not answer /readyz yet (just started?)")
            for n in names if not fan.results[n]]


class JoinControlPlanes(_Join):
    name = "kubeadm/join-control-plane"
    layer = "cluster"
    summary = "join the other control planes, one at a time (etcd keeps quorum)"
    role, control_plane = inventory.ROLE_CP, True

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        ssh = ctx.ssh()
        (first,) = ctx.targets([acting_first(ctx)])
        joined, secrets, made, security = [], {}, 0.0, None
        waits = [a.target.removeprefix("the API server on ") for a in actions if a.verb == "wait for"]
        for t in ctx.targets(waits):
            ssh.call(wait_api(ssh, t, "127.0.0.1:6443", attempts=180, after=f"{t.name} started again",
                              resolution=f"on {t.name}: `crictl ps -a` and the kube-apiserver and etcd logs "
                                         "(`crictl logs`), and `journalctl -u kubelet`; then resume"))
        for t in ctx.targets([a.target.removeprefix("node ") for a in actions if a.verb == "join"]):
            # what a join stopped half-way left (manifests, kubelet.conf) makes kubeadm's preflight refuse
            ssh.call(ssh.run(t, RESET_LEFTOVERS, sudo=True, timeout=300))
            # One token and certificate key serve the joins in a row (making them takes seconds); they are
            # made anew well before their 30-minute token lifetime runs out.
            if time.monotonic() - made > SECRETS_REUSE:
                secrets, made = ssh.call(join_secrets(ssh, first, control_plane=True)), time.monotonic()
            if security is None:   # the running cluster's encryption configuration, the same for every join
                security = ssh.call(control_plane_files(ctx, ssh, first))
            try:
                ssh.call(join(ctx, ssh, t, secrets, security))
            except RemoteError as exc:
                exc.resolution = (f"{t.name} did not join; the control planes joined so far ({', '.join(joined) or 'none'}) "
                                  "are kept. Look at kubeadm's output above, then resume")
                raise
            joined.append(t.name)
        return {"joined": joined, "hostKeysPinned": ctx.take_pins()}


class JoinWorkers(_Join):
    name = "kubeadm/join-workers"
    layer = "cluster"
    summary = "join the workers, in parallel batches"
    role, control_plane = inventory.ROLE_WORKER, False

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        ssh = ctx.ssh()
        (first,) = ctx.targets([acting_first(ctx)])
        todo = ctx.targets([a.target.removeprefix("node ") for a in actions])
        secrets = ssh.call(join_secrets(ssh, first, control_plane=False))
        fan = ssh.call(ssh.each(todo, lambda t: join(ctx, ssh, t, secrets), limit=ctx.config.spec.ssh.parallelism))
        fan.raise_if_failed("joining workers")
        return {"joined": sorted(fan.results), "hostKeysPinned": ctx.take_pins()}
