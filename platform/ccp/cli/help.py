"""Help that teaches: commands grouped in the order an operator uses them, each with its whole first
sentence (click cuts summaries at 45 characters with "...")."""

from __future__ import annotations

import typer.core

SECTIONS = {
    "Build a cluster (in this order)": ["config", "plan", "preflight", "install", "apply", "render"],
    "Run it": ["phases", "validate", "diagnose", "certs", "secrets", "upgrade", "node", "backup", "restore", "addons", "images",
               "bundle"],
    "Tear down": ["destroy"],
    "Ship ccp": ["appliance"],
    "About ccp": ["version"],
}


class SectionedGroup(typer.core.TyperGroup):
    sections: dict[str, list[str]] = {}

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        order = [n for members in self.sections.values() for n in members]
        return sorted(names, key=lambda n: order.index(n) if n in order else len(order))

    def format_commands(self, ctx, formatter) -> None:
        commands = {n: c for n in self.list_commands(ctx) if (c := self.get_command(ctx, n)) is not None and not c.hidden}
        placed: set[str] = set()
        groups = [(title, [n for n in members if n in commands]) for title, members in self.sections.items()]
        groups.append(("Commands" if not self.sections else "Other commands", [n for n in commands]))
        for title, names in groups:
            rows = [(n, commands[n].get_short_help_str(limit=10_000)) for n in names if n not in placed]
            placed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class TopLevelGroup(SectionedGroup):
    sections = SECTIONS


class AddonsGroup(SectionedGroup):
    sections = {"Commands (in the order of an add-on's life)": ["list", "render", "apply", "status", "delete"]}


class ConfigGroup(SectionedGroup):
    sections = {"Commands": ["init", "validate", "schema"]}
