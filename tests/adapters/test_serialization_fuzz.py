"""A property-based fuzz of the skops loader: rewritten files never run code.

Legitimate skops files get their ``schema.json`` rewritten: node types renamed to dangerous,
legitimate and random names, loaders swapped, nodes wrapped in random nesting or replaced by
constructor calls. Whatever the file, ``load_model`` either raises a retrainer error, or
returns an object built only from trusted types; and nothing the file names is ever called
(``os.system`` and ``subprocess`` are recorders, the ``_gadgets`` helpers record every call),
neither while loading nor when the result predicts.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import subprocess
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from retrainer.adapters.serialization import dump_model, is_trusted_type, load_model
from retrainer.errors import RetrainerError
from retrainer.integrations.river import RiverClassifier
from tests.adapters import _gadgets
from tests.adapters.skops_files import (
    X,
    Y,
    fitted_log1p_pipeline,
    json_state,
    nodes,
    read_schema,
    tuple_state,
    write_schema,
)

DANGEROUS = [
    "os.system",
    "posix.system",
    "builtins.eval",
    "builtins.exec",
    "builtins.getattr",
    "builtins.setattr",
    "builtins.open",
    "builtins.__import__",
    "builtins.compile",
    "builtins.type",
    "builtins.object",
    "builtins.print",
    "subprocess.Popen",
    "subprocess.run",
    "functools.partial",
    "operator.attrgetter",
    "operator.itemgetter",
    "operator.methodcaller",
    "importlib.import_module",
    "runpy.run_path",
    "pickle.loads",
    "joblib.load",
    "shutil.rmtree",
    "numpy._pytesttester.PytestTester",
    "scipy._lib._testutils.PytestTester",
    "numpy.testing.assert_equal",
    "numpy.load",
    "numpy.save",
    "numpy.memmap",
    "numpy.fromfile",
    "numpy.loadtxt",
    "numpy.vectorize",
    "numpy.frompyfunc",
    "numpy.lib.npyio.DataSource",
    "numpy.f2py.__main__.main",
    "scipy.io.loadmat",
    "scipy.io.FortranFile",
    "sklearn.utils._testing.TempMemmap",
    "sklearn.utils._mocking.CheckingClassifier",
    "sklearn.datasets.fetch_openml",
    "sklearn.base.clone",
    "river.stream.iter_csv",
    "river.datasets.Phishing",
    "tests.adapters._gadgets.record",
    "tests.adapters._gadgets.CallDoesWork",
    "tests.adapters._gadgets.SetstateDoesWork",
    "tests.adapters._gadgets.ReduceDoesWork",
    "tests.adapters._gadgets.InitDoesWork",
    "tests.adapters._gadgets.EstimatorDoesWork",
]
# where some of them really live (what the loaded object reports)
SECRETLY_DANGEROUS = {"numpy.lib._function_base_impl.vectorize", "scipy.io._fortran.FortranFile"}
LEGITIMATE = [
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.int",
    "collections.defaultdict",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.log1p",
    "numpy.dtype",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.tree._tree.Tree",
    "scipy.sparse._csr.csr_matrix",
    "river.linear_model.log_reg.LogisticRegression",
    "retrainer.integrations.river.RiverClassifier",
]
LOADERS = [
    "ObjectNode",
    "FunctionNode",
    "TypeNode",
    "ConstructorFromReduceNode",
    "MethodNode",
    "PartialNode",
    "OperatorFuncNode",
    "ReduceNode",
    "TreeNode",
    "NdArrayNode",
    "DictNode",
    "ListNode",
    "TupleNode",
    "JsonNode",
    "RandomStateNode",
]


def _bases() -> list[dict[str, Any]]:
    models = [
        fitted_log1p_pipeline(),
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y),
        RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0).fit(X, Y),
        RiverClassifier().fit(pd.DataFrame(X, columns=["a", "b"]), Y),
    ]
    return [{"data": dump_model(m), "schema": read_schema(dump_model(m))} for m in models]


BASES = _bases()
FRAME = pd.DataFrame(X, columns=["a", "b"])

names = st.one_of(
    st.sampled_from(DANGEROUS),
    st.sampled_from(LEGITIMATE),
    st.from_regex(r"\A[a-z_]{1,8}(\.[A-Za-z_]{1,10}){1,3}\Z"),
)


@st.composite
def node_states(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """A hand-written node: a call of a name with arguments, or a container of such nodes."""
    module, _, cls = draw(names).rpartition(".")
    loader = draw(st.sampled_from(LOADERS))
    state: dict[str, Any] = {"__class__": cls, "__module__": module, "__loader__": loader}
    children = (
        [draw(node_states(depth + 1)) for _ in range(draw(st.integers(0, 2)))] if depth < 3 else []
    )
    args = {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode"}
    args["content"] = children or tuple_state("true")["content"]
    state["content"] = args
    state["attrs"] = args
    if loader == "MethodNode":
        state["content"] = {"func": draw(st.sampled_from(["fit", "predict", "__init__"]))}
        state["content"]["obj"] = {**state, "__loader__": "ObjectNode", "content": None}
    if loader == "PartialNode":
        state["content"] = {"func": draw(node_states(3)), "args": args, "kwds": json_state({})}
        state["content"]["namespace"] = json_state(None)
    return state


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(BASES))
    schema = copy.deepcopy(base["schema"])
    found = list(nodes(schema))
    for _ in range(draw(st.integers(1, 4))):
        target = found[draw(st.integers(0, len(found) - 1))]
        action = draw(st.sampled_from(["rename", "loader", "replace", "wrap"]))
        if action == "rename":
            target["__module__"], _, target["__class__"] = draw(names).rpartition(".")
        elif action == "loader":
            target["__loader__"] = draw(st.sampled_from(LOADERS))
        elif action == "replace":
            replacement = draw(node_states())
            target.clear()
            target.update(replacement)
        else:  # the old node becomes the argument of a new one
            inner = dict(target)
            outer = draw(node_states())
            outer["content"]["content"] = [inner]
            target.clear()
            target.update(outer)
    # older protocols load some nodes with older loaders (protocol 0 functions by content)
    schema["protocol"] = draw(st.sampled_from([2, 0, 1]))
    if draw(st.booleans()) and found:  # an old-style function node, anywhere
        target = found[draw(st.integers(0, len(found) - 1))]
        module, _, function = draw(names).rpartition(".")
        target["__loader__"] = "FunctionNode"
        target["content"] = {"module_path": module, "function": function}
    return write_schema(base["data"], schema)


@contextlib.contextmanager
def recorders() -> Iterator[None]:
    """os.system and subprocess record their calls in _gadgets.CALLS instead of running."""
    posix = __import__(os.name)
    with pytest.MonkeyPatch.context() as patch:
        for module in (os, posix):
            patch.setattr(module, "system", functools.partial(_gadgets.record, "system"))
        for name in ("Popen", "run", "call", "check_call", "check_output"):
            patch.setattr(subprocess, name, functools.partial(_gadgets.record, name))
        yield


def _untrusted_parts(obj: Any) -> list[str]:
    """Names of the types and functions reachable from ``obj`` that are not trusted."""
    out: list[str] = []
    seen: set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, type):
            name = f"{item.__module__}.{item.__name__}"
        elif isinstance(item, np.ufunc | types.FunctionType | types.BuiltinFunctionType):
            name = f"{getattr(item, '__module__', None)}.{item.__name__}"
        else:
            name = f"{type(item).__module__}.{type(item).__name__}"
            if isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list | tuple | set | frozenset):
                stack.extend(item)
            elif isinstance(item, np.ndarray) and item.dtype == object:
                stack.extend(item.ravel().tolist())
            elif hasattr(item, "__dict__") and not isinstance(item, types.ModuleType):
                stack.extend(vars(item).values())
        # the allowlist, and independently of it the names the fuzz knows to be dangerous
        if (
            name in DANGEROUS
            or name.startswith("tests.")
            or name in SECRETLY_DANGEROUS
            or (name != "builtins.NoneType" and not is_trusted_type(name))
        ):
            out.append(name)
    return out


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=mutated_files())
def test_a_rewritten_file_never_runs_code(data: bytes) -> None:
    _gadgets.CALLS.clear()
    with recorders():
        try:
            model = load_model(data)
            event("loaded")
        except RetrainerError as exc:
            event(type(exc).__name__)
            model = None
        if model is not None:
            assert _untrusted_parts(model) == []
            for method in ("predict", "predict_proba", "transform"):
                with contextlib.suppress(Exception):
                    getattr(model, method)(X)
                with contextlib.suppress(Exception):
                    getattr(model, method)(FRAME)
    assert _gadgets.CALLS == []


def test_the_fuzz_starts_from_files_that_load() -> None:
    for base in BASES:
        model = load_model(base["data"])
        assert _untrusted_parts(model) == []
