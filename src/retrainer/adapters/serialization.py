"""Turning fitted models into bytes and back.

skops is the default format: loading it never runs code from the file, and every type in the
file must be trusted. Types that skops itself does not trust are accepted only when they are
classes from scikit-learn, NumPy, SciPy or River (tree predictors and River models need this),
or when the user names them in ``serialization.trusted_types``. joblib (pickle) is supported
for models skops cannot represent, and loading it needs ``serialization.allow_pickle: true``,
because unpickling a file can run any code it contains.

Trusting scikit-learn's classes includes its tree predictors
(``sklearn.tree._tree.Tree``, ``...predictor.TreePredictor``), which skops leaves untrusted
because a crafted file can make their ``predict`` read out of bounds. retrainer accepts that:
it only loads artifacts whose sha256 matches the one recorded when it saved them, and the
blessing sanity check loads each candidate in a separate process first.
"""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from retrainer.errors import (
    ArtifactIntegrityError,
    ConfigError,
    TrainingError,
    UntrustedArtifactError,
)

__all__ = ["FORMATS", "TRUSTED_PACKAGES", "dump_model", "is_trusted_type", "load_model"]

FORMATS = ("skops", "joblib", "pickle")
"""The serialization formats ``dump_model`` and ``load_model`` accept."""

TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy", "river")
"""Packages whose classes are trusted when a skops file is loaded."""

# Builtins that only hold data; skops reports some of them as untrusted in some layouts.
_SAFE_BUILTINS = frozenset(
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
)

# Inside the trusted packages, these modules and classes read or write files (or exist for
# tests), and a skops file can call a trusted class with arguments of its choosing. They are
# trusted only when named exactly in ``trusted_types``.
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
    "numpy.testing",
    "scipy.datasets",
    "scipy.io",
    "scipy._lib._testutils",
    "sklearn.datasets",
    "sklearn.utils._testing",
    "river.datasets",
    "river.stream",
)


# retrainer's own model wrappers: plain holders of a trusted package's model
_OWN_TYPES = frozenset(
    {"retrainer.integrations.river.RiverClassifier", "collections.Counter"}  # Counter: a dict
)


def _denied(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in _DENIED_PREFIXES)


def _resolve(name: str) -> Any:
    """Import the object skops would load for ``name`` (``module.attribute``)."""
    module_name, _, attribute = name.rpartition(".")
    with warnings.catch_warnings():
        # Importing a deprecated submodule warns; that says nothing about trust.
        warnings.simplefilter("ignore")
        module = importlib.import_module(module_name)
    return getattr(module, attribute)


def is_trusted_type(name: str, trusted_types: Sequence[str] = ()) -> bool:
    """Whether a type reported untrusted by skops may be loaded.

    Trusted are: the names listed in ``trusted_types`` (exact dotted names), a few builtins
    that only hold data, and classes (not functions) defined in scikit-learn, NumPy, SciPy or
    River, except the ones that read or write files.

    Parameters
    ----------
    name
        A dotted name as reported by ``skops.io.get_untrusted_types``.
    trusted_types
        Extra names the user trusts (config key ``serialization.trusted_types``).

    Examples
    --------
    >>> is_trusted_type("sklearn.tree._tree.Tree")
    True
    >>> is_trusted_type("numpy.sum")  # a function, not a class
    False
    >>> is_trusted_type("numpy.sum", trusted_types=["numpy.sum"])
    True
    >>> is_trusted_type("numpy.memmap"), is_trusted_type("builtins.eval")
    (False, False)
    >>> is_trusted_type("mypackage.MyModel"), is_trusted_type("builtins.frozenset")
    (False, True)
    """
    if name in trusted_types or name in _SAFE_BUILTINS or name in _OWN_TYPES:
        return True
    if name.partition(".")[0] not in TRUSTED_PACKAGES or _denied(name):
        return False
    try:
        obj = _resolve(name)
    except Exception:
        return False
    if not isinstance(obj, type) or issubclass(obj, io.IOBase):
        return False
    # Check where the class really lives too: a trusted package may re-export others.
    real_name = f"{obj.__module__}.{obj.__qualname__}"
    return real_name.partition(".")[0] in TRUSTED_PACKAGES and not _denied(real_name)


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

    Raises
    ------
    UntrustedArtifactError
        The skops file holds types that are not trusted, or a joblib file is loaded without
        ``allow_pickle``. Nothing from the file is constructed.
    ArtifactIntegrityError
        ``data`` is not a file of format ``fmt``.
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

    import zipfile

    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise ArtifactIntegrityError(
            f"The artifact is not a readable skops file ({type(exc).__name__}: {exc}). Was it "
            "saved with another format (serialization format 'joblib')?"
        ) from exc
    refused = [name for name in untrusted if not is_trusted_type(name, trusted_types)]
    if refused:
        listed = "\n".join(f"  - {name}" for name in refused)
        raise UntrustedArtifactError(
            f"Refusing to load the model: the artifact contains {len(refused)} untrusted "
            f"type(s):\n{listed}\nOnly classes from {', '.join(TRUSTED_PACKAGES)} and the types "
            "listed in serialization.trusted_types are loaded. If you trust them, add them to "
            "serialization.trusted_types in retrainer.yaml, e.g.\n"
            "serialization:\n  trusted_types:\n" + "\n".join(f"    - {name}" for name in refused)
        )
    return sio.loads(data, trusted=untrusted)
