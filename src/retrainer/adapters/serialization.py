"""Turning fitted models into bytes and back.

skops is the default format: loading it never unpickles, and every type in the file must be
trusted before anything is built. skops itself builds objects by calling the classes named in
the file (``cls.__new__`` then ``__setstate__``, or ``cls(*args)``) and hands back the
functions it names, which the model calls later (``FunctionTransformer(func=...)`` calls its
``func`` on every ``predict``). So a trusted name is a promise that constructing it and calling
it can only compute. Trust is therefore narrow and explicit, never a whole package:

- the classes a fitted estimator is made of: scikit-learn estimators and transformers
  (``BaseEstimator`` subclasses) and kernels, River models and their parts (``river.base.Base``
  subclasses, ``VectorDict``), scikit-learn's tree internals (``Tree``, ``TreePredictor``,
  ``_BinMapper``), loss and link objects and ``make_column_selector``; NumPy arrays, masked
  arrays, dtypes, scalar types and random generators; SciPy sparse matrices and arrays; a few
  builtins and ``collections`` types that only hold data; retrainer's own ``RiverClassifier``;
- a vetted list of functions: NumPy and SciPy ufuncs (``numpy.log1p``, ``numpy.expm1``,
  ``numpy.sqrt``...) and scikit-learn's univariate score functions (``f_classif``...).

Always refused unless named exactly in ``serialization.trusted_types``: any other function
(``builtins.eval``, ``os.system``, ``numpy.sum``...), ``functools.partial``, the ``operator``
getters, bound methods, classes from test, I/O and packaging modules (``numpy.testing``,
``numpy._pytesttester.PytestTester``, ``numpy.memmap``, ``scipy.io``...), and every class
outside the list above, callable or not. The names are checked against the file's
``schema.json`` itself (every ``__module__``/``__class__`` pair, at any depth) and against what
``skops.io.get_untrusted_types`` reports, before skops builds anything; modules are imported for
the check only under ``sklearn.`` and ``river.`` and never test or I/O modules.

When a version is registered, the sorted list of the types in its file
(:func:`artifact_types`) is recorded in its ``environment`` under :data:`RECORDED_TYPES_KEY`.
Loading that version refuses any type that is not both in that list and trusted: a file that is
not the one that was saved cannot bring new types in, even with a matching sha256 written next
to it.

joblib (pickle) is supported for models skops cannot represent, and loading it needs
``serialization.allow_pickle: true``, because unpickling a file can run any code it contains.

Trusting scikit-learn's tree predictors (``sklearn.tree._tree.Tree``,
``...predictor.TreePredictor``), which skops leaves untrusted because a crafted file can make
their ``predict`` read out of bounds, is a choice: retrainer only loads artifacts whose sha256
matches the one recorded when it saved them, and the blessing sanity check loads each candidate
in a separate process first.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import pickle
import sys
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

from retrainer.errors import (
    ArtifactIntegrityError,
    ConfigError,
    TrainingError,
    UntrustedArtifactError,
)

__all__ = [
    "FORMATS",
    "RECORDED_TYPES_KEY",
    "TRUSTED_PACKAGES",
    "artifact_types",
    "dump_model",
    "is_trusted_type",
    "load_model",
    "recorded_types",
    "types_record",
]

FORMATS = ("skops", "joblib", "pickle")
"""The serialization formats ``dump_model`` and ``load_model`` accept."""

TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy", "river")
"""Packages some of whose classes and functions are trusted (see the module docstring)."""

RECORDED_TYPES_KEY = "skops_types"
"""The key of a version's ``environment`` that holds its artifact's types (space-separated)."""

# Builtins and collections types that only hold data (skops builds them from their items).
_DATA_TYPES = frozenset(
    [
        *(
            f"builtins.{name}"
            for name in (
                "bool",
                "bytearray",
                "bytes",
                "complex",
                "dict",
                "float",
                "frozenset",
                "int",
                "list",
                "NoneType",
                "range",
                "set",
                "slice",
                "str",
                "tuple",
            )
        ),
        "collections.Counter",
        "collections.OrderedDict",
        # its default_factory is a node of its own and is checked like any other
        "collections.defaultdict",
    ]
)

# retrainer's own model wrappers: plain holders of a trusted package's model
_OWN_TYPES = frozenset({"retrainer.integrations.river.RiverClassifier"})

# Modules (and everything under them) whose classes and functions are never trusted by
# default: they read or write files, run tests or build packages. A trusted package may
# re-export them, so the check is done on the name in the file and on where the object lives.
_DENIED_PREFIXES = (
    "numpy.memmap",
    "numpy._core.memmap",
    "numpy.core.memmap",
    "numpy.DataSource",
    "numpy.lib._datasource",
    "numpy.lib._npyio_impl",
    "numpy.lib.npyio",
    "numpy.lib.format",
    "numpy.ctypeslib",
    "numpy.distutils",
    "numpy.f2py",
    "numpy._pyinstaller",
    "scipy.datasets",
    "scipy.io",
    "scipy._lib._ccallback",
    "sklearn.datasets",
    "sklearn.utils._mocking",
    "sklearn.utils.estimator_checks",
    "sklearn.externals",
    "river.api",
    "river.checks",
    "river.datasets",
    "river.stream",
)
# Any module path with a component containing one of these is refused too (test helpers).
_DENIED_PARTS = ("test", "conftest", "__main__", "benchmark", "_precompute")

# Modules whose every class is a loss or link object of scikit-learn's estimators.
_LOSS_MODULES = frozenset(
    {
        "sklearn._loss._loss",
        "sklearn._loss.loss",
        "sklearn._loss.link",
        "sklearn.linear_model._sgd_fast",
    }
)

# Modules skops' schema may name that the check is allowed to import (River imports its
# submodules lazily); numpy, scipy and the rest of scikit-learn are imported already.
_IMPORTABLE_ROOTS = ("sklearn", "river")


def _denied(name: str) -> bool:
    if any(name == p or name.startswith(p + ".") for p in _DENIED_PREFIXES):
        return True
    return any(part in component for component in name.split(".") for part in _DENIED_PARTS)


def _resolve(name: str) -> Any:
    """The object skops would load for ``name`` (``module.attribute``), or None.

    Only modules that are imported already, or that live under scikit-learn or River (and are
    not denied), are imported: importing a module named by a file would run its code.
    """
    module_name, _, attribute = name.rpartition(".")
    if not module_name or not attribute.isidentifier() or _denied(name):
        return None
    module = sys.modules.get(module_name)
    if module is None:
        parts = module_name.split(".")
        if parts[0] not in _IMPORTABLE_ROOTS or not all(p.isidentifier() for p in parts):
            return None
        try:
            with warnings.catch_warnings():
                # Importing a deprecated submodule warns; that says nothing about trust.
                warnings.simplefilter("ignore")
                module = importlib.import_module(module_name)
        except Exception:
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(module, attribute, None)
    except Exception:
        return None


@functools.cache
def _vetted_functions() -> frozenset[Any]:
    """Functions, beyond ufuncs, that a fitted model may hold (scikit-learn's score functions)."""
    from sklearn import feature_selection as fs

    return frozenset(
        {
            fs.chi2,
            fs.f_classif,
            fs.f_oneway,
            fs.f_regression,
            fs.r_regression,
            fs.mutual_info_classif,
            fs.mutual_info_regression,
        }
    )


def _is_trusted_function(obj: Any) -> bool:
    import numpy as np

    if isinstance(obj, np.ufunc):  # numpy's and scipy.special's: elementwise arithmetic
        return True
    try:
        return obj in _vetted_functions()
    except TypeError:  # unhashable
        return False


def _is_model_class(cls: type) -> bool:
    """Whether ``cls`` is one of the classes a fitted model is made of (see module doc)."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.base import BaseEstimator
    from sklearn.compose import make_column_selector
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.gaussian_process.kernels import Kernel
    from sklearn.tree._tree import Tree

    if issubclass(cls, (BaseEstimator, Kernel)):
        return True
    if cls in (Tree, TreePredictor, _BinMapper, make_column_selector):
        return True
    if cls.__module__ in _LOSS_MODULES:
        return True
    # exact classes, not subclasses: numpy.memmap is an ndarray that opens a file
    if cls in (np.ndarray, np.ma.MaskedArray, np.dtype, np.random.RandomState):
        return True
    if issubclass(cls, (np.dtype, np.generic)):  # numpy.dtypes.*DType, numpy.float64...
        return True
    random = (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)
    if issubclass(cls, random):
        return True
    sparse = (sp.spmatrix, sp.sparray) if hasattr(sp, "sparray") else (sp.spmatrix,)
    if issubclass(cls, sparse) and cls.__module__.startswith("scipy.sparse."):
        return True
    if cls.__module__.startswith("river."):
        from river import base
        from river._river_rust.vectordict import VectorDict

        return issubclass(cls, base.Base) or cls is VectorDict
    return False


def is_trusted_type(name: str, trusted_types: Sequence[str] = ()) -> bool:
    """Whether the type or function ``name`` may be loaded from a skops file.

    Trusted are: the names listed in ``trusted_types`` (exact dotted names), a few builtins and
    ``collections`` types that only hold data, and, inside scikit-learn, NumPy, SciPy and River,
    the classes a fitted estimator is made of and a vetted list of functions (NumPy and SciPy
    ufuncs, scikit-learn's score functions). Never a class or function from a test, I/O or
    packaging module, whatever its package. See the module docstring for the full list.

    Parameters
    ----------
    name
        A dotted name as found in a skops file (``module.Class`` or ``module.function``).
    trusted_types
        Extra names the user trusts (config key ``serialization.trusted_types``).

    Examples
    --------
    >>> is_trusted_type("sklearn.tree._tree.Tree"), is_trusted_type("numpy.log1p")
    (True, True)
    >>> is_trusted_type("numpy.sum")  # a function outside the vetted list
    False
    >>> is_trusted_type("numpy.sum", trusted_types=["numpy.sum"])
    True
    >>> is_trusted_type("numpy._pytesttester.PytestTester")  # a callable class that runs pytest
    False
    >>> is_trusted_type("numpy.memmap"), is_trusted_type("builtins.eval")
    (False, False)
    >>> is_trusted_type("mypackage.MyModel"), is_trusted_type("builtins.frozenset")
    (False, True)
    """
    return name in trusted_types or _in_allowlist(name)


@functools.lru_cache(maxsize=4096)
def _in_allowlist(name: str) -> bool:
    # the answer only depends on the name and the installed packages
    if name in _DATA_TYPES:
        return True
    if name in _OWN_TYPES:
        return _import_own(name)
    if name.partition(".")[0] not in TRUSTED_PACKAGES:
        return False
    obj = _resolve(name)
    if obj is None:
        return False
    if isinstance(obj, type):
        # Check where the class really lives too: a trusted module may re-export others.
        real = f"{obj.__module__}.{obj.__qualname__}"
        if real.partition(".")[0] not in TRUSTED_PACKAGES or _denied(real):
            return False
        return _is_model_class(obj)
    return _is_trusted_function(obj)


def _import_own(name: str) -> bool:
    module_name, _, attribute = name.rpartition(".")
    try:
        return hasattr(importlib.import_module(module_name), attribute)
    except Exception:
        return False


def _names_in_schema(schema: Any, out: set[str]) -> None:
    """Add every name the schema makes skops import, at any depth.

    Every ``__module__``/``__class__`` pair, and what some nodes import besides: the
    ``module.Class.method`` of a bound method, the ``numpy.random.Name`` of a random
    generator's bit generator, the Tree a TreeNode builds, the function a protocol-0
    FunctionNode names in its content. A pure function of the file, so the list recorded at
    save time stays valid whatever skops version loads it.
    """
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > 500:
            raise ValueError("schema.json is nested more than 500 levels deep")
        if isinstance(node, dict):
            module, cls = node.get("__module__"), node.get("__class__")
            loader = node.get("__loader__")
            if isinstance(module, str) and isinstance(cls, str):
                out.add(f"{module}.{cls}")
                content = node.get("content")
                if loader == "MethodNode" and isinstance(content, dict):
                    out.add(f"{module}.{cls}.{content.get('func')}")
                elif loader == "RandomGeneratorNode":
                    out.add(f"numpy.random.{_bit_generator_name(content)}")
                elif loader == "TreeNode":  # builds a Tree whatever the node's name
                    out.add("sklearn.tree._tree.Tree")
                elif loader == "FunctionNode" and isinstance(content, dict):
                    # protocol 0 imports the function named in its content instead
                    out.add(f"{content.get('module_path')}.{content.get('function')}")
            elif loader is not None:
                raise ValueError(f"a node of schema.json has no __module__/__class__: {node!r:.80}")
            stack.extend(
                (value, depth + 1) for value in node.values() if isinstance(value, dict | list)
            )
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node if isinstance(value, dict | list))


def _bit_generator_name(content: Any) -> str:
    # where skops reads it: content.bit_generator.content.bit_generator.content (a JSON str)
    try:
        state = content["bit_generator"]["content"]["bit_generator"]
        name = json.loads(state["content"])
    except (KeyError, TypeError, ValueError):
        return "<unreadable>"
    return name if isinstance(name, str) else "<unreadable>"


def artifact_types(data: bytes) -> list[str]:
    """The sorted names of every type and function a skops file refers to.

    Every ``__module__``/``__class__`` pair in its ``schema.json`` at any depth, plus the
    bound methods and random bit generators it names. This is the list recorded with a model
    version (:func:`types_record`).

    Raises
    ------
    ArtifactIntegrityError
        ``data`` is not a readable skops file.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> names = artifact_types(dump_model(StandardScaler().fit([[0.0], [1.0]])))
    >>> "sklearn.preprocessing._data.StandardScaler" in names, "numpy.ndarray" in names
    (True, True)
    """
    names: set[str] = set()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
        _names_in_schema(schema, names)
    except Exception as exc:
        raise _unreadable(exc) from exc
    return sorted(names)


def _unreadable(exc: Exception) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(
        f"The artifact is not a readable skops file ({type(exc).__name__}: {exc}). Was it "
        "saved with another format (serialization format 'joblib')?"
    )


def types_record(types: Sequence[str] | None) -> dict[str, str]:
    """The ``environment`` entry that records an artifact's types (none for a pickle).

    Examples
    --------
    >>> types_record(["numpy.ndarray", "builtins.dict"])
    {'skops_types': 'builtins.dict numpy.ndarray'}
    >>> recorded_types(types_record(["numpy.ndarray"]))
    ['numpy.ndarray']
    >>> types_record(None), recorded_types({"python": "3.11"}) is None
    ({}, True)
    """
    return {} if types is None else {RECORDED_TYPES_KEY: " ".join(sorted(types))}


def recorded_types(environment: Mapping[str, Any]) -> list[str] | None:
    """The types recorded with a version (``environment``), or None if none were recorded.

    Versions saved before retrainer recorded them (and joblib/pickle versions) have none:
    they are loaded against the allowlist alone.
    """
    value = environment.get(RECORDED_TYPES_KEY)
    return value.split() if isinstance(value, str) else None


_JOBLIB_HINT = (
    "Save it with joblib instead (fmt='joblib'), which needs serialization.allow_pickle: true "
    "in retrainer.yaml to load, and only for artifacts you trust."
)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(
            f"serialization format must be one of {', '.join(map(repr, FORMATS))}. Got {fmt!r}."
        )


def dump_model(model: Any, fmt: str = "skops") -> bytes:
    """Serialize a fitted model to bytes.

    Parameters
    ----------
    model
        The fitted model.
    fmt
        ``"skops"`` (default; safe to load), ``"joblib"`` (pickle; for models skops cannot
        represent, loaded only with ``allow_pickle=True``) or ``"pickle"`` (Python's own
        pickle, protocol 5: ten times faster than joblib on small models, e.g. 0.03 ms
        against 0.34 ms for a scaled logistic regression; the backtest's in-memory format;
        loaded only with ``allow_pickle=True``).

    Raises
    ------
    TrainingError
        The model cannot be saved in ``fmt`` (e.g. it holds a lambda or a local class).
    ConfigError
        ``fmt`` is not a known format.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> data = dump_model(model)
    >>> data[:2]  # a skops file is a zip archive
    b'PK'
    >>> load_model(data).predict([[0.9]])
    array([1])
    """
    _check_format(fmt)
    if fmt == "pickle":
        try:
            return pickle.dumps(model, protocol=5)
        except Exception as exc:
            raise TrainingError(
                f"The model ({type(model).__name__}) cannot be pickled: {type(exc).__name__}: {exc}"
            ) from exc
    if fmt == "joblib":
        import joblib

        buffer = io.BytesIO()
        try:
            joblib.dump(model, buffer)
        except Exception as exc:
            raise TrainingError(
                f"The model ({type(model).__name__}) cannot be saved with joblib: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return buffer.getvalue()

    import skops.io as sio

    try:
        data: bytes = sio.dumps(model)
        # skops writes references to functions and classes it cannot find again (lambdas,
        # classes defined inside a function); such a file would only fail when loaded.
        unloadable = [n for n in sio.get_untrusted_types(data=data) if not _importable(n)]
    except Exception as exc:
        raise TrainingError(
            f"The model ({type(model).__name__}) cannot be saved with skops: "
            f"{type(exc).__name__}: {exc}. {_JOBLIB_HINT}"
        ) from exc
    if unloadable:
        raise TrainingError(
            f"The model ({type(model).__name__}) cannot be saved with skops: it refers to "
            f"{', '.join(unloadable)}, which cannot be imported by name (a lambda, or a function "
            f"or class defined inside a function?). Define them at module level, or: "
            f"{_JOBLIB_HINT}"
        )
    return data


def _importable(name: str) -> bool:
    module_name, _, attribute = name.rpartition(".")
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except Exception:
            return False
    return hasattr(module, attribute)


def load_model(
    data: bytes,
    fmt: str = "skops",
    *,
    trusted_types: Sequence[str] = (),
    allow_pickle: bool = False,
    recorded_types: Sequence[str] | None = None,
) -> Any:
    """Load a model serialized by :func:`dump_model`.

    Parameters
    ----------
    data
        The serialized model (check its sha256 before calling this).
    fmt
        ``"skops"``, ``"joblib"`` or ``"pickle"``.
    trusted_types
        Exact dotted names of extra types to trust in a skops file (config key
        ``serialization.trusted_types``).
    allow_pickle
        Allow loading joblib and pickle files, which can run arbitrary code (config key
        ``serialization.allow_pickle``). Only for artifacts you trust.
    recorded_types
        The types recorded when the model version was saved (:func:`recorded_types`): a skops
        file naming any other type is refused. None (versions saved before retrainer recorded
        them): the allowlist alone decides.

    Raises
    ------
    UntrustedArtifactError
        The skops file holds types that are not trusted (or were not recorded), or a joblib
        file is loaded without ``allow_pickle``. Nothing from the file is constructed.
    ArtifactIntegrityError
        ``data`` is not a file of format ``fmt``, or skops cannot build the model from it.
    ConfigError
        ``fmt`` is not a known format.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> data = dump_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), fmt="joblib")
    >>> load_model(data, fmt="joblib")
    Traceback (most recent call last):
    ...
    retrainer.errors.UntrustedArtifactError: Refusing to load a joblib artifact: ...
    >>> load_model(data, fmt="joblib", allow_pickle=True).predict([[0.9]])
    array([1])

    A skops file whose types are not all among those recorded when it was saved is refused:

    >>> data = dump_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
    >>> load_model(data, recorded_types=["numpy.ndarray"])
    Traceback (most recent call last):
    ...
    retrainer.errors.UntrustedArtifactError: Refusing to load the model: ...
    """
    _check_format(fmt)
    if fmt in ("joblib", "pickle") and not allow_pickle:
        raise UntrustedArtifactError(
            f"Refusing to load a {fmt} artifact: {fmt} files are pickles, and loading a "
            "pickle can run any code it contains. If you trust where this artifact comes "
            "from, set serialization.allow_pickle: true in retrainer.yaml; otherwise save "
            "the model with skops."
        )
    if fmt == "pickle":
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise ArtifactIntegrityError(
                f"the artifact is not a readable pickle: {type(exc).__name__}: {exc}"
            ) from exc
    if fmt == "joblib":
        import joblib

        return joblib.load(io.BytesIO(data))

    import skops.io as sio

    names = artifact_types(data)  # read from the file, nothing built
    _refuse_unrecorded(names, recorded_types)
    try:
        # skops' own view too (it builds its node tree without constructing anything)
        names = sorted(set(names).union(sio.get_untrusted_types(data=data)))
    except Exception as exc:
        raise _unreadable(exc) from exc
    refused = [name for name in names if not is_trusted_type(name, trusted_types)]
    if refused:
        listed = "\n".join(f"  - {name}" for name in refused)
        raise UntrustedArtifactError(
            f"Refusing to load the model: the artifact contains {len(refused)} untrusted "
            f"type(s):\n{listed}\nOnly the classes a fitted model is made of (estimators, "
            "NumPy arrays and dtypes, SciPy sparse matrices, River models), NumPy and SciPy "
            "ufuncs and the types listed in serialization.trusted_types are loaded. If you "
            "trust them, add them to serialization.trusted_types in retrainer.yaml, e.g.\n"
            "serialization:\n  trusted_types:\n" + "\n".join(f"    - {name}" for name in refused)
        )
    try:
        # Every name skops may import or call was checked above, so it is given as trusted:
        # skops' own defaults are wider (any function in a numpy/scipy ufunc list, ...) but
        # cannot add a name the file does not contain.
        return sio.loads(data, trusted=names)
    except Exception as exc:
        raise ArtifactIntegrityError(
            f"The skops artifact cannot be loaded ({type(exc).__name__}: {exc}); it may have "
            "been saved with other versions of the model's packages, or been tampered with."
        ) from exc


def _refuse_unrecorded(names: Sequence[str], recorded: Sequence[str] | None) -> None:
    # No record (a version saved before retrainer recorded the types): the allowlist alone.
    if recorded is None:
        return
    unrecorded = sorted(set(names) - set(recorded))
    if unrecorded:
        listed = "\n".join(f"  - {name}" for name in unrecorded)
        raise UntrustedArtifactError(
            f"Refusing to load the model: the artifact contains {len(unrecorded)} type(s) "
            f"that were not in it when this version was saved:\n{listed}\nThe artifact is "
            "not the file that was registered (replaced or crafted). Restore the original "
            "artifact or promote another version; serialization.trusted_types does not "
            "override this check."
        )
