"""The metadata ports: small protocols by concern, their union, docstrings written once."""

from __future__ import annotations

import inspect

import pytest

from retrainer.adapters.metadata import (
    EventStore,
    InMemoryMetadataStore,
    MetadataStore,
    MonitorStore,
    RegistryStore,
    RunStore,
    SQLMetadataStore,
    StateStore,
    TokenStore,
)

PORTS = (RunStore, RegistryStore, MonitorStore, StateStore, EventStore, TokenStore)
STORES = (InMemoryMetadataStore, SQLMetadataStore)


def methods(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}


def test_the_ports_split_the_store_without_overlap_and_the_union_is_all_of_it():
    seen: set[str] = set()
    for port in PORTS:
        assert methods(port), port
        assert not methods(port) & seen, port
        seen |= methods(port)
    assert set(MetadataStore.__mro__) >= set(PORTS)
    assert methods(MetadataStore) == {"close"}
    for store in STORES:
        assert MetadataStore in store.__mro__
        assert seen | {"close"} <= {n for n in dir(store) if not n.startswith("_")}


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("port", PORTS)
def test_each_method_is_documented_once_on_its_port(port: type, store: type):
    for name in methods(port):
        doc = inspect.getdoc(getattr(port, name))
        assert doc, f"{port.__name__}.{name} has no docstring"
        # the adapter's method has none of its own: help() shows the port's contract
        assert getattr(store, name).__doc__ is None, f"{store.__name__}.{name} repeats it"
        assert inspect.getdoc(getattr(store, name)) == doc
