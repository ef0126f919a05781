"""nodes/remove against a real API server: a node the last provision recorded and cluster.yaml no
longer lists is cordoned, drained and deleted for real, and the cluster's other nodes are untouched.

The node is a Node object registered through the API (a second kubelet is more than the single-node
lab has), so its kubeadm reset over SSH finds nobody to answer: that is noted, and the removal goes on
as it would for a dead machine."""

from __future__ import annotations

import shutil
import uuid

import pytest

from tests.conftest import example_data, write_config
from tests.ssh.servers import free_port

pytestmark = pytest.mark.e2e


def test_a_node_gone_from_the_config_is_drained_and_deleted_for_real(real_cluster, tmp_path):
    import asyncssh
    from lightkube import Client, KubeConfig
    from lightkube.models.core_v1 import NodeSpec
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Node

    from ccp import ui
    from ccp.config.load import load
    from ccp.context import ClusterContext
    from ccp.phases.nodes_remove import RemoveNodes

    client = Client(KubeConfig.from_file(str(real_cluster.kubeconfig)))
    others = sorted(n.metadata.name for n in client.list(Node))
    leaving = f"ccp-e2e-leaving-{uuid.uuid4().hex[:6]}"
    client.create(Node(metadata=ObjectMeta(name=leaving, labels={"ccp.io/e2e": "scale"}), spec=NodeSpec()))
    try:
        key = asyncssh.generate_private_key("ssh-ed25519")
        (tmp_path / "home" / ".ssh" / "id_ed25519").write_bytes(key.export_private_key())
        data = example_data()
        data["spec"]["ssh"]["port"] = free_port()         # nothing listens: the machine is "dead"
        state = tmp_path / "state"
        state.mkdir()
        shutil.copy(real_cluster.kubeconfig, state / "kubeconfig")
        ctx = ClusterContext(state_dir=state, reporter=ui.Reporter(), loaded=load(write_config(tmp_path / "c.yaml", data)))
        ctx.outputs["provision"] = {"nodes": {leaving: {"role": "worker", "address": "127.0.0.1"}}}
        phase = RemoveNodes()
        try:
            actions = phase.plan(ctx)
            assert [(a.verb, a.target) for a in actions] == [("drain", f"node {leaving}"), ("delete", f"node {leaving}")]
            out = phase.apply(ctx, actions)
            assert out == {"removed": [leaving], "resetSkipped": [leaving]}
            assert phase.plan(ctx) == [], "a rerun finds nothing left to do"
        finally:
            ctx.close()
        names = sorted(n.metadata.name for n in client.list(Node))
        assert leaving not in names and names == others
        assert all(not (n.spec.unschedulable or False) for n in client.list(Node)), "no other node was cordoned"
    finally:
        try:
            client.delete(Node, leaving)
        except Exception:
            pass
