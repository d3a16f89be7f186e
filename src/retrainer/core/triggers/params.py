"""Parameters declared once: the ``__init__`` signature of a trigger or guard is its spec.

As in scikit-learn, ``__init__`` stores its keyword parameters as given and nothing else.
Each parameter's annotation carries a :class:`Check` (``Annotated[int, Check(...)]``): how to
validate it (with a message naming the parameter, the value and what is expected) and its
JSON schema. From the signature alone :class:`Configurable` derives ``get_params()``,
validation on first use, ``to_spec()`` and the parsing of a configuration mapping
(``from_spec``), and :mod:`retrainer.core.triggers.spec` derives the JSON schema: adding a
parameter to a trigger is adding it to its ``__init__`` (and using it).

Examples
--------
>>> from retrainer.core.triggers import MetricTrigger
>>> [p.name for p in MetricTrigger.parameters()][:3]
['metric', 'below', 'above']
>>> MetricTrigger("ctr", below="1.91%").needs()
Traceback (most recent call last):
...
retrainer.errors.ConfigError: MetricTrigger.below must be a finite number or None; got '1.91%'
"""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from retrainer.core.triggers.base import Needs, _format_duration, _is_int, _is_number, _plain
from retrainer.core.windows import parse_duration
from retrainer.errors import ConfigError

__all__ = ["Check", "Configurable", "Parameter"]


class Invalid(Exception):
    """A parameter value is wrong; ``tail`` follows ``Owner.param`` in the message."""

    def __init__(self, tail: str) -> None:
        super().__init__(tail)
        self.tail = tail


@dataclass(frozen=True, slots=True)
class Check:
    """How a parameter is validated (``validate`` returns the value to use) and its schema.

    The JSON schema is what editors show for the key of ``retrainer.yaml``; the validation
    runs in :meth:`Configurable.checked`, which names the parameter in the message.
    """

    validate: Callable[[Any], Any]
    schema: Mapping[str, Any] = field(default_factory=dict)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return dict(self.schema)


# --- the parameter types -----------------------------------------------------------------------


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f" must be a non-empty string; got {value!r}")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f" must be true or false; got {value!r}")
    return value


def _count(minimum: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if not _is_int(value) or value < minimum:
            raise Invalid(f" must be an integer >= {minimum}; got {value!r}")
        return value

    return check


def _number(*, positive: bool = False, upto_one: bool = False) -> Callable[[object], float | None]:
    def check(value: object) -> float | None:
        if value is None:
            return None
        if not _is_number(value):
            raise Invalid(f" must be a finite number or None; got {value!r}")
        if positive and value <= 0:
            raise Invalid(f" must be > 0; got {value!r}")
        if upto_one and not 0 < value <= 1:
            raise Invalid(f" must be in (0, 1]; got {value!r}")
        return float(value)

    return check


def _duration(value: object) -> timedelta:
    if isinstance(value, str):
        try:
            span = parse_duration(value)
        except ConfigError as exc:
            raise Invalid(f": {exc}") from None
    elif isinstance(value, timedelta):
        span = value
    else:
        raise Invalid(f" must be a duration such as '1d' or '6h' (or a timedelta); got {value!r}")
    if span <= timedelta(0) or span % timedelta(seconds=1):
        raise Invalid(f" must be a positive duration in whole seconds; got {value!r}")
    return span


def _names(allowed: Sequence[str] | None) -> Callable[[object], tuple[str, ...]]:
    def check(value: object) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise Invalid(f" must be a list of names (e.g. ['price', 'region']); got {value!r}")
        names = tuple(value)
        for item in names:
            if not isinstance(item, str) or not item:
                raise Invalid(f" must hold non-empty strings; got {item!r}")
            if allowed is not None and item not in allowed:
                raise Invalid(f" may only hold {', '.join(allowed)}; got {item!r}")
        if len(set(names)) != len(names):
            raise Invalid(f" lists a name twice; got {value!r}")
        return names

    return check


def _metric_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(f" must be a metric name; got {value!r}")
    return value


def _timezone(value: object) -> ZoneInfo:
    try:
        if not isinstance(value, str):
            raise TypeError
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise Invalid(
            f" must be an IANA time zone name such as 'UTC' or 'Europe/Paris'; got {value!r}"
        ) from None


_DURATION_SCHEMA = {
    "type": "string",
    "pattern": r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$",
    "description": "A duration: weeks, days, hours, minutes, seconds, e.g. '1d', '6h', '1d12h'.",
    "examples": ["1d", "6h"],
}

Name = Annotated[str, Check(_name, {"type": "string", "minLength": 1})]
"""A trigger's name: keys its state and its run keys."""
OptionalName = Annotated[
    str | None, Check(lambda v: v if v is None else _name(v), {"type": "string", "minLength": 1})
]
Flag = Annotated[bool, Check(_flag, {"type": "boolean"})]
PositiveInt = Annotated[int, Check(_count(1), {"type": "integer", "minimum": 1})]
OptionalPositiveInt = Annotated[
    int | None,
    Check(lambda v: v if v is None else _count(1)(v), {"type": "integer", "minimum": 1}),
]
Number = Annotated[float | None, Check(_number(), {"type": "number"})]
PositiveNumber = Annotated[
    float | None, Check(_number(positive=True), {"type": "number", "exclusiveMinimum": 0})
]
Share = Annotated[
    float | None,
    Check(_number(upto_one=True), {"type": "number", "exclusiveMinimum": 0, "maximum": 1}),
]
_DURATION_CHECK = Check(_duration, _DURATION_SCHEMA)
Duration = Annotated[str | timedelta, _DURATION_CHECK]
ColumnNames = Annotated[
    Sequence[str],
    Check(_names(None), {"type": "array", "items": {"type": "string", "minLength": 1}}),
]
MetricName = Annotated[str, Check(_metric_name, {"type": "string", "minLength": 1})]
TimeZone = Annotated[
    str,
    Check(
        _timezone,
        {
            "type": "string",
            "description": "An IANA time zone name.",
            "examples": ["UTC", "Europe/Paris"],
        },
    ),
]


def names_of(allowed: Sequence[str]) -> Check:
    """A list of names among ``allowed`` (each at most once)."""
    schema = {"type": "array", "items": {"enum": list(allowed)}, "uniqueItems": True}
    return Check(_names(allowed), schema)


# --- the machinery -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parameter:
    """One constructor parameter: its name, default (``inspect.Parameter.empty`` if
    required), annotation (``Annotated`` metadata included) and :class:`Check`."""

    name: str
    default: Any
    annotation: Any
    check: Check | None

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


Layout = Literal["flat", "nested", "value", "list"]


class Configurable:
    """scikit-learn's contract, derived from the ``__init__`` signature.

    Subclasses set ``kind`` (the key that names them in ``retrainer.yaml``) and ``layout``:
    how their mapping is written:

    - ``"flat"``: the first parameter under the kind key, the others beside it
      (``{"schedule": "@daily", "timezone": "UTC"}``);
    - ``"nested"``: the parameters other than ``name`` in a mapping under the kind key
      (``{"drift": {"share": 0.5}}``);
    - ``"value"``: the one parameter under the kind key (``{"cooldown": "6h"}``);
    - ``"list"``: child triggers under the kind key (``{"any": [...]}``).

    ``always`` lists parameters ``to_spec`` writes even at their default; ``example`` is a
    configuration mapping, shown in error messages and in the JSON schema (and every
    registered class's is tested to build and round-trip).
    """

    kind: ClassVar[str]
    layout: ClassVar[Layout] = "nested"
    always: ClassVar[frozenset[str]] = frozenset()
    example: ClassVar[Mapping[str, Any] | None] = None
    name: str

    _parameters: ClassVar[tuple[Parameter, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # read once per class: get_params runs at every evaluation
        hints = typing.get_type_hints(cls.__init__, include_extras=True)
        out = []
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            annotation = hints.get(p.name, Any)
            checks = [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Check)]
            out.append(Parameter(p.name, p.default, annotation, checks[0] if checks else None))
        cls._parameters = tuple(out)

    @classmethod
    def parameters(cls) -> tuple[Parameter, ...]:
        """The constructor parameters, in order (``*args`` and ``**kwargs`` left out)."""
        return cls._parameters

    def default_name(self) -> str:
        """The name when none is given: the kind."""
        return self.kind

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters as stored (``name`` resolved to its default)."""
        return {p.name: getattr(self, p.name) for p in self.parameters()}

    def checked(self) -> dict[str, Any]:
        """The parameters validated and converted (durations to ``timedelta``...).

        Raises
        ------
        ConfigError
            Naming the class, the parameter, the value given and what is expected.
        """
        params = self.get_params()
        # re-checked only when a parameter changed: the controller evaluates every tick
        memo = self.__dict__.get("_checked_memo")
        if memo is not None and memo[0] == params:
            return dict(memo[1])
        owner = type(self).__name__
        values: dict[str, Any] = {}
        for p in self.parameters():
            value = params[p.name]
            try:
                values[p.name] = p.check.validate(value) if p.check is not None else value
            except Invalid as exc:
                raise ConfigError(f"{owner}.{p.name}{exc.tail}") from None
        self._check(values)
        self.__dict__["_checked_memo"] = (params, values)
        return dict(values)

    def _check(self, values: dict[str, Any]) -> None:
        """Rules between parameters (raise ConfigError); the parameters are valid one by one."""

    def describe(self) -> str:
        """One short human line, e.g. ``"daily"`` or ``"500 new rows"``."""
        raise NotImplementedError  # pragma: no cover

    def needs(self) -> Needs:
        """What it reads from the context (and validates the parameters)."""
        raise NotImplementedError  # pragma: no cover

    # --- configuration mappings ---

    def _written(self) -> dict[str, Any]:
        """The parameters ``to_spec`` writes: those not at their default, as YAML values."""
        out: dict[str, Any] = {}
        for p in self.parameters():
            value = getattr(self, p.name)
            if p.name == "name":
                if value != self.default_name():
                    out["name"] = value
                continue
            if p.name not in self.always and not p.required and _plain(value) == p.default:
                continue
            if isinstance(value, timedelta):
                value = _format_duration(value)
            elif isinstance(value, list | tuple):
                value = list(value)
            out[p.name] = value
        return out

    def to_spec(self) -> dict[str, Any]:
        """The configuration mapping, parameters at their default left out."""
        written = self._written()
        name = {"name": written.pop("name")} if "name" in written else {}
        if self.layout == "flat":
            first = self.parameters()[0].name
            return {self.kind: written.pop(first), **written, **name}
        if self.layout == "value":
            [value] = written.values()
            return {self.kind: value}
        return {self.kind: written, **name}

    @classmethod
    def spec_keys(cls) -> tuple[str, ...]:
        """The keys of the mapping (the kind key first)."""
        names = [p.name for p in cls.parameters()]
        if cls.layout == "flat":
            return (cls.kind, *names[1:])
        return (cls.kind, "name") if "name" in names else (cls.kind,)

    @classmethod
    def body_keys(cls) -> tuple[str, ...]:
        """The keys of the mapping under the kind key (``"nested"`` layout)."""
        return tuple(p.name for p in cls.parameters() if p.name != "name")

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], where: str, build: Callable[..., Any] | None = None
    ) -> Configurable:
        """Build from a mapping whose keys were checked against :meth:`spec_keys`
        (``build`` reads a child trigger, for combinators)."""
        params = {k: v for k, v in spec.items() if k != cls.kind}
        value = spec[cls.kind]
        make: Callable[..., Configurable] = cls
        if cls.layout == "flat":
            return make(value, **params)
        if cls.layout == "value":
            return make(value)
        return make(**_body(cls, value, where), **params)

    # --- equality and repr, by parameters ---

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, Configurable):
            return NotImplemented
        return self._comparable() == other._comparable()

    __hash__ = None  # type: ignore[assignment]  # mutable parameters, as in scikit-learn

    def _comparable(self) -> dict[str, Any]:
        out = {}
        durations = {p.name for p in self.parameters() if p.check is _DURATION_CHECK}
        for key, value in self.get_params().items():
            if key in durations and isinstance(value, str):
                with contextlib.suppress(ConfigError):  # an invalid one compares as written
                    value = parse_duration(value)
            out[key] = _plain(value)
        return out


def _keys_text(keys: Sequence[str]) -> str:
    return ", ".join(keys) if keys else "no keys"


def _body(cls: type[Configurable], value: object, where: str) -> dict[str, Any]:
    """The mapping under the kind key of a ``"nested"`` spec, its keys checked."""
    kind = cls.kind
    allowed = cls.body_keys()
    required = [p.name for p in cls.parameters() if p.required]
    if value is None and not required:
        value = {}
    if not isinstance(value, Mapping):
        if required:  # a guard: named in the message by its caller
            raise ConfigError(
                f"{kind} must be a mapping such as {(cls.example or {}).get(kind)!r}; got {value!r}"
            )
        raise ConfigError(
            f"{where}.{kind} must be a mapping of its settings ({{}} for none); got {value!r}"
        )
    unknown = [k for k in value if k not in allowed]
    missing = [k for k in required if k not in value]
    if required and (unknown or missing):
        raise ConfigError(
            f"{kind} takes {' and '.join(allowed)}; "
            + (f"unknown key(s) {', '.join(map(repr, unknown))}" if unknown else "")
            + ("; " if unknown and missing else "")
            + (f"missing {', '.join(map(repr, missing))}" if missing else "")
            + f". Got {dict(value)!r}"
        )
    if unknown:
        raise ConfigError(
            f"{where}.{kind} has unknown key(s) {', '.join(map(repr, unknown))}; it takes "
            f"{_keys_text(allowed)}. Got {dict(value)!r}"
        )
    return dict(value)
