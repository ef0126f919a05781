"""Secrets in cluster.yaml: a literal, {fromEnv: NAME} or {fromFile: PATH}, resolved while the config
is validated and registered with ccp.redact at once. A resolved value never shows in repr, str or a
dump (which see only its source); ``reveal()`` gives it on purpose."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationInfo, WrapValidator

from ccp import redact


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=False)


class FromEnv(Strict):
    fromEnv: str = Field(description="Name of the environment variable holding the secret.",
                         pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class FromFile(Strict):
    fromFile: str = Field(description="Path of a file holding the secret (relative to cluster.yaml; ~ expands).")


class Secret:
    """A resolved secret. Its repr and str never show the value; ``reveal()`` does, on purpose.

    A command that only reads local state (``ccp phases``) loads the config with secrets deferred:
    a secret that cannot be resolved then fails only when something actually needs its value."""

    __slots__ = ("source", "_value", "_missing")

    def __init__(self, source: str, value: str | None, missing: str = ""):
        self.source = source
        self._value = value
        self._missing = missing
        redact.register(value)

    def reveal(self) -> str:
        if self._value is None:
            from ccp.errors import ConfigError

            what, _, todo = self._missing.partition("||")
            raise ConfigError(f"the secret from {self.source} is needed now: {what}", todo)
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


def _resolve_secret(value: Any, handler, info: ValidationInfo) -> Secret:
    try:
        return _resolve(value, handler, info)
    except _Unresolved as exc:
        if (info.context or {}).get("defer_secrets"):
            return Secret(exc.source, None, str(exc))
        raise ValueError(str(exc)) from None


class _Unresolved(Exception):
    def __init__(self, source: str, message: str):
        super().__init__(message)
        self.source = source


def _resolve(value: Any, handler, info: ValidationInfo) -> Secret:
    if isinstance(value, Secret):
        return value
    try:
        parsed = handler(value)
    except Exception:
        raise ValueError("expected a string, {fromEnv: NAME} or {fromFile: PATH}||"
                         "write e.g. password: {fromEnv: VSPHERE_PASSWORD}") from None
    ctx = info.context or {}
    if isinstance(parsed, str):  # accepted; the loader warns about literal secrets
        if len(parsed) < 4:
            raise ValueError("a secret must be at least 4 characters long")
        return Secret("literal", parsed)
    if isinstance(parsed, FromEnv):
        env = ctx.get("env", os.environ)
        if parsed.fromEnv not in env:
            raise _Unresolved(f"env:{parsed.fromEnv}", f"environment variable {parsed.fromEnv} is not set||"
                             f"export {parsed.fromEnv}=... before running ccp, or use {{fromFile: PATH}}")
        val = env[parsed.fromEnv]
        if len(val) < 4:
            raise ValueError(f"environment variable {parsed.fromEnv} holds fewer than 4 characters")
        return Secret(f"env:{parsed.fromEnv}", val)
    path = Path(os.path.expanduser(parsed.fromFile))
    if not path.is_absolute():
        path = Path(ctx.get("base_dir", ".")) / path
    try:
        val = path.read_text().rstrip("\r\n")
    except FileNotFoundError:
        raise _Unresolved(f"file:{path}", f"secret file {path} does not exist||create it or correct the path") from None
    except OSError as exc:
        raise ValueError(f"secret file {path} cannot be read: {exc.strerror}") from None
    if len(val) < 4:
        raise ValueError(f"secret file {path} holds fewer than 4 characters")
    return Secret(f"file:{path}", val)


SecretValue = Annotated[
    Union[str, FromEnv, FromFile],
    WrapValidator(_resolve_secret),
    PlainSerializer(lambda s: s.source, return_type=str),  # fingerprints and dumps see the source only
]
