"""OpenAPI fuzz run: schemathesis makes requests from the app's own schema; none may get a 5xx.

The schema is read from the running app (``/openapi.json``) so a new route is fuzzed without
touching this file. Hypothesis is derandomized (same examples on every run, so CI is
deterministic) and bounded per operation to keep the module in seconds. The app's own 4xx
statuses (401/403/404/413/422/503, module docstring of ``retrainer.server.app``) are not in
its OpenAPI description, so the status check here is "documented or one of those".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from retrainer.server import create_app

from .conftest import FAST, authenticate, bearer, trained_project

ADMIN = bearer("admin")
# The errors every route may answer (retrainer.server.app's docstring), besides its documented ones.
APP_ERRORS = {401, 403, 404, 413, 422, 429, 503}
# Numbers up to this in the plain predict test; larger ones, null, NaN and Infinity are in
# test_predict_rows_with_any_json_values (each a 422 naming the cell).
HUGE = 1e200
# /metrics answers Prometheus text but its OpenAPI entry says application/json (a doc gap in
# server/app.py, reported); its body is not checked against the schema.
UNCHECKED_BODIES = {"/metrics"}


class KnownServerError(Exception):
    """A 500 from missing or non-finite values reaching the model (they must be 422s)."""


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    project = trained_project()
    app = create_app(project, authenticate=authenticate, settings=FAST)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    project.close()


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _pinned(document: dict[str, Any], pipeline: str) -> dict[str, Any]:
    """The schema with every ``{pipeline}`` path parameter fixed to a served pipeline."""
    pinned = copy.deepcopy(document)
    for item in pinned["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["in"] == "path" and param["name"] == "pipeline":
                    param["schema"] = {"type": "string", "enum": [pipeline]}
    return pinned


def _with_feature_rows(document: dict[str, Any], features: list[str]) -> dict[str, Any]:
    """Only predict, pinned, its rows having exactly the features, of any JSON value."""
    rows = copy.deepcopy(document)
    rows["paths"] = {p: item for p, item in rows["paths"].items() if p.endswith("/predict")}
    row = {
        "type": "object",
        "properties": {name: {} for name in features},
        "required": features,
        "additionalProperties": False,
    }
    body = {"anyOf": [row, {"type": "array", "items": row, "minItems": 1, "maxItems": 5}]}
    for path, item in rows["paths"].items():
        if path.endswith("/predict"):
            item["post"]["requestBody"]["content"]["application/json"]["schema"] = body
    return rows


def _request(case: Any) -> str:
    """The request, to reproduce it by hand."""
    return f"{case.method} {case.formatted_path} body={case.body!r}"


def _fuzz(
    client: TestClient,
    document: dict[str, Any],
    *,
    examples: int,
    known: Callable[[Any], bool] = lambda case: False,
) -> list[str]:
    """Fuzz every operation of ``document``; returns the known 500s, raises on any other problem."""
    seen_known: list[str] = []
    for operation in schemathesis.openapi.from_dict(document).get_all_operations():
        _fuzz_operation(client, operation.ok(), examples, known, seen_known)
    return seen_known


def _fuzz_operation(
    client: TestClient,
    op: Any,
    examples: int,
    known: Callable[[Any], bool],
    seen_known: list[str],
) -> None:
    documented = {int(code) for code in op.definition.raw.get("responses", {}) if code.isdigit()}

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=ADMIN)
        kwargs.pop("cookies", None)  # the routes take none; httpx deprecates per-request ones
        response = client.request(**kwargs)
        status = response.status_code
        # no 5xx at all: a 503 (no champion, log full) cannot happen with this project either
        if status >= 500:
            if known(case):
                seen_known.append(f"{_request(case)} -> {status}")
                return
            raise AssertionError(f"{_request(case)} -> {status}: {response.text[:300]}")
        assert status in documented or status in APP_ERRORS, (
            f"{_request(case)} -> undocumented {status}: {response.text[:300]}"
        )
        if status in documented and status < 400 and case.path not in UNCHECKED_BODIES:
            case.validate_response(
                response, checks=[content_type_conformance, response_schema_conformance]
            )
        elif status >= 400:
            body = response.json()
            assert set(body) == {"error", "detail"}, f"{_request(case)} -> {body}"

    run()


def _missing_or_not_finite(case: Any) -> bool:
    """A row has a null or a huge number (the model refuses NaN, inf and overflows)."""
    rows = case.body if isinstance(case.body, list) else [case.body]
    for row in rows:
        for value in row.values() if isinstance(row, dict) else []:
            if value is None:
                return True
            if isinstance(value, int | float) and not isinstance(value, bool):
                if isinstance(value, float) and not math.isfinite(value):
                    return True
                if abs(value) > HUGE:
                    return True
    return False


# schemathesis hands raw bodies to the test client as data=bytes, which httpx2 deprecates
@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
def test_every_operation_of_the_published_schema(
    client: TestClient, openapi: dict[str, Any]
) -> None:
    # random pipeline names (mostly 404s) and then the served one, where the routes do work
    _fuzz(client, openapi, examples=25)
    _fuzz(client, _pinned(openapi, "toy"), examples=60)


def test_predict_rows_of_finite_numbers_never_fail(client: TestClient) -> None:
    # every number up to HUGE (and booleans, strings: refused with a 422) gets a 200 or 422
    values = st.one_of(
        st.floats(min_value=-HUGE, max_value=HUGE),
        st.integers(min_value=-(2**63), max_value=2**63),
        st.booleans(),
        st.text(max_size=5),
    )
    row = st.fixed_dictionaries({"x1": values, "x2": values})

    @settings(max_examples=150, derandomize=True, database=None, deadline=None)
    @given(body=st.one_of(row, st.lists(row, min_size=1, max_size=5)))
    def run(body: Any) -> None:
        response = client.post("/v1/toy/predict", json=body, headers=ADMIN)
        assert response.status_code in (200, 422), (body, response.status_code, response.text)
        if response.status_code == 200:
            assert len(response.json()["predictions"]) == (
                len(body) if isinstance(body, list) else 1
            )

    run()


def test_predict_rows_with_any_json_values(client: TestClient, openapi: dict[str, Any]) -> None:
    features = [f.name for f in client.app.state.holder.get("toy").features]
    document = _with_feature_rows(_pinned(openapi, "toy"), features)
    known = _fuzz(client, document, examples=100, known=_missing_or_not_finite)
    if known:
        raise KnownServerError("\n".join(known[:5]))
