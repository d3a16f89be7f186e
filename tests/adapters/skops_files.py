"""Build and rewrite skops files for the serialization tests (gadgets and the loader fuzz)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from retrainer.adapters.serialization import dump_model

X = np.abs(np.random.default_rng(0).normal(size=(40, 2)))
Y = (X[:, 0] > X[:, 1]).astype(int)


def read_schema(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema: dict[str, Any] = json.loads(archive.read("schema.json"))
        return schema


def write_schema(data: bytes, schema: dict[str, Any]) -> bytes:
    """``data`` with its schema.json replaced (the other members copied)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = json.dumps(schema) if info.filename == "schema.json" else src.read(info)
            dst.writestr(info.filename, body)
    return out.getvalue()


def nodes(state: Any) -> Iterator[dict[str, Any]]:
    """Every node of a schema (dicts with a ``__loader__``), depth first."""
    if isinstance(state, dict):
        if "__loader__" in state:
            yield state
        for value in state.values():
            yield from nodes(value)
    elif isinstance(state, list):
        for value in state:
            yield from nodes(value)


def fitted_log1p_pipeline() -> Any:
    """Pipeline(FunctionTransformer(numpy.log1p), LogisticRegression()), fitted."""
    return make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(X, Y)


def with_func(func: Any, slot: Callable[[Any], Any] | None = None) -> bytes:
    """A fitted pipeline whose FunctionTransformer holds ``func`` (set after fitting, so the
    gadget never runs here), saved with skops."""
    model = fitted_log1p_pipeline()
    model.steps[0][1].func = func
    return dump_model(model)


def crafted(node: dict[str, Any]) -> bytes:
    """The log1p pipeline with its ``func`` node replaced by ``node`` (a hand-written state)."""
    data = dump_model(fitted_log1p_pipeline())
    schema = read_schema(data)
    (target,) = [
        n for n in nodes(schema) if n["__loader__"] == "FunctionNode" and n["__class__"] == "log1p"
    ]
    target.clear()
    target.update(node)
    return write_schema(data, schema)


def json_state(value: Any) -> dict[str, Any]:
    return {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def tuple_state(*items: Any) -> dict[str, Any]:
    return {
        "__class__": "tuple",
        "__module__": "builtins",
        "__loader__": "TupleNode",
        "content": [json_state(item) for item in items],
    }
