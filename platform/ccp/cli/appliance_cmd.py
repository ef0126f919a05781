from pathlib import Path
from typing import Optional

import typer

from ccp.cli.apps import appliance_app
from ccp.cli.common import CONFIG_OPTION, load_config


@appliance_app.command("build")
def build(out: Path = typer.Option(Path("dist"), "--out", metavar="DIR", help="Where the .ova goes."),
          bundle: Optional[Path] = typer.Option(None, "--bundle", metavar="BUNDLE",
                                                help="An offline bundle (`ccp bundle create`) to carry inside."),
          cache: Optional[Path] = typer.Option(None, "--cache", metavar="DIR",
                                               help="The build cache (default ~/.cache/ccp/appliance): the root filesystem is reused from it."),
          disk_gb: int = typer.Option(16, "--disk-gb", min=4, help="The appliance's disk size in GiB."),
          mirror: Optional[Path] = typer.Option(None, "--mirror", metavar="FILE",
                                                help="An apt sources file for mmdebstrap (default: this machine's).")) -> None:
    """Build ccp-appliance-VERSION.ova from Debian packages (root; minutes the first time, seconds when cached)."""
    from ccp import ui
    from ccp.appliance.build import Progress, build as run_build

    args = ["--out", str(out), "--disk-gb", str(disk_gb)]
    for flag, value in (("--bundle", bundle), ("--cache", cache), ("--mirror", mirror)):
        if value is not None:
            args += [flag, str(value)]
    progress = Progress(ui.err())
    try:
        result = run_build(args, progress)
    finally:
        progress.close()
    reused = sum(1 for s in result.steps if s["state"] == "reused")
    ui.out().print(f"wrote {result.ova} in {ui.fmt_seconds(result.seconds)} "
                   f"({reused} step{'' if reused == 1 else 's'} reused from the cache)")


@appliance_app.command("deploy")
def deploy(ova_file: Path = typer.Option(..., "--ova", metavar="FILE", help="The .ova from `ccp appliance build`."),
           config: Path = CONFIG_OPTION,
           name: str = typer.Option("ccp-appliance", "--name", help="The VM's name in vCenter."),
           hostname: Optional[str] = typer.Option(None, "--hostname", help="The appliance's host name."),
           ip: Optional[str] = typer.Option(None, "--ip", help="Address/prefix like 192.0.2.10/24, or dhcp."),
           gateway: Optional[str] = typer.Option(None, "--gateway", help="Default gateway for a static address."),
           dns: Optional[str] = typer.Option(None, "--dns", metavar="A,B", help="Name servers."),
           ntp: Optional[str] = typer.Option(None, "--ntp", metavar="A,B", help="Time servers."),
           ssh_key: Optional[Path] = typer.Option(None, "--ssh-key", metavar="FILE",
                                                  help="An OpenSSH public key file for the ccp user (password SSH off)."),
           power_on: bool = typer.Option(True, "--power-on/--no-power-on", help="Power the VM on after the import.")) -> None:
    """Upload the OVA to vCenter (where cluster.yaml's vsphere section says), set its properties, power it on.

    The admin password is read from CCP_APPLIANCE_PASSWORD, never from a flag (flags show in `ps`)."""
    import os

    from ccp import ui
    from ccp.appliance.deploy import deploy as run_deploy
    from ccp.errors import ConfigError

    from ccp import redact

    password = os.environ.get("CCP_APPLIANCE_PASSWORD") or None
    redact.register(password)   # scrubbed from anything ccp prints or logs, should vCenter echo it back
    values = {"hostname": hostname, "ip": ip, "gateway": gateway, "dns": dns, "ntp": ntp, "admin_password": password}
    if ssh_key is not None:
        if not ssh_key.is_file():
            raise ConfigError(f"no SSH public key at {ssh_key}", "pass the .pub file, e.g. --ssh-key ~/.ssh/id_ed25519.pub")
        values["ssh_authorized_key"] = ssh_key.read_text().strip()
    loaded = load_config(config, quiet=True)
    d = run_deploy(loaded, ova_file, name, values, power_on=power_on,
                   say=lambda text: ui.err().print(f"  [dim]{ui.escape(text)}[/]"))
    state = "powered on" if d.powered_on else "powered off"
    verb = "deployed" if d.created else "already there"
    ui.out().print(f"{d.name}: {verb}, {state} ({ui.fmt_seconds(d.seconds)})")
