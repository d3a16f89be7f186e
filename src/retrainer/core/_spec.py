"""Typed specs: a configurable object's parameters declared once, as Pydantic fields.

A :class:`Spec` subclass declares its parameters as annotated fields; from them come its
constructor (which stores the parameters as given, as scikit-learn's estimators do),
``get_params()``, validation with key paths (:meth:`Spec.check_params`, on first use),
``to_spec()`` (the configuration mapping it reads back from), and its JSON schema. A
:class:`Registry` holds one family's kinds (blessing rules, windows, notifiers...) and gives the
family's JSON schema and the union type ``retrainer.yaml`` validates against.

The field types below (:data:`Number`, :data:`Name`, :data:`Flag`, :data:`Count`) check the
value and keep it as given: an integer bound stays an integer, so a config written back
(``to_spec``) or hashed is the one that was read. The types of the triggers' and guards'
parameters (:data:`Duration`, :data:`TimeZone`, :data:`OptionalNumber`, :data:`ColumnNames`...)
also give the value to use once validated (a ``timedelta``, a ``ZoneInfo``, a float, a tuple):
the object keeps the value as given, and validating its parameters gives the converted ones
(see ``retrainer.core.triggers.base.TriggerSpec.checked``).

Examples
--------
>>> from typing import ClassVar
>>> class Above(Spec):
...     kind: ClassVar[str] = "above"
...     metric: Name
...     value: Number
...     def describe(self) -> str:
...         return f"{self.metric} above {self.value:g}"
>>> rule = Above("ctr", value="high")  # stored as given
>>> rule.check_params()
Traceback (most recent call last):
...
retrainer.errors.ConfigError: Above.value must be a finite number; got 'high'
>>> Above("ctr", 2).to_spec(), Above("ctr", 2).describe()
({'metric': 'ctr', 'value': 2}, 'ctr above 2')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, ClassVar, TypeGuard, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from retrainer.errors import ConfigError

__all__ = [
    "ColumnNames",
    "Count",
    "DefaultName",
    "Duration",
    "Flag",
    "MetricName",
    "Name",
    "NonNegative",
    "Number",
    "OptionalCount",
    "OptionalNumber",
    "PositiveNumber",
    "Registry",
    "Share",
    "Spec",
    "TimeZone",
    "describe_errors",
    "is_int",
    "is_number",
    "names_of",
    "tail_error",
]


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a finite int or float (``True``/``False`` are not numbers).

    Examples
    --------
    >>> is_number(3), is_number(0.5), is_number(True), is_number(float("nan")), is_number("1")
    (True, True, False, False, False)
    """
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an int (``True``/``False`` are not).

    Examples
    --------
    >>> is_int(3), is_int(True), is_int(3.0)
    (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("retrainer", message)


def _number(value: Any) -> Any:
    if not is_number(value):
        raise _fail("must be a finite number")
    return value


def _non_negative(value: Any) -> Any:
    if not is_number(value) or value < 0:
        raise _fail("must be >= 0 (a finite number)")
    return value


def _name(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise _fail("must be a non-empty string")
    return value


def _flag(value: Any) -> Any:
    if not isinstance(value, bool):
        raise _fail("must be true or false")
    return value


def _count(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail("must be an integer >= 1")
    return value


def _as_given(value: Any) -> Any:
    return value


_KEEP = PlainSerializer(_as_given, return_type=Any)

Number = Annotated[float, PlainValidator(_number, json_schema_input_type=float), _KEEP]
"""A finite int or float (not a bool), kept as given."""
NonNegative = Annotated[float, PlainValidator(_non_negative, json_schema_input_type=float), _KEEP]
"""A finite int or float ``>= 0``, kept as given."""
Name = Annotated[str, PlainValidator(_name), WithJsonSchema({"type": "string", "minLength": 1})]
"""A non-empty string (a metric, column or notifier name)."""
Flag = Annotated[bool, PlainValidator(_flag, json_schema_input_type=bool)]
"""``true`` or ``false``, nothing that merely reads as one."""
Count = Annotated[
    int, PlainValidator(_count), WithJsonSchema({"type": "integer", "minimum": 1}), _KEEP
]
"""An integer ``>= 1`` (not a bool)."""


# --- types that convert: the validated value is the one to use (a duration as a timedelta) ---
# The parameter stays as given on the object; ``Spec.model_validate(obj.get_params())`` gives the
# converted values (triggers and guards remember them, see core.triggers.base.TriggerSpec).


def tail_error(tail: str) -> PydanticCustomError:
    """A validation error whose message follows ``Owner.param`` verbatim (``" must be ...; got
    x"``, ``": invalid duration ..."``): for messages that say which item of a value is wrong."""
    return PydanticCustomError("retrainer_tail", tail)


def _optional_number(*, positive: bool = False, upto_one: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> float | None:
        if value is None:
            return None
        if not is_number(value):
            raise tail_error(f" must be a finite number or None; got {value!r}")
        if positive and value <= 0:
            raise tail_error(f" must be > 0; got {value!r}")
        if upto_one and not 0 < value <= 1:
            raise tail_error(f" must be in (0, 1]; got {value!r}")
        return float(value)

    return check


def _duration(value: Any) -> timedelta:
    from retrainer.core.windows import parse_duration  # core.windows builds on this module

    if isinstance(value, str):
        try:
            span = parse_duration(value)
        except ConfigError as exc:
            raise tail_error(f": {exc}") from None
    elif isinstance(value, timedelta):
        span = value
    else:
        raise tail_error(
            f" must be a duration such as '1d' or '6h' (or a timedelta); got {value!r}"
        )
    if span <= timedelta(0) or span % timedelta(seconds=1):
        raise tail_error(f" must be a positive duration in whole seconds; got {value!r}")
    return span


def _names(allowed: tuple[str, ...] | None) -> Callable[[Any], tuple[str, ...]]:
    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise tail_error(f" must be a list of names (e.g. ['price', 'region']); got {value!r}")
        names = tuple(value)
        for item in names:
            if not isinstance(item, str) or not item:
                raise tail_error(f" must hold non-empty strings; got {item!r}")
            if allowed is not None and item not in allowed:
                raise tail_error(f" may only hold {', '.join(allowed)}; got {item!r}")
        if len(set(names)) != len(names):
            raise tail_error(f" lists a name twice; got {value!r}")
        return names

    return check


def _metric_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise tail_error(f" must be a metric name; got {value!r}")
    return value


def _optional_name(value: Any) -> Any:
    return value if value is None else _name(value)


def _timezone(value: Any) -> ZoneInfo:
    try:
        if not isinstance(value, str):
            raise TypeError
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise tail_error(
            f" must be an IANA time zone name such as 'UTC' or 'Europe/Paris'; got {value!r}"
        ) from None


def _schema(schema: dict[str, Any]) -> WithJsonSchema:
    # the schema editors show: exactly what the validator accepts (``minimum``, ``pattern``...)
    return WithJsonSchema(schema)


_DURATION_SCHEMA = {
    "type": "string",
    "pattern": r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$",
    "description": "A duration: weeks, days, hours, minutes, seconds, e.g. '1d', '6h', '1d12h'.",
    "examples": ["1d", "6h"],
}

DefaultName = Annotated[
    str, PlainValidator(_optional_name), _schema({"type": "string", "minLength": 1})
]
"""A trigger's name: a non-empty string, or None when not given; the object then sets its
default in its constructor, so it is a ``str`` once built. Declared ``= Field(None,
validate_default=True)`` (None is not a ``str``; the validator accepts it)."""
MetricName = Annotated[
    str, PlainValidator(_metric_name), _schema({"type": "string", "minLength": 1})
]
"""A metric's name."""
OptionalNumber = Annotated[
    float | None, PlainValidator(_optional_number()), _schema({"type": "number"})
]
"""A finite number (used as a float), or None."""
PositiveNumber = Annotated[
    float | None,
    PlainValidator(_optional_number(positive=True)),
    _schema({"type": "number", "exclusiveMinimum": 0}),
]
"""A finite number ``> 0`` (used as a float), or None."""
Share = Annotated[
    float | None,
    PlainValidator(_optional_number(upto_one=True)),
    _schema({"type": "number", "exclusiveMinimum": 0, "maximum": 1}),
]
"""A number in ``(0, 1]`` (used as a float), or None."""
Duration = Annotated[str | timedelta, PlainValidator(_duration), _schema(_DURATION_SCHEMA)]
"""A duration such as ``"1d"`` or a timedelta, positive, in whole seconds (used as a timedelta)."""
ColumnNames = Annotated[
    tuple[str, ...] | list[str],
    PlainValidator(_names(None)),
    _schema({"type": "array", "items": {"type": "string", "minLength": 1}}),
]
"""A list of distinct non-empty names (used as a tuple)."""
TimeZone = Annotated[
    str,
    PlainValidator(_timezone),
    _schema(
        {
            "type": "string",
            "description": "An IANA time zone name.",
            "examples": ["UTC", "Europe/Paris"],
        }
    ),
]
"""An IANA time zone name (used as a ZoneInfo)."""


OptionalCount = Annotated[
    int | None,
    PlainValidator(lambda v: v if v is None else _count(v)),
    _schema({"type": "integer", "minimum": 1}),
]
"""An integer ``>= 1`` (not a bool), or None."""


def names_of(allowed: tuple[str, ...]) -> Any:
    """The type of a list of names among ``allowed``, each at most once (used as a tuple)."""
    schema = {"type": "array", "items": {"enum": list(allowed)}, "uniqueItems": True}
    return Annotated[tuple[str, ...] | list[str], PlainValidator(_names(allowed)), _schema(schema)]


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'target'?"`` for a near miss among ``known``, else ``""``.

    Examples
    --------
    >>> did_you_mean("targt", ["target", "features"]), did_you_mean("zzz", ["target"])
    ("; did you mean 'target'?", '')
    """
    import difflib

    close = difflib.get_close_matches(str(word), list(known), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def describe_errors(
    exc: ValidationError, owner: str, names: Mapping[str, str] | None = None
) -> list[str]:
    """One line per problem of a spec's validation, each naming the parameter and the value.

    ``names`` maps configuration keys to the parameter names to show (``slice`` -> ``column``).

    Examples
    --------
    >>> try:
    ...     TypeAdapter(Number).validate_python("1.5")
    ... except ValidationError as exc:
    ...     describe_errors(exc, "Rule.min")
    ["Rule.min must be a finite number; got '1.5'"]
    """
    lines = []
    for err in exc.errors():
        path = owner
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{(names or {}).get(part, part)}"
        message = str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"] and err["type"] == "value_error":
            lines.append(message)  # a check of several parameters says which itself
        elif err["type"] == "extra_forbidden":
            lines.append(f"{path} is not a parameter of {owner.split('.')[0]}")
        elif err["type"] == "missing":
            lines.append(f"{path} is required")
        elif err["type"] == "retrainer_tail":  # the message says what was got itself
            lines.append(f"{path}{message}")
        elif message.startswith("must") and err["type"] != "retrainer_secret":
            lines.append(f"{path} {message}; got {err['input']!r}")
        elif message.startswith("must"):  # a value that may hold a secret is not repeated
            lines.append(f"{path} {message}")
        else:
            lines.append(f"{path}: {message}")
    return lines


class Spec(BaseModel):
    """Base class of the configurable objects whose parameters are declared as fields.

    - ``Cls(*args, **kwargs)`` stores the parameters as given (positional ones in field order,
      ``kind`` excepted), without checking them; :meth:`check_params` checks them (the objects call
      it on first use), and ``Cls.model_validate(mapping)`` checks while building, which is how
      ``retrainer.yaml`` reads them;
    - a spec dumps (``model_dump``, :meth:`to_spec`) only the parameters it was given, so a
      configuration read and written back is the one that was read;
    - :meth:`describe` says in a few words what the object does.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        serialize_by_alias=True,
        arbitrary_types_allowed=True,
        frozen=False,
    )

    kind_key: ClassVar[str] = "kind"
    """The field naming the kind, when the family has one (deployment policies: ``strategy``)."""
    example: ClassVar[Mapping[str, Any] | None] = None
    """A configuration mapping of this kind (tested to build and round-trip)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = [name for name in type(self).model_fields if name != self.kind_key]
        if len(args) > len(names):
            raise TypeError(
                f"{type(self).__name__} takes at most {len(names)} positional parameters "
                f"({', '.join(names)}); got {len(args)}"
            )
        for name, value in zip(names, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got two values for {name!r}")
            kwargs[name] = value
        unknown = [key for key in kwargs if key not in type(self).model_fields]
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are {', '.join(names)}"
            )
        missing = [
            name
            for name, info in type(self).model_fields.items()
            if info.is_required() and name not in kwargs
        ]
        if missing:
            raise TypeError(f"{type(self).__name__} needs {', '.join(map(repr, missing))}")
        built = type(self).model_construct(**kwargs)
        for attr in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__"):
            object.__setattr__(self, attr, getattr(built, attr))
        object.__setattr__(self, "__pydantic_private__", built.__pydantic_private__)

    # Pydantic calls an overridden __init__ from model_validate (and then would not validate);
    # marked as the base one, model_validate validates and direct construction stores as given.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        keep: set[str] = set()
        for name, info in type(self).model_fields.items():
            if name in self.model_fields_set or name == self.kind_key:
                keep |= {name, info.alias or name}
        return {key: value for key, value in data.items() if key in keep}

    @classmethod
    def spec_kind(cls) -> str:
        """The name of this class in its family's :class:`Registry`: its ``kind`` field's
        value, or its ``kind`` class attribute (blessing rules, whose keys tell the kind)."""
        field = cls.model_fields.get(cls.kind_key)
        return str(field.default) if field is not None else str(getattr(cls, "kind", ""))

    def get_params(self) -> dict[str, Any]:
        """The parameters, as given (defaults filled in); ``kind`` is not one of them."""
        kind = self.kind_key
        return {name: getattr(self, name) for name in type(self).model_fields if name != kind}

    def check_params(self) -> None:
        """Check the parameters; raise ConfigError with one line per problem."""
        try:
            type(self).model_validate(self.get_params())
        except ValidationError as exc:
            lines = describe_errors(exc, type(self).__name__, type(self).param_names())
            raise ConfigError("; ".join(lines), lines) from None

    @classmethod
    def param_names(cls) -> dict[str, str]:
        """Configuration key -> parameter name, for the keys that differ (``slice``)."""
        return {info.alias: name for name, info in cls.model_fields.items() if info.alias}

    def to_spec(self) -> dict[str, Any]:
        """The configuration mapping of this object: the parameters given, by their keys."""
        return dict(self.model_dump(by_alias=True, exclude_none=True))

    def describe(self) -> str:
        """A few words saying what this object does (shown in reports and the CLI)."""
        raise NotImplementedError

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON schema of the configuration mapping (``to_spec``'s form)."""
        return cls.model_json_schema(by_alias=True)


S = TypeVar("S")


def _kind_of(cls: Any) -> str:
    return str(cls.spec_kind())


class Registry(Mapping[str, type[S]]):
    """One family of configurable classes by kind: ``kind -> class``, a read-only mapping.

    Every family (triggers, guards, blessing rules, windows, notifiers, deployment policies) has
    one; each member class says its kind (``spec_kind()``) and gives an ``example`` mapping.

    Parameters
    ----------
    family
        What a member is called in messages (``"blessing rule"``).
    union
        The union of the member classes, possibly inside ``Annotated`` (with a discriminator).
    config_type
        Builds the type of one configuration mapping of the family, for validation and the
        JSON schema (default: ``union``, the members being Pydantic models of that mapping).
        Called when a schema is asked for.
    builder
        ``builder(spec, where)`` builds a member from its configuration mapping, for families
        whose mapping names its kind by a key (default: the kind's model validates ``spec``).

    Examples
    --------
    >>> class Min(Spec):
    ...     kind: ClassVar[str] = "min"
    ...     value: Number
    >>> class Max(Spec):
    ...     kind: ClassVar[str] = "max"
    ...     value: Number
    >>> bounds = Registry("bound", Min | Max)
    >>> bounds.kinds, bounds["max"].__name__, list(bounds)
    (('min', 'max'), 'Max', ['min', 'max'])
    >>> bounds.config_keys("min")
    ('value',)
    >>> bounds.build("max", {"value": "x"})
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: Max.value must be a finite number; got 'x'
    """

    def __init__(
        self,
        family: str,
        union: Any,
        config_type: Callable[[], Any] | None = None,
        builder: Callable[[Mapping[str, Any], str | None], S] | None = None,
    ) -> None:
        self.family = family
        self.union = union
        members = get_args(union) or (union,)
        if get_args(union) and getattr(union, "__metadata__", None) is not None:
            members = get_args(members[0]) or (members[0],)  # Annotated[A | B, ...]
        classes = [get_args(m)[0] if get_args(m) else m for m in members]  # Annotated[A, Tag]
        self._classes: dict[str, type[S]] = {_kind_of(cls): cls for cls in classes}
        self._config_type = config_type
        self._builder = builder

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds, in the order the union lists them."""
        return tuple(self._classes)

    def __getitem__(self, kind: str) -> type[S]:
        return self._classes[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    # one registry per family: compared (and hashed) by identity, usable as a key
    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, kinds={list(self._classes)})"

    def config_keys(self, kind: str) -> tuple[str, ...]:
        """The configuration keys a kind takes (a model's fields by their aliases, or the keys
        the class lists itself)."""
        cls: Any = self._classes[kind]
        if hasattr(cls, "spec_keys"):
            return tuple(cls.spec_keys())
        return tuple(info.alias or name for name, info in cls.model_fields.items())

    def config_type(self) -> Any:
        """The type of one configuration mapping of the family (any kind)."""
        return self._config_type() if self._config_type is not None else self.union

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of one configuration mapping of the family (any kind)."""
        return TypeAdapter(self.config_type()).json_schema(by_alias=True)

    def build(self, kind: str, spec: Mapping[str, Any], where: str | None = None) -> S:
        """Validate ``spec`` as a ``kind`` and build it.

        ConfigError lines name ``where.<parameter>`` (``where`` defaults to the class name).
        """
        if self._builder is not None:
            return self._builder(spec, where)
        cls: Any = self._classes[kind]
        try:
            built: S = cls.model_validate(dict(spec))
        except ValidationError as exc:
            lines = describe_errors(exc, where or cls.__name__, cls.param_names())
            if where:  # a check of several parameters names the class, not where it sits
                lines = [line if line.startswith(where) else f"{where}: {line}" for line in lines]
            raise ConfigError("; ".join(lines), lines) from None
        return built
