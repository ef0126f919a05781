"""The support bundle: a tar.gz of findings, cluster state, logs and ccp's own journal, with every
secret redacted on the way in. Secrets' data is never collected at all; what remains is scrubbed of
registered secrets (the vCenter password, join tokens ccp made) and of anything shaped like a
credential: private keys, bearer headers, token/password/key assignments, kubeconfig credentials,
kubeadm bootstrap tokens, and the values of environment variables named like secrets."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from pathlib import Path

from ccp import redact

MASK = redact.MASK
_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END \1PRIVATE KEY-----|\Z)", re.S)
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9\-._~+/=:]{6,}")
# key = value, key: value, "key": "value", also inside JSON that was itself JSON-escaped (\"key\": \"value\")
_ASSIGN = re.compile(
    r"(?i)([\\\"']*[A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|client-key-data|client-certificate-data|credential)[\\\"']*\s*[:=]\s*[\\\"']*)([^\s\\\"',;}{\]]{2,})")
_BOOTSTRAP = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")
_SECRET_NAME = re.compile(r"(?i)pass|secret|token|key|credential|auth")


def redact_text(text: str) -> str:
    text = redact.scrub(text)
    text = _PRIVATE_KEY.sub(lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY----- {MASK} -----END {m.group(1)}PRIVATE KEY-----", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _ASSIGN.sub(lambda m: m.group(1) + MASK, text)
    return _BOOTSTRAP.sub(MASK, text)


def redact_object(obj):
    """Structure-aware pass for API objects: env values of secret-named variables, and managedFields
    (noise) and last-applied annotations (may copy anything) dropped."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "managedFields":
                continue
            if k == "annotations" and isinstance(v, dict):
                v = {a: b for a, b in v.items() if a != "kubectl.kubernetes.io/last-applied-configuration"}
            out[k] = redact_object(v)
        if "name" in out and "value" in out and isinstance(out.get("name"), str) and _SECRET_NAME.search(out["name"]):
            out["value"] = MASK
        return out
    if isinstance(obj, list):
        return [redact_object(x) for x in obj]
    return obj


def as_json(obj) -> str:
    return json.dumps(redact_object(obj), indent=1, default=str)


def writable(path: Path) -> None:
    """A ConfigError, before anything is collected, when the bundle cannot be written at ``path`` (before: --bundle
    in a directory that cannot be made ran the whole diagnosis, then ended in an internal error, "a ccp bug")."""
    from ccp.errors import ConfigError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = path.parent.is_dir() and os.access(path.parent, os.W_OK) and not path.is_dir()
        why = "" if ok else "not a writable file there"
    except OSError as exc:
        why = exc.strerror or str(exc)
    if why:
        raise ConfigError(f"the support bundle cannot be written to {path}: {why}",
                          "give --bundle a file in a directory you may write to, e.g. ./support.tar.gz")


def write(path: Path, files: dict[str, str]) -> dict:
    """Write ``files`` (relative name -> text), each redacted, plus manifest.json; -> the manifest."""
    entries, blobs = [], {}
    for name in sorted(files):
        data = redact_text(files[name]).encode()
        blobs[name] = data
        entries.append({"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": entries,
                "redaction": "Secrets are never collected; registered secrets, private keys, bearer tokens, "
                             "password/token/key assignments, kubeconfig credentials and bootstrap tokens are masked as " + MASK}
    blobs["manifest.json"] = json.dumps(manifest, indent=1).encode()
    root = path.name.removesuffix(".tar.gz").removesuffix(".tgz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, data in blobs.items():
                info = tarfile.TarInfo(f"{root}/{name}")
                info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
                tar.addfile(info, io.BytesIO(data))
    except OSError as exc:
        from ccp.errors import ConfigError

        raise ConfigError(f"the support bundle could not be written to {path}: {exc.strerror or exc}",
                          "give --bundle a file in a directory you may write to, with room for it") from None
    return manifest
