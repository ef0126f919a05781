"""Everything ccp shows a person: consoles, progress, the timing table, errors, the run log.

Both consoles write through ScrubbingStream, so a registered secret is masked even if some
message carried it by mistake. Results go to stdout; progress, warnings and errors to stderr.
rich honours NO_COLOR by itself.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ccp import redact

if TYPE_CHECKING:
    import logging   # imported where a log is made: a read command that prints a line needs none


class ScrubbingStream:
    """Masks secrets in everything written to the stream it wraps.

    It holds that stream itself. It must not look up sys.stdout/sys.stderr at write time: while a
    rich status or progress display runs, rich replaces sys.stderr with a proxy that writes back into
    the console, and a console writing to "whatever sys.stderr is now" would then write into itself
    (a deadlock at a terminal, where the live display is on)."""

    def __init__(self, stream):
        self._stream = real_stream(stream)

    def write(self, text: str) -> int:
        return self._stream.write(redact.scrub(text))

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")


def real_stream(stream):
    """The stream underneath rich's file proxies (rich installs one as sys.stderr during a live display)."""
    seen = 0
    while hasattr(stream, "rich_proxied_file") and seen < 8:
        stream = stream.rich_proxied_file
        seen += 1
    return stream


_consoles: dict[tuple[str, int], object] = {}


def _console(name: str):
    """One console per underlying stream: a test that redirects sys.stdout gets a console of its own,
    and a live display's proxy of sys.stderr maps back to the console that owns the display."""
    stream = real_stream(getattr(sys, name))
    key = (name, id(stream))
    console = _consoles.get(key)
    if console is None or console.file._stream is not stream:
        from rich.console import Console

        console = Console(file=ScrubbingStream(stream), highlight=False, soft_wrap=True, stderr=name == "stderr")
        if len(_consoles) > 32:   # tests make many; a CLI run makes two
            _consoles.clear()
        _consoles[key] = console
    return console


def out():
    return _console("stdout")


def err():
    return _console("stderr")


def line(text: str) -> None:
    """One line of plain text on stdout, as ``out().print(escape(text))`` shows it. A line rich would
    change (markup brackets, :emoji: codes, tabs, control characters) goes through rich; any other is
    written directly, so a read command need not load rich (~30 ms of its start)."""
    if "[" in text or text.count(":") > 1 or not text.isprintable():
        out().print(escape(text))
        return
    stream = ScrubbingStream(sys.stdout)
    stream.write(text + "\n")
    stream.flush()


def warn(text: str) -> None:
    err().print(f"[yellow]warning:[/] {escape(text)}")


def escape(text: str) -> str:
    """Text shown as is, not read as rich markup (a config value may contain [brackets])."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def print_error(exc, log_file: Path | None = None) -> None:
    console = err()
    console.print(f"[bold red]error:[/] {escape(exc.message)}")
    for line in exc.details:
        console.print("  " + escape(line).replace("\n", "\n  "))
    if exc.resolution:
        console.print(f"[bold]to fix:[/] {escape(exc.resolution)}")
    if log_file:
        console.print(f"[dim]log: {log_file}[/]")


def fmt_seconds(s: float) -> str:
    return f"{s:.2f}s" if s < 60 else f"{int(s // 60)}m{s % 60:04.1f}s"


class Reporter:
    """Progress for a workflow run: a line per phase, a spinner while one works, a table at the end."""

    def __init__(self, log: logging.Logger | None = None):
        import logging

        self.console = err()
        self.log = log or logging.getLogger("ccp")
        self._status = None
        self._t0 = time.monotonic()

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def phase_skipped(self, phase, reason: str) -> None:
        self.log.info("phase %s: %s", phase.name, reason)
        self.console.print(f"[dim]•[/] {phase.name:<28} [dim]{escape(reason)}[/]")

    def phase_started(self, phase, reason: str, actions) -> None:
        self.log.info("phase %s: started (%s); actions: %s", phase.name, reason, "; ".join(a.describe() for a in actions) or "none")
        self.console.print(f"[cyan]→[/] {phase.name:<28} [dim]{escape(reason)}[/]")
        if self.console.is_terminal:
            self._status = self.console.status(f"{phase.name}: {escape(phase.summary)}")
            self._status.start()

    def item(self, name: str, text: str) -> None:
        """One line per machine (or resource) as it moves along."""
        self.log.info("%s: %s", name, text)
        if self._status is not None:
            self._status.update(f"{escape(name)}: {escape(text)}")
        if text in ("done", "destroying", "creating") or text.startswith(("up at", "failed", "cloning")):
            self.console.print(f"    [dim]{escape(name)}:[/] {escape(text)}")

    def note(self, text: str) -> None:
        self.log.info("note: %s", text)
        self.console.print(f"  [yellow]note:[/] {escape(text)}")

    def checks(self, results) -> None:
        print_checks(results, self.console)
        for r in results:
            self.log.info("check %s: %s: %s", r.name, r.status, r.message)

    def progress(self, text: str) -> None:
        self.log.info("%s", text)
        if self._status is not None:
            self._status.update(escape(text))

    def phase_done(self, phase, duration: float, actions) -> None:
        self._stop()
        what = ", ".join(a.describe() for a in actions) or "nothing to change"
        self.log.info("phase %s: done in %.3fs", phase.name, duration)
        self.console.print(f"[green]✓[/] {phase.name:<28} {fmt_seconds(duration):>8}  [dim]{escape(what)}[/]")

    def phase_failed(self, phase, message: str, duration: float) -> None:
        self._stop()
        self.log.error("phase %s: failed after %.3fs: %s", phase.name, duration, message)
        self.console.print(f"[red]✗[/] {phase.name:<28} {fmt_seconds(duration):>8}  [red]{escape(message)}[/]")

    def finished(self, results) -> None:
        self._stop()
        if not results:
            return
        from rich.table import Table

        table = Table(title="phase timings", title_justify="left", show_edge=False, pad_edge=False)
        for col in ("phase", "layer", "result"):
            table.add_column(col)
        table.add_column("time", justify="right")
        for r in results:
            table.add_row(r.name, r.layer, r.status, fmt_seconds(r.duration))
        table.add_row("[bold]total[/]", "", "", f"[bold]{fmt_seconds(time.monotonic() - self._t0)}[/]")
        self.console.print()
        self.console.print(table)


def print_checks(results, console) -> None:
    from rich.table import Table

    colors = {"pass": "green", "warn": "yellow", "fail": "red", "skipped": "dim", "ignored": "dim"}
    table = Table(show_edge=False, pad_edge=False)
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for r in results:
        detail = escape(r.message) + (f"\n[dim]-> {escape(r.remediation)}[/]" if r.remediation and r.status in ("warn", "fail") else "")
        table.add_row(r.name, f"[{colors.get(r.status, 'white')}]{r.status}[/]", detail)
    console.print(table)


class _ScrubFilter:   # logging takes any object with this filter method
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact.scrub(record.getMessage())
        record.args = ()
        return True


def open_log(state_dir: Path, command: str, run_id: str, debug: bool = False) -> tuple[logging.Logger, Path]:
    """A log file per run under <state>/logs/, mode 0600, secrets masked."""
    import logging
    import os

    from ccp.engine.files import ensure_dir

    logs = state_dir / "logs"
    ensure_dir(logs)
    path = logs / f"{run_id}-{command}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_ScrubFilter())
    log = logging.getLogger("ccp")
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False
    return log, path
