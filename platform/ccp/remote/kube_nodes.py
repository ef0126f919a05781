"""The nodes of a real cluster through the Kubernetes API: cordon, the pods of a node, PDBs, evictions,
readiness, delete. `ccp upgrade` drains and upgrades through it, nodes/remove drains and deletes."""

from __future__ import annotations

from ccp.remote.kube_objects import LightkubeObjects


class LightkubeNodes(LightkubeObjects):
    def cordon(self, node: str, unschedulable: bool) -> None:
        from lightkube.resources.core_v1 import Node

        self._call(lambda: self.client.patch(Node, node, {"spec": {"unschedulable": unschedulable}}),
                   f"{'cordon' if unschedulable else 'uncordon'} {node}")

    def pods_on(self, node: str) -> list[dict]:
        from lightkube.resources.core_v1 import Pod

        return [p.to_dict() for p in self._call(lambda: list(self.client.list(Pod, namespace="*", fields={"spec.nodeName": node})),
                                                f"list the pods on {node}")]

    def leaving_namespaces(self) -> set[str]:
        from lightkube.resources.core_v1 import Namespace

        return {n.metadata.name for n in self._call(lambda: list(self.client.list(Namespace)), "list namespaces")
                if n.status is not None and n.status.phase == "Terminating"}

    def pdbs(self) -> list[dict]:
        from lightkube.resources.policy_v1 import PodDisruptionBudget

        return [b.to_dict() for b in self._call(lambda: list(self.client.list(PodDisruptionBudget, namespace="*")), "list PDBs")]

    def evict(self, namespace: str, name: str) -> str | None:
        from lightkube.core.exceptions import ApiError
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import Pod

        try:
            self.client.create(Pod.Eviction(metadata=ObjectMeta(name=name, namespace=namespace)), name, namespace=namespace)
            return None
        except ApiError as exc:
            if exc.status.code == 404 or "being terminated" in (exc.status.message or ""):
                return None            # already gone, or its namespace is being deleted
            if exc.status.code == 429:  # a PodDisruptionBudget says not now
                return exc.status.message or "disruption budget"
            from ccp.errors import KubernetesError

            raise KubernetesError(f"the Kubernetes API refused to evict {namespace}/{name}: {exc.status.message}",
                                  "check the kubeconfig's permissions (pods/eviction) and the API server's log") from None

    def pod_exists(self, namespace: str, name: str) -> bool:
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import Pod

        try:
            self.client.get(Pod, name, namespace=namespace)
            return True
        except ApiError as exc:
            if exc.status.code == 404:
                return False
            raise

    def cluster_uid(self) -> str:
        """Which cluster this is: the kube-system namespace's UID, made once by its first API server and
        never again (a cluster destroyed and installed anew under the same names has another)."""
        from lightkube.resources.core_v1 import Namespace

        if not getattr(self, "_uid", ""):
            self._uid = self._call(lambda: self.client.get(Namespace, "kube-system"), "read namespace kube-system").metadata.uid
        return self._uid

    def node_state(self, node: str) -> tuple[bool, str]:
        """(Ready, kubelet version) of a node."""
        from lightkube.resources.core_v1 import Node

        n = self._call(lambda: self.client.get(Node, node), f"read node {node}")
        ready = any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
        return ready, n.status.nodeInfo.kubeletVersion if n.status and n.status.nodeInfo else ""

    def node_names(self) -> list[str]:
        from lightkube.resources.core_v1 import Node

        return [n.metadata.name for n in self._call(lambda: list(self.client.list(Node)), "list nodes")]

    def delete_node(self, node: str) -> None:
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import Node

        try:
            self._call(lambda: self.client.delete(Node, node), f"delete node {node}", raise_404=True)
        except ApiError as exc:
            if exc.status.code != 404:   # gone already: what we wanted
                raise
