"""`doppel colorspaces`: the OCIO colour spaces a frame-file plate can be named in (`swap --plate-colorspace`)."""

from __future__ import annotations

import typer

from doppel.commands.cli_output import cli_console


def colorspaces(
    family: str = typer.Option(None, "--family", help="Only the colour spaces whose OCIO family contains this text "
                               "(e.g. Input, ACES, Utility)."),
) -> None:
    """List the colour spaces of the OCIO config in use ($OCIO, else OpenColorIO's built-in ACES studio config)."""
    from capture.plate_colour import colorspace_families, config_name

    console = cli_console()
    console.print(f"OCIO config: {config_name()}", markup=False, highlight=False)
    for name, fam in colorspace_families():
        if family is None or family.lower() in fam.lower():
            console.print(f"  {name}" + (f"   ({fam})" if fam else ""), markup=False, highlight=False)
