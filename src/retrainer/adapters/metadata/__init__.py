"""The metadata store: pipelines, snapshots, runs, model versions, aliases, monitoring results,
per-pipeline state and events.

``SQLMetadataStore`` (SQLite by default, PostgreSQL at scale) and ``InMemoryMetadataStore``
implement the same :class:`MetadataStore` protocol and pass the same contract test suite.
That protocol is the union of one small port per concern: :class:`RunStore` (pipelines,
snapshots, runs), :class:`RegistryStore` (versions, aliases), :class:`MonitorStore`,
:class:`StateStore`, :class:`EventStore` and :class:`TokenStore` (API tokens); what goes in
and comes out follows one set of rules (``_records``), whichever store holds it.
``open_metadata_store(url)`` picks one from a URL; ``upgrade_schema(url)`` brings a database to
the schema this version of retrainer needs (``retrainer db upgrade``).
"""

from retrainer.adapters.metadata.memory import InMemoryMetadataStore
from retrainer.adapters.metadata.protocol import (
    ANY,
    EventStore,
    MetadataStore,
    MonitorStore,
    RegistryStore,
    RunStore,
    StateStore,
    TokenStore,
)
from retrainer.adapters.metadata.sql import SQLMetadataStore, open_metadata_store, upgrade_schema

__all__ = [
    "ANY",
    "EventStore",
    "InMemoryMetadataStore",
    "MetadataStore",
    "MonitorStore",
    "RegistryStore",
    "RunStore",
    "SQLMetadataStore",
    "StateStore",
    "TokenStore",
    "open_metadata_store",
    "upgrade_schema",
]
