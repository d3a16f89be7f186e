"""Gadgets: skops files made only of "library" types that would run code on load or predict.

Each file is refused by ``load_model`` with an UntrustedArtifactError naming the offending
type, and nothing from it runs (the helpers in ``_gadgets`` record every call, ``os.system``
and ``subprocess`` are replaced by recorders). The landed allowlist (every class of numpy,
scipy, scikit-learn and River) loaded the first of them: numpy's PytestTester, a callable
class, inside a FunctionTransformer.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import operator
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.io
from numpy._pytesttester import PytestTester
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_selection import SelectKBest
from sklearn.gaussian_process import GaussianProcessClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier, SGDRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from retrainer.adapters.serialization import (
    artifact_types,
    dump_model,
    is_trusted_type,
    load_model,
    recorded_types,
    types_record,
)
from retrainer.errors import ArtifactIntegrityError, UntrustedArtifactError
from retrainer.integrations.river import RiverClassifier
from tests.adapters import _gadgets
from tests.adapters.skops_files import (
    X,
    Y,
    crafted,
    fitted_log1p_pipeline,
    json_state,
    read_schema,
    tuple_state,
    with_func,
    write_schema,
)

# the real ones, before the fixture replaces them
SYSTEM = os.system
POSIX_SYSTEM = f"{os.name}.system"  # where os.system lives: skops names it posix.system


@pytest.fixture(autouse=True)
def sentinel(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """os.system becomes a recorder; after the test, no gadget ran."""
    _gadgets.CALLS.clear()
    posix = __import__(os.name)
    for module in (os, posix):
        monkeypatch.setattr(module, "system", functools.partial(_gadgets.record, "system"))
    yield _gadgets.CALLS
    assert _gadgets.CALLS == [], "a gadget ran"


@contextlib.contextmanager
def no_process_starts() -> Iterator[None]:
    """While loading, starting a process is recorded instead (fits may start some)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("Popen", "run", "call", "check_call", "check_output"):
            patch.setattr(subprocess, name, functools.partial(_gadgets.record, name))
        yield


def _refused(data: bytes, name: str) -> str:
    with no_process_starts(), pytest.raises(UntrustedArtifactError) as info:
        load_model(data)
    message = str(info.value)
    assert name in message
    assert "serialization.trusted_types" in message
    return message


# -- the gadget of the issue --------------------------------------------------------------


def test_pytest_tester_in_a_function_transformer_is_refused_by_name() -> None:
    # Pipeline(FunctionTransformer(func=PytestTester(...)), ...): predict would run pytest on
    # the attacker's folder, which imports its conftest.py
    data = with_func(PytestTester("numpy"))
    message = _refused(data, "numpy._pytesttester.PytestTester")
    assert "sklearn.pipeline.Pipeline" not in message  # only the offending type is named


def test_scipy_pytest_tester_is_refused_too() -> None:
    from scipy._lib._testutils import PytestTester as ScipyTester

    _refused(with_func(ScipyTester("scipy")), "scipy._lib._testutils.PytestTester")


# -- callables in func / inverse_func / score_func slots -----------------------------------


FUNCTIONS = [
    (SYSTEM, POSIX_SYSTEM),
    (builtins.eval, "builtins.eval"),
    (builtins.exec, "builtins.exec"),
    (builtins.getattr, "builtins.getattr"),
    (builtins.open, "io.open"),
    (builtins.__import__, "builtins.__import__"),
    (builtins.compile, "builtins.compile"),
    (subprocess.check_call, "subprocess.check_call"),
    (np.save, "numpy.save"),
    (np.load, "numpy.load"),
    (np.loadtxt, "numpy.loadtxt"),
    (np.fromfile, "numpy.fromfile"),
    (np.sum, "numpy.sum"),  # harmless, but not vetted: trusted by name only
    (np.testing.assert_equal, "numpy.testing._private.utils.assert_equal"),
    (scipy.io.loadmat, "scipy.io.matlab._mio.loadmat"),
    (_gadgets.record, "tests.adapters._gadgets.record"),
]


@pytest.mark.parametrize(("func", "name"), FUNCTIONS, ids=[n for _, n in FUNCTIONS])
def test_a_function_in_the_func_slot_is_refused(func: Any, name: str) -> None:
    _refused(with_func(func), name)


CLASSES = [
    (np.memmap, "numpy.memmap"),
    (np.lib.npyio.DataSource, "numpy.lib.npyio.DataSource"),
    (scipy.io.FortranFile, "scipy.io._fortran.FortranFile"),
    (subprocess.Popen, "subprocess.Popen"),
    (_gadgets.InitDoesWork, "tests.adapters._gadgets.InitDoesWork"),
]


@pytest.mark.parametrize(("cls", "name"), CLASSES, ids=[n for _, n in CLASSES])
def test_a_class_in_the_func_slot_is_refused(cls: type, name: str) -> None:
    # calling a class builds an instance: memmap(X) opens a file named by the data
    _refused(with_func(cls), name)


def test_inverse_func_slot_is_checked() -> None:
    model = TransformedTargetRegressor(Ridge(), func=np.log1p, inverse_func=np.expm1)
    model.fit(X, X[:, 0])
    model.inverse_func = builtins.eval
    _refused(dump_model(model), "builtins.eval")


def test_score_func_slot_is_checked() -> None:
    model = SelectKBest(k=1).fit(X, Y)
    model.score_func = SYSTEM
    _refused(dump_model(model), POSIX_SYSTEM)


# -- wrappers: partial, operator getters, bound methods --------------------------------------


@pytest.mark.parametrize(
    ("func", "name"),
    [
        (functools.partial(SYSTEM, "true"), "functools.partial"),
        (functools.partial(np.log1p), "functools.partial"),  # trusted by name only
        (operator.attrgetter("__class__.__init__.__globals__"), "operator.attrgetter"),
        (operator.itemgetter(0), "operator.itemgetter"),
        (operator.methodcaller("__reduce__"), "operator.methodcaller"),
    ],
    ids=["partial-os.system", "partial-log1p", "attrgetter", "itemgetter", "methodcaller"],
)
def test_wrappers_are_refused(func: Any, name: str) -> None:
    _refused(with_func(func), name)


def test_a_partial_names_its_function_too() -> None:
    message = _refused(with_func(functools.partial(SYSTEM, "true")), "functools.partial")
    assert POSIX_SYSTEM in message


def test_a_bound_method_is_refused() -> None:
    # skops cannot save this one (it finds the wrong module), so it is written by hand
    cls = {"__class__": "LogisticRegression", "__module__": "sklearn.linear_model._logistic"}
    node = {
        **cls,
        "__loader__": "MethodNode",
        "content": {"func": "fit", "obj": {**cls, "__loader__": "ObjectNode"}},
    }
    _refused(crafted(node), "sklearn.linear_model._logistic.LogisticRegression.fit")


# -- objects whose __call__, __reduce__ or __setstate__ does work -----------------------------


@pytest.mark.parametrize(
    "obj",
    [
        _gadgets.CallDoesWork(),
        _gadgets.SetstateDoesWork(),
        _gadgets.ReduceDoesWork(),
        _gadgets.EstimatorDoesWork(),
    ],
    ids=lambda o: type(o).__name__,
)
def test_objects_that_do_work_are_refused(obj: Any) -> None:
    _refused(with_func(obj), f"tests.adapters._gadgets.{type(obj).__name__}")


# -- hand-written files: what skops would never write ----------------------------------------


CRAFTED = {
    # skops calls the class named with the arguments in the file, while loading
    "constructor-os.system": (
        {
            "__class__": "system",
            "__module__": "os",
            "__loader__": "ConstructorFromReduceNode",
            "content": tuple_state("true"),
        },
        "os.system",
    ),
    "constructor-eval": (
        {
            "__class__": "eval",
            "__module__": "builtins",
            "__loader__": "ConstructorFromReduceNode",
            "content": tuple_state("__import__('os').system('true')"),
        },
        "builtins.eval",
    ),
    "constructor-gadget": (
        {
            "__class__": "InitDoesWork",
            "__module__": "tests.adapters._gadgets",
            "__loader__": "ConstructorFromReduceNode",
            "content": tuple_state("x"),
        },
        "tests.adapters._gadgets.InitDoesWork",
    ),
    "object-pytest-tester": (
        {
            "__class__": "PytestTester",
            "__module__": "numpy._pytesttester",
            "__loader__": "ObjectNode",
            "content": {
                "__class__": "dict",
                "__module__": "builtins",
                "__loader__": "DictNode",
                "content": {"module_name": json_state("numpy")},
                "key_types": {
                    "__class__": "list",
                    "__module__": "builtins",
                    "__loader__": "ListNode",
                    "content": [
                        {"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"}
                    ],
                },
            },
        },
        "numpy._pytesttester.PytestTester",
    ),
    "operator-by-name": (
        {
            "__class__": "attrgetter",
            "__module__": "operator",
            "__loader__": "OperatorFuncNode",
            "attrs": tuple_state("__globals__"),
        },
        "operator.attrgetter",
    ),
    # a module of a trusted package that is not a class nor a vetted function
    "numpy-testing-function": (
        {"__class__": "assert_equal", "__module__": "numpy.testing", "__loader__": "FunctionNode"},
        "numpy.testing.assert_equal",
    ),
    "f2py-main": (
        {"__class__": "main", "__module__": "numpy.f2py.__main__", "__loader__": "FunctionNode"},
        "numpy.f2py.__main__.main",
    ),
    "type-memmap": (
        {"__class__": "memmap", "__module__": "numpy", "__loader__": "TypeNode"},
        "numpy.memmap",
    ),
    "runpy": (
        {"__class__": "run_path", "__module__": "runpy", "__loader__": "FunctionNode"},
        "runpy.run_path",
    ),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_files_are_refused_before_anything_is_built(case: str) -> None:
    node, name = CRAFTED[case]
    _refused(crafted(node), name)


def test_an_old_protocol_function_node_is_checked_by_what_it_imports() -> None:
    # skops protocol 0 imports content.module_path + content.function, not the node's name
    data = crafted(
        {
            "__class__": "log1p",
            "__module__": "numpy",
            "__loader__": "FunctionNode",
            "content": {"module_path": "os", "function": "system"},
        }
    )
    schema = read_schema(data)
    schema["protocol"] = 0
    _refused(write_schema(data, schema), "os.system")
    assert "os.system" in artifact_types(write_schema(data, schema))


def test_a_nested_node_is_seen() -> None:
    # the dangerous node hides in the arguments of a trusted constructor
    node = {
        "__class__": "frozenset",
        "__module__": "builtins",
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [
                {
                    "__class__": "list",
                    "__module__": "builtins",
                    "__loader__": "ListNode",
                    "content": [CRAFTED["constructor-os.system"][0]],
                }
            ],
        },
    }
    _refused(crafted(node), "os.system")


def test_a_node_without_a_type_is_an_integrity_error() -> None:
    with pytest.raises(ArtifactIntegrityError, match="not a readable skops file"):
        load_model(crafted({"__loader__": "FunctionNode", "__module__": 7}))


# -- the allowlist itself --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "numpy._pytesttester.PytestTester",
        "numpy.testing.assert_equal",
        "numpy.lib._npyio_impl.load",
        "numpy.f2py.__main__.main",
        "numpy.sum",
        "numpy.memmap",
        "numpy.recarray",  # an ndarray subclass: only ndarray and MaskedArray themselves
        "scipy._lib._testutils.PytestTester",
        "scipy.io.loadmat",
        "sklearn.utils._testing.TempMemmap",
        "sklearn.utils._mocking.CheckingClassifier",  # an estimator, from a test module
        "sklearn.utils.estimator_checks.check_estimator",
        "sklearn.datasets.load_svmlight_file",
        "sklearn.linear_model._logistic.LogisticRegression.fit",
        "sklearn.base.clone",
        "river.datasets.Phishing",
        "river.stream.iter_csv",
        "functools.partial",
        "operator.attrgetter",
        "builtins.getattr",
        "builtins.type",
        "os.system",
        "posix.system",
        "importlib.import_module",
        "tests.adapters._gadgets.CallDoesWork",
        "sklearn.pipeline.__class__",
        "sklearn.",
        "",
    ],
)
def test_not_trusted(name: str) -> None:
    assert not is_trusted_type(name)


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.gaussian_process.kernels.RBF",
        "sklearn.tree._tree.Tree",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn.linear_model._sgd_fast.Hinge",
        "sklearn.compose._column_transformer.make_column_selector",
        "sklearn.feature_selection._univariate_selection.f_classif",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.float64",
        "numpy.log1p",
        "numpy.expm1",
        "numpy.sqrt",
        "numpy.random.mtrand.RandomState",
        "numpy.random._pcg64.PCG64",
        "scipy.sparse._csr.csr_matrix",
        "scipy.special.expit",
        "river.linear_model.log_reg.LogisticRegression",
        "river._river_rust.vectordict.VectorDict",
        "retrainer.integrations.river.RiverClassifier",
        "collections.OrderedDict",
    ],
)
def test_trusted(name: str) -> None:
    assert is_trusted_type(name)


# -- legitimate models still load --------------------------------------------------------------


def _frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"a": rng.normal(size=120), "b": rng.normal(size=120), "c": rng.choice(["x", "y"], 120)}
    )
    return frame, (frame["a"] + 0.3 * frame["b"] > 0).astype(int)


def _legit() -> dict[str, tuple[Any, bool]]:
    """name: (unfitted model, takes the mixed frame with a text column)."""
    return {
        "logistic": (LogisticRegression(), False),
        "scaled": (make_pipeline(StandardScaler(), LogisticRegression()), False),
        "column-transformer": (
            make_pipeline(
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["a", "b"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["c"]),
                    ]
                ),
                LogisticRegression(),
            ),
            True,
        ),
        "column-selector": (
            make_pipeline(
                ColumnTransformer(
                    [("num", StandardScaler(), make_column_selector(dtype_include="number"))]
                ),
                SimpleImputer(),
                LogisticRegression(),
            ),
            True,
        ),
        "random-forest": (RandomForestClassifier(n_estimators=4, random_state=0), False),
        "hist-gradient-boosting": (HistGradientBoostingClassifier(max_iter=10), False),
        "sgd-hinge": (SGDClassifier(random_state=0), False),
        "sgd-log": (SGDClassifier(loss="log_loss", random_state=0), False),
        "log1p": (make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()), False),
        "select-k-best": (make_pipeline(SelectKBest(k=1), LogisticRegression()), False),
        "gaussian-process": (GaussianProcessClassifier(random_state=0), False),
        "river": (RiverClassifier(), False),
        "river-unscaled": (RiverClassifier(scale=False), False),
    }


@pytest.mark.parametrize("case", sorted(_legit()))
def test_legitimate_models_load_against_their_record(case: str) -> None:
    model, mixed = _legit()[case]
    frame, y = _frame()
    X_ = frame if mixed else frame[["a", "b"]].abs()
    model.fit(X_, y)
    data = dump_model(model)
    names = artifact_types(data)
    loaded = load_model(data, recorded_types=names)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(X_), model.predict(X_))
    assert load_model(data, recorded_types=None).predict(X_).shape == (len(X_),)


def test_regressors_with_target_functions_load() -> None:
    for model in (
        TransformedTargetRegressor(Ridge(), func=np.log1p, inverse_func=np.expm1),
        SGDRegressor(random_state=0),
    ):
        model.fit(X, X[:, 0])
        data = dump_model(model)
        loaded = load_model(data, recorded_types=artifact_types(data))
        np.testing.assert_allclose(loaded.predict(X), model.predict(X))


# -- the recorded list -------------------------------------------------------------------------


def test_a_type_not_recorded_at_save_is_refused() -> None:
    data = dump_model(fitted_log1p_pipeline())
    names = artifact_types(data)
    assert "numpy.log1p" in names
    recorded = [n for n in names if n != "numpy.log1p"]
    with pytest.raises(UntrustedArtifactError, match=r"numpy\.log1p") as info:
        load_model(data, recorded_types=recorded)
    assert "not in it when this version was saved" in str(info.value)


def test_trusted_types_do_not_widen_the_record() -> None:
    data = with_func(_gadgets.CallDoesWork())
    name = "tests.adapters._gadgets.CallDoesWork"
    assert name in artifact_types(data)
    recorded = [n for n in artifact_types(data) if n != name]
    with pytest.raises(UntrustedArtifactError, match="not in it when"):
        load_model(data, trusted_types=[name], recorded_types=recorded)


def test_the_record_round_trips_through_a_version_environment() -> None:
    data = dump_model(fitted_log1p_pipeline())
    environment = {"python": "3.11", **types_record(artifact_types(data))}
    assert recorded_types(environment) == artifact_types(data)
    assert load_model(data, recorded_types=recorded_types(environment)) is not None


def test_the_record_is_a_function_of_the_file() -> None:
    data = dump_model(fitted_log1p_pipeline())
    assert artifact_types(data) == artifact_types(bytes(data))
    assert artifact_types(data) == sorted(set(artifact_types(data)))


@pytest.mark.parametrize("name", ["stream.iter_csv", "datasets.Phishing", "checks.x", "base.os"])
def test_a_loaded_river_model_builds_only_river_model_classes(name: str) -> None:
    # an online update calls partial_fit on the loaded champion, which builds ``model`` by
    # name when it holds no estimator yet: the name comes from the file
    frame = pd.DataFrame(X, columns=["a", "b"])
    model = RiverClassifier().fit(frame, Y)
    model.estimator_, model.model = None, name
    loaded = load_model(dump_model(model))
    with pytest.raises(ValueError, match="River model class"):
        loaded.partial_fit(frame, Y)
    assert RiverClassifier(model="naive_bayes.GaussianNB", scale=False).fit(frame, Y) is not None
