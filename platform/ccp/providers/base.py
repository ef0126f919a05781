"""The Provider interface every way of getting machines implements (the factory: factory.py)."""

from __future__ import annotations

from typing import Protocol

from ccp.engine.phase import Action

OWNER_KEY = "guestinfo.ccp.cluster"   # extraConfig set in the same call that creates the VM
ROLE_KEY = "guestinfo.ccp.role"


class Provider(Protocol):
    name: str

    def plan(self) -> list[Action]:
        """Probe what exists and say what apply would do. Changes nothing."""

    def apply(self, actions: list[Action]) -> dict[str, dict]:
        """Make the machines exist; -> {node name: {address, moid, uuid, ...}}."""

    def remove_plan(self, names: list[str]) -> list[Action]:
        """Machines of nodes gone from cluster.yaml (already out of the cluster) that apply would delete."""

    def remove(self, names: list[str]) -> list[str]:
        """Delete those machines; -> the names deleted."""

    def replace_plan(self, names: list[str]) -> list[Action]:
        """For `ccp node replace`: what makes these machines new (static hosts are reused as they are)."""

    def replace(self, names: list[str]) -> list[str]:
        ...

    def destroy_plan(self) -> list[Action]:
        """What destroy would remove: only machines this cluster owns."""

    def destroy(self, actions: list[Action]) -> dict:
        ...

    def close(self) -> None:
        ...
