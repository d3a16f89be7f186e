"""Adapters: everything that touches a disk, a database, a process or the network.

Each port is a small ``typing.Protocol`` (``MetadataStore``, ``ArtifactStore``, ``Source``...)
with a production adapter and an in-memory one that tests, doctests and the backtest use.
"""
