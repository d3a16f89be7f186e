"""``retrainer init``: write a runnable project from a bundled example."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from retrainer.config import CONFIG_FILE
from retrainer.errors import ConfigError

EXAMPLES = ("elec2", "car_loan")

FIRST_RUN = {"elec2": "1997-01-06", "car_loan": "2018-06-01"}
"""A day to pass ``retrainer run --as-of`` in each example: within its data."""


def init_project(target: Path, example: str = "elec2", *, force: bool = False) -> list[Path]:
    """Copy the example ``example`` into ``target``; return the files written.

    An existing ``retrainer.yaml`` is never overwritten unless ``force`` is set.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = init_project(Path(tmp) / "proj")
    ...     sorted(p.name for p in files)
    ['ATTRIBUTION.md', 'backtest.yaml', 'elec2.parquet', 'pipeline.py', 'retrainer.yaml']

    ``car_loan`` has text features, declared under ``categorical:``:

    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = init_project(Path(tmp) / "loans", "car_loan")
    ...     sorted(p.name for p in files)
    ['ATTRIBUTION.md', 'backtest.yaml', 'car_loan.parquet', 'retrainer.yaml']
    """
    if example not in EXAMPLES:
        raise ConfigError(f"unknown example {example!r}; available: {', '.join(EXAMPLES)}")
    if (target / CONFIG_FILE).exists() and not force:
        raise ConfigError(
            f"{target / CONFIG_FILE} already exists; choose another folder or pass --force"
        )
    source = resources.files("retrainer.examples") / example
    written: list[Path] = []

    def copy(node: resources.abc.Traversable, dest: Path) -> None:
        for child in node.iterdir():
            if child.name.startswith((".", "__pycache__")):
                continue
            if child.is_dir():
                copy(child, dest / child.name)
                continue
            dest.mkdir(parents=True, exist_ok=True)
            out = dest / child.name
            with resources.as_file(child) as real:
                shutil.copyfile(real, out)
            written.append(out)

    copy(source, target)
    return written
