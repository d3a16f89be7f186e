"""Project commands: init a project from an example, print the config schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrainer.cli.app import handle_errors
from retrainer.cli.render import out, print_json


@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    example: Annotated[
        str,
        typer.Option(help="Bundled example: elec2, or car_loan (text features, categorical:)."),
    ] = "elec2",
    force: Annotated[bool, typer.Option(help="Overwrite an existing retrainer.yaml.")] = False,
) -> None:
    """Write a runnable project (retrainer.yaml + pipeline.py + data) from an example."""
    from retrainer.engine.scaffold import FIRST_RUN, init_project

    files = init_project(directory, example, force=force)
    out.print(f"Created {directory} from the '{example}' example:")
    for f in files:
        out.print(f"  {f}")
    out.print(f"Next: cd {directory} && retrainer run --as-of {FIRST_RUN[example]}")


def config_schema() -> None:
    """Print the JSON schema of retrainer.yaml."""
    from retrainer.config import json_schema

    print_json(json_schema())
