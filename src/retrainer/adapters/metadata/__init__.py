"""The metadata store: pipelines, snapshots, runs, model versions, aliases and events.

``SQLMetadataStore`` (SQLite by default, PostgreSQL at scale) and ``InMemoryMetadataStore``
implement the same :class:`MetadataStore` protocol and pass the same contract test suite.
"""

from retrainer.adapters.metadata.protocol import ANY, MetadataStore

__all__ = ["ANY", "MetadataStore"]
