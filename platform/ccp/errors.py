"""One error type for everything a user can cause, with an exit code per family.

Every CcpError prints as one line of what went wrong, one line of what to do (``resolution``)
and optional ``details`` lines (one per config mistake, say). The CLI turns ``code`` into the
process exit status; README.md has the table.
"""

from __future__ import annotations

EXIT_CONFIG = 2
EXIT_PREFLIGHT = 3
EXIT_INFRASTRUCTURE = 4
EXIT_REMOTE = 5
EXIT_KUBERNETES = 6
EXIT_ADDON = 7
EXIT_VALIDATION = 8
EXIT_DIAGNOSE = 9
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class CcpError(Exception):
    code = EXIT_INTERNAL
    family = "internal"

    def __init__(self, message: str, resolution: str = "", details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.resolution = resolution
        self.details = list(details or [])


class ConfigError(CcpError):
    code, family = EXIT_CONFIG, "config"


class PreflightError(CcpError):
    code, family = EXIT_PREFLIGHT, "preflight"


class InfrastructureError(CcpError):
    code, family = EXIT_INFRASTRUCTURE, "infrastructure"


class RemoteError(CcpError):
    code, family = EXIT_REMOTE, "remote host"


class KubernetesError(CcpError):
    code, family = EXIT_KUBERNETES, "kubernetes"


class AddonError(CcpError):
    code, family = EXIT_ADDON, "add-on"


class ValidationFailed(CcpError):
    code, family = EXIT_VALIDATION, "validation"


class DiagnoseFailed(CcpError):
    code, family = EXIT_DIAGNOSE, "diagnose"


class InternalError(CcpError):
    code, family = EXIT_INTERNAL, "internal"


class Interrupted(CcpError):
    """Ctrl-C. Raised by ccp itself (not left as KeyboardInterrupt), so the command line prints what
    was interrupted and how to continue instead of exiting silently."""

    code, family = EXIT_INTERRUPTED, "interrupted"


FAMILIES: list[type[CcpError]] = [
    ConfigError, PreflightError, InfrastructureError, RemoteError,
    KubernetesError, AddonError, ValidationFailed, DiagnoseFailed, InternalError,
]
