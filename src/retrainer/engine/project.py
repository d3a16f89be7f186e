"""A project: its configuration, its folder and its opened stores.

Every engine use case takes a :class:`Project`; the CLI opens one from ``retrainer.yaml``,
tests and backtests build one around in-memory stores with :meth:`Project.in_memory`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from retrainer.adapters.artifacts import ArtifactStore, open_artifact_store
from retrainer.adapters.locations import resolve_url
from retrainer.adapters.metadata import MetadataStore
from retrainer.adapters.metadata.sql import open_metadata_store
from retrainer.config import ProjectConfig, load_config, project_root

# The registry's read commands (status, models, events) open a project and read a few rows:
# the log store (pandas, DuckDB, Arrow) and the pipelines (the user's code, scikit-learn) are
# loaded when first used.
if TYPE_CHECKING:
    from retrainer.adapters.logstore import LogStore
    from retrainer.adapters.sources import Source
    from retrainer.engine.pipeline import Pipeline


def resolve_db_url(url: str, root: Path) -> str:
    """Make a relative SQLite path absolute against the project folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rel = url.removeprefix(prefix)
        if rel and not rel.startswith(":memory:"):
            return prefix + str((root / rel).resolve())
    return url


class _LogStoreOnFirstUse:
    """The log store at ``url``, opened when one of its methods is first looked up."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._store: LogStore | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._store is None:
            from retrainer.adapters.logstore import open_log_store

            self._store = open_log_store(self._url)
        return getattr(self._store, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"


@dataclass
class Project:
    """Configuration + project folder + metadata store + artifact store."""

    config: ProjectConfig
    root: Path
    store: MetadataStore
    artifacts: ArtifactStore
    logs: LogStore | None = None
    config_path: Path | None = None
    sources: dict[str, Source] = field(default_factory=dict)
    git: tuple[str | None, bool | None] | None = None
    """(commit, dirty) recorded with runs; None: ask git at each run (backtests fix it)."""
    cache_models: bool = False
    """Keep loaded models by hash (backtests); off: every load re-reads and re-checks the blob."""
    profiles: bool = True
    """Store a reference profile with each version (backtests without drift triggers skip it)."""
    _models: OrderedDict[str, Any] = field(default_factory=OrderedDict, repr=False)
    _pipelines: dict[str, Pipeline] = field(default_factory=dict, repr=False)

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
            logs=cast("LogStore", _LogStoreOnFirstUse(resolve_url(config.storage.logs_url, root))),
            config_path=file,
        )

    @classmethod
    def in_memory(
        cls,
        config: ProjectConfig,
        root: Path,
        sources: dict[str, Source] | None = None,
    ) -> Project:
        """A project on in-memory stores (tests, doctests, backtests)."""
        from retrainer.adapters.artifacts import InMemoryArtifactStore
        from retrainer.adapters.logstore import InMemoryLogStore
        from retrainer.adapters.metadata.memory import InMemoryMetadataStore

        return cls(
            config=config,
            root=root,
            store=InMemoryMetadataStore(),
            artifacts=InMemoryArtifactStore(),
            logs=InMemoryLogStore(),
            sources=dict(sources or {}),
        )

    def pipeline(self, name: str | None = None) -> Pipeline:
        """The runnable pipeline called ``name`` (or the only one)."""
        from retrainer.engine.pipeline import Pipeline

        cfg = self.config.pipeline(name)
        if cfg.name not in self._pipelines:
            self._pipelines[cfg.name] = Pipeline(cfg, self.root, self.sources.get(cfg.name))
        return self._pipelines[cfg.name]

    def code_state(self) -> tuple[str | None, bool | None]:
        """(git commit, dirty) of the project folder, or the fixed value of ``git``."""
        if self.git is not None:
            return self.git
        from retrainer.adapters.environment import git_state

        return git_state(self.root)

    def load_model(self, sha256: str, fmt: str) -> Any:
        """The model stored as artifact ``sha256``, loaded once and kept (the last 4).

        Artifacts are content-addressed and checked when read, so a loaded model stands for
        its hash; callers that change a model (an online update) copy it first. Without
        ``cache_models`` each call reads and checks the blob again (a daemon notices a
        damaged artifact at once).
        """
        if sha256 in self._models:
            self._models.move_to_end(sha256)
            return self._models[sha256]
        from retrainer.adapters.serialization import load_model

        ser = self.config.serialization
        model = load_model(
            self.artifacts.get(sha256),
            fmt,
            trusted_types=ser.trusted_types,
            allow_pickle=ser.allow_pickle,
        )
        self.remember_model(sha256, model)
        return model

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

    def log_store(self) -> LogStore:
        """The prediction and feedback log (raises if this project has none)."""
        if self.logs is None:
            from retrainer.errors import ConfigError

            raise ConfigError("this project has no log store (storage.logs_url)")
        return self.logs

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
