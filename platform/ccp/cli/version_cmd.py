import platform as _platform

from ccp import __version__
from ccp.cli.apps import app
from ccp.cli.common import OUTPUT_OPTION, Output, print_json


@app.command("version")
def version(output: Output = OUTPUT_OPTION) -> None:
    """Print ccp's version and the Kubernetes versions it installs."""
    from ccp.config import versions

    minors = versions.supported_minors()
    data = {"ccp": __version__, "python": _platform.python_version(),
            "kubernetes": {"supported": minors, "default": versions.default_version()}}
    if output is Output.json:
        print_json(data)
        return
    from ccp import ui

    ui.line(f"ccp {__version__} (Python {data['python']})")
    ui.line(f"Kubernetes: {', '.join(minors)} (default {data['kubernetes']['default']})")
