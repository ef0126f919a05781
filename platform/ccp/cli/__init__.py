"""The `ccp` command line. Thin: each command parses options, calls one core function, prints.

Nothing heavy is imported here (no pydantic, jinja2, pyvmomi, asyncssh, lightkube): command bodies
import what they need, so `ccp --help` starts fast. This module and the command modules (*_cmd.py) do
without `from __future__ import annotations`: typer reads every command's signature at each start, and
string annotations would make it compile and evaluate each one (about half of that time).
"""

import os
import sys

import typer

from ccp.cli.apps import app

# Register the commands (each module is small and imports its heavy parts lazily).
from ccp.cli import (  # noqa: F401
    addons_cluster_cmd, addons_cmd, appliance_cmd, backup_cmd, bundle_cmd, certs_cmd, certs_renew_cmd, config_cmd, destroy_cmd, diagnose_cmd, images_cmd, install_cmd, node_cmd, phases_cmd, plan_cmd,
    preflight_cmd, render_cmd, restore_cmd, secrets_cmd, upgrade_cmd, validate_cmd, version_cmd)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(sys.argv[1:] if argv is None else argv))


INTERRUPTED = "[yellow]interrupted[/] — nothing was rolled back; rerun the same command to continue"


def run(args: list[str]) -> int:
    """Run ccp with ``args`` and return the exit code; never raises for a user's mistake."""
    from ccp.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, CcpError

    debug = "--debug" in args or os.environ.get("CCP_DEBUG") == "1"
    try:
        from ccp.cli import coercion

        command = typer.main.get_command(app)
        coercion.install(command)   # option values without pydantic: a read command starts ~100 ms sooner
        rv = command.main(args=args, prog_name="ccp", standalone_mode=False)
        if rv == EXIT_INTERRUPTED:   # typer turns a Ctrl-C inside a command body into this return value
            from ccp import ui

            ui.err().print(INTERRUPTED)
        return rv if isinstance(rv, int) else 0
    except typer.Exit as exc:
        if exc.exit_code == EXIT_INTERRUPTED:   # typer's answer to a Ctrl-C outside a workflow run
            from ccp import ui

            ui.err().print(INTERRUPTED)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):   # Ctrl-C (also at a prompt) or end of input at a prompt
        from ccp import ui

        ui.err().print(INTERRUPTED)
        return EXIT_INTERRUPTED
    except typer.TyperException as exc:   # a command-line mistake: unknown option, bad value
        from ccp import ui

        if callable(getattr(exc, "show", None)):
            exc.show()
        else:
            ui.err().print(f"error: {ui.escape(exc.format_message())}")
        return getattr(exc, "exit_code", 2)
    except CcpError as exc:
        from ccp import ui

        if debug:
            _traceback()
        _log_error(exc)
        ui.print_error(exc, getattr(exc, "log_file", None))
        return exc.code
    except Exception as exc:
        from ccp import redact, ui

        if debug:   # a bug: say so, no traceback unless asked
            _traceback()
        _log_error(exc)
        ui.err().print(f"[bold red]internal error:[/] {type(exc).__name__}: {ui.escape(redact.scrub(str(exc)))}")
        ui.err().print("[bold]to fix:[/] this is a ccp bug; rerun with --debug and report the traceback")
        return EXIT_INTERNAL


def _log_error(exc: Exception) -> None:
    """The run log ends with the error the user saw (and, for a ccp bug, its traceback)."""
    import logging

    log = logging.getLogger("ccp")
    if not log.handlers:
        return
    from ccp.errors import CcpError

    if isinstance(exc, CcpError):
        log.error("error: %s", exc.message)
        for line in exc.details:
            log.error("  %s", line)
        if exc.resolution:
            log.error("to fix: %s", exc.resolution)
    else:
        log.error("internal error: %s: %s", type(exc).__name__, exc, exc_info=True)


def _traceback() -> None:
    import traceback

    from ccp import redact

    sys.stderr.write(redact.scrub(traceback.format_exc()))
