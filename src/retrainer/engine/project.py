"""A project: its configuration, its folder and its opened stores.

Every engine use case takes a :class:`Project`; the CLI opens one from ``retrainer.yaml``,
tests and backtests build one around in-memory stores with :meth:`Project.in_memory`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from retrainer.adapters.artifacts import ArtifactStore, open_artifact_store
from retrainer.adapters.clock import WallClock
from retrainer.adapters.locations import resolve_url
from retrainer.adapters.metadata import MetadataStore
from retrainer.adapters.metadata.sql import open_metadata_store
from retrainer.config import ProjectConfig, load_config, parse_config, project_root
from retrainer.core.clock import Clock

# The registry's read commands (status, models, events) open a project and read a few rows:
# the log store (pandas, DuckDB, Arrow) and the pipelines (the user's code, scikit-learn) are
# loaded when first used.
if TYPE_CHECKING:
    from retrainer.adapters.logstore import LogStore
    from retrainer.adapters.sources import Source
    from retrainer.core.types import ModelVersion
    from retrainer.engine.pipeline import Pipeline


def resolve_db_url(url: str, root: Path) -> str:
    """Make a relative SQLite path absolute against the project folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rel = url.removeprefix(prefix)
        if rel and not rel.startswith(":memory:"):
            return prefix + str((root / rel).resolve())
    return url


@dataclass
class Project:
    """Configuration + project folder + metadata store + artifact store.

    Open a project folder with :meth:`open` (what the CLI does), or build one in this
    process with :meth:`in_memory`; every engine use case (``execute_run``, ``run_monitor``,
    ``promote``...) takes a project. Close it (or use it as a context manager) to release
    its stores.

    Examples
    --------
    >>> import tempfile
    >>> from retrainer import Project
    >>> from retrainer.testing import write_project
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with Project.open(write_project(tmp)) as project:
    ...         print(project.pipeline().name, project.config.storage.db_url)
    toy sqlite:///.retrainer/retrainer.db
    """

    config: ProjectConfig
    root: Path
    store: MetadataStore
    artifacts: ArtifactStore
    logs: LogStore | None = None
    logs_url: str | None = None
    """Where the log store is, opened by :meth:`log_store` at first use: the read commands
    never need it, and opening it imports pandas, DuckDB and Arrow."""
    config_path: Path | None = None
    sources: dict[str, Source] = field(default_factory=dict)
    git: tuple[str | None, bool | None] | None = None
    """(commit, dirty) recorded with runs; None: ask git at each run (backtests fix it)."""
    cache_models: bool = False
    """Keep loaded models by hash (backtests); off: every load re-reads and re-checks the blob."""
    profiles: bool = True
    """Store a reference profile with each version (backtests without drift triggers skip it)."""
    clock: Clock = field(default_factory=WallClock)
    """The time engine calls of this project are given (``execute_run(project,
    clock=project.clock)``): the wall clock, or a simulated one in tests and doctests."""
    liveness_clock: Clock = field(default_factory=WallClock)
    """What leases and reaping are measured on: the wall clock whatever :attr:`clock` says
    (a replay of 1997 must not reap a live run because another process replays June).
    Tests give a simulated one to expire a lease without waiting."""
    _models: OrderedDict[str, Any] = field(default_factory=OrderedDict, repr=False)
    _pipelines: dict[str, Pipeline] = field(default_factory=dict, repr=False)
    _by_name: tuple[Any, dict[str, Any]] | None = field(default=None, repr=False)
    _cleanup: weakref.finalize[Any, Any] | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> Project:
        """Open the project whose ``retrainer.yaml`` is at ``path`` (file or folder)."""
        config, file = load_config(path, env)
        root = project_root(config, file)
        store = open_metadata_store(
            resolve_db_url(config.storage.db_url, root), auto_migrate=config.storage.auto_migrate
        )
        artifacts = open_artifact_store(resolve_url(config.storage.artifacts_url, root))
        return cls(
            config=config,
            root=root,
            store=store,
            artifacts=artifacts,
            logs_url=resolve_url(config.storage.logs_url, root),
            config_path=file,
        )

    @classmethod
    def in_memory(
        cls,
        config: ProjectConfig | None = None,
        root: str | os.PathLike[str] | None = None,
        sources: Mapping[str, Source] | None = None,
        *,
        pipelines: Sequence[Pipeline] = (),
        settings: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> Project:
        """A project on in-memory stores: embedding, tests, doctests, backtests.

        Metadata, artifacts and logs live in this process and go with it. Give either a
        validated ``config`` (with ``sources`` to use instead of those it describes) or
        ``pipelines`` (e.g. from :meth:`Pipeline.from_callables`), with the other top-level
        keys of ``retrainer.yaml`` in ``settings``.

        Parameters
        ----------
        config
            The project's configuration; None with ``pipelines``.
        root
            The folder relative paths and reports resolve from. Default: a temporary folder,
            removed by :meth:`close` (or when the project is garbage-collected).
        sources
            Sources by pipeline name, instead of those ``config`` describes.
        pipelines
            Runnable pipelines; their configurations become the project's.
        settings
            With ``pipelines``: ``controller``, ``alerts``, ``serialization``... as in
            ``retrainer.yaml``, validated as the file is.
        clock
            The project's clock (:attr:`clock`); default: the wall clock.
        artifacts
            Another artifact store. The fresh-process sanity check cannot read in-memory
            artifacts: turn it off, or give a :class:`~retrainer.LocalArtifactStore`.

        Raises
        ------
        ConfigError
            When neither or both of ``config`` and ``pipelines`` are given, or for invalid
            ``settings``.

        Examples
        --------
        >>> from datetime import datetime, timezone
        >>> from sklearn.linear_model import LogisticRegression
        >>> from retrainer import Pipeline, Project, SimulatedClock, execute_run, list_models
        >>> from retrainer.testing import drifting_frame
        >>> def train(data, params):
        ...     X, y = data[params["features"]], data[params["target"]]
        ...     return LogisticRegression().fit(X, y)
        >>> pipeline = Pipeline.from_callables(
        ...     name="churn", source=drifting_frame(800), time_column="ts", target="y",
        ...     features=["x1", "x2"], train=train, metrics=["accuracy"],
        ...     rules=[{"metric": "accuracy", "min": 0.6}],
        ... )
        >>> clock = SimulatedClock(datetime(2024, 1, 20, tzinfo=timezone.utc))
        >>> with Project.in_memory(pipelines=[pipeline], clock=clock) as project:
        ...     result = execute_run(project, clock=project.clock)
        ...     [(v["version"], v["aliases"]) for v in list_models(project)]
        [(1, ['champion'])]
        """
        from retrainer.adapters.artifacts import InMemoryArtifactStore
        from retrainer.adapters.logstore import InMemoryLogStore
        from retrainer.adapters.metadata.memory import InMemoryMetadataStore
        from retrainer.errors import ConfigError

        if (config is None) == (not pipelines):
            raise ConfigError("Project.in_memory needs either a config or pipelines, not both")
        if config is None:
            config = parse_config(
                {**(settings or {}), "pipelines": [p.config for p in pipelines]},
                origin="Project.in_memory",
            )
        elif settings is not None:
            raise ConfigError("Project.in_memory: settings go with pipelines; put them in config")
        workdir = None
        if root is None:
            workdir = tempfile.mkdtemp(prefix="retrainer-")
        project = cls(
            config=config,
            root=Path(root) if root is not None else Path(str(workdir)),
            store=InMemoryMetadataStore(),
            artifacts=InMemoryArtifactStore() if artifacts is None else artifacts,
            logs=InMemoryLogStore(),
            sources=dict(sources or {}),
            clock=WallClock() if clock is None else clock,
        )
        for p in pipelines:
            project._pipelines[p.name] = p
        if workdir is not None:
            project._cleanup = weakref.finalize(project, shutil.rmtree, workdir, True)
        return project

    def pipeline(self, name: str | None = None) -> Pipeline:
        """The runnable pipeline called ``name`` (or the only one)."""
        from retrainer.engine.pipeline import Pipeline

        # a dict, not the configuration's linear search: a tick looks each pipeline up
        configs = self.config.pipelines
        if self._by_name is None or self._by_name[0] is not configs:
            self._by_name = (configs, {p.name: p for p in configs})
        found = self._by_name[1].get(name) if name is not None else None
        cfg = found if found is not None else self.config.pipeline(name)  # or its error
        if cfg.name not in self._pipelines:
            self._pipelines[cfg.name] = Pipeline(cfg, self.root, self.sources.get(cfg.name))
        return self._pipelines[cfg.name]

    def code_state(self) -> tuple[str | None, bool | None]:
        """(git commit, dirty) of the project folder, or the fixed value of ``git``."""
        if self.git is not None:
            return self.git
        from retrainer.adapters.environment import git_state

        return git_state(self.root)

    def load_model(
        self,
        sha256: str,
        fmt: str,
        *,
        recorded_types: Sequence[str] | None = None,
        size: int | None = None,
    ) -> Any:
        """The model stored as artifact ``sha256``, loaded once and kept (the last 4).

        Artifacts are content-addressed and checked when read, so a loaded model stands for
        its hash; callers that change a model (an online update) copy it first. Without
        ``cache_models`` each call reads and checks the blob again (a daemon notices a
        damaged artifact at once). ``recorded_types`` and ``size``: the types and byte size
        recorded when the model was saved (see :meth:`load_version`).
        """
        if sha256 in self._models:
            self._models.move_to_end(sha256)
            return self._models[sha256]
        from retrainer.adapters.serialization import load_model

        ser = self.config.serialization
        model = load_model(
            self.artifacts.get(sha256, size=size),
            fmt,
            trusted_types=ser.trusted_types,
            allow_pickle=ser.allow_pickle,
            recorded_types=recorded_types,
        )
        self.remember_model(sha256, model)
        return model

    def load_version(self, mv: ModelVersion) -> Any:
        """The model of version ``mv``: only the types recorded when it was saved may load."""
        from retrainer.adapters.serialization import recorded_types

        return self.load_model(
            mv.artifact_sha256,
            mv.artifact_format,
            recorded_types=recorded_types(mv.environment),
            size=mv.artifact_size,
        )

    def remember_model(self, sha256: str, model: Any) -> None:
        """Keep ``model`` as the loaded form of artifact ``sha256`` (with ``cache_models``)."""
        if not self.cache_models:
            return
        self._models[sha256] = model
        self._models.move_to_end(sha256)
        while len(self._models) > 4:
            self._models.popitem(last=False)

    @property
    def reports_dir(self) -> Path:
        """Where reports go by default (a local folder)."""
        return Path(resolve_url(self.config.storage.reports_dir, self.root))

    @property
    def has_log_store(self) -> bool:
        return self.logs is not None or self.logs_url is not None

    def log_store(self) -> LogStore:
        """The prediction and feedback log, opened at first use (raises if there is none)."""
        if self.logs is None and self.logs_url is not None:
            from retrainer.adapters.logstore import open_log_store

            self.logs = open_log_store(self.logs_url)
        if self.logs is None:
            from retrainer.errors import ConfigError

            raise ConfigError("this project has no log store (storage.logs_url)")
        return self.logs

    def close(self) -> None:
        self.store.close()
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Project:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
