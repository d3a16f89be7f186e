"""Typed specs: a configurable object's parameters declared once, as Pydantic fields.

A :class:`Spec` subclass declares its parameters as annotated fields; from them come its
constructor (which stores the parameters as given, as scikit-learn's estimators do),
``get_params()``, validation with key paths (:meth:`Spec.check_params`, on first use),
``to_spec()`` (the configuration mapping it reads back from), and its JSON schema. A
:class:`Registry` holds one family's kinds (blessing rules, windows, notifiers...) and gives the
family's JSON schema and the union type ``retrainer.yaml`` validates against.

The field types below (:data:`Number`, :data:`Name`, :data:`Flag`, :data:`Count`) check the
value and keep it as given: an integer bound stays an integer, so a config written back
(``to_spec``) or hashed is the one that was read.

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
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Generic, TypeGuard, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from retrainer.errors import ConfigError

__all__ = [
    "Count",
    "Flag",
    "Name",
    "NonNegative",
    "Number",
    "Registry",
    "Spec",
    "describe_errors",
    "is_number",
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
Name = Annotated[str, PlainValidator(_name, json_schema_input_type=str)]
"""A non-empty string (a metric, column or notifier name)."""
Flag = Annotated[bool, PlainValidator(_flag, json_schema_input_type=bool)]
"""``true`` or ``false``, nothing that merely reads as one."""
Count = Annotated[int, PlainValidator(_count, json_schema_input_type=int), _KEEP]
"""An integer ``>= 1`` (not a bool)."""


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = [name for name in type(self).model_fields if name != "kind"]
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
            if name in self.model_fields_set or name == "kind":
                keep |= {name, info.alias or name}
        return {key: value for key, value in data.items() if key in keep}

    @classmethod
    def spec_kind(cls) -> str:
        """The name of this class in its family's :class:`Registry`: its ``kind`` field's
        value, or its ``kind`` class attribute (blessing rules, whose keys tell the kind)."""
        field = cls.model_fields.get("kind")
        return str(field.default) if field is not None else str(getattr(cls, "kind", ""))

    def get_params(self) -> dict[str, Any]:
        """The parameters, as given (defaults filled in); ``kind`` is not one of them."""
        return {name: getattr(self, name) for name in type(self).model_fields if name != "kind"}

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


S = TypeVar("S", bound=Spec)


class Registry(Generic[S]):
    """One family of specs by kind, derived from the union type that lists them.

    Parameters
    ----------
    family
        What a member is called in messages (``"blessing rule"``).
    union
        The union of the member classes, possibly inside ``Annotated`` (with a discriminator):
        the type configuration fields use.

    Examples
    --------
    >>> from typing import ClassVar
    >>> class Min(Spec):
    ...     kind: ClassVar[str] = "min"
    ...     value: Number
    >>> class Max(Spec):
    ...     kind: ClassVar[str] = "max"
    ...     value: Number
    >>> bounds = Registry("bound", Min | Max)
    >>> bounds.kinds, bounds["max"].__name__
    (('min', 'max'), 'Max')
    >>> sorted(bounds.keys("min"))
    ['value']
    """

    def __init__(self, family: str, union: Any) -> None:
        self.family = family
        self.union = union
        members = get_args(union)
        if members and getattr(union, "__metadata__", None) is not None:
            members = get_args(members[0])  # Annotated[A | B, ...]
        classes = [get_args(m)[0] if get_args(m) else m for m in members]  # Annotated[A, Tag]
        self._classes: dict[str, type[S]] = {cls.spec_kind(): cls for cls in classes}

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds, in the order the union lists them."""
        return tuple(self._classes)

    def __getitem__(self, kind: str) -> type[S]:
        return self._classes[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._classes

    def __iter__(self) -> Iterator[type[S]]:
        return iter(self._classes.values())

    def keys(self, kind: str) -> tuple[str, ...]:
        """The configuration keys a kind takes (its fields, by their aliases)."""
        fields = self._classes[kind].model_fields
        return tuple(info.alias or name for name, info in fields.items())

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of one member of the family (any kind)."""
        return TypeAdapter(self.union).json_schema(by_alias=True)

    def build(self, kind: str, spec: Mapping[str, Any], where: str | None = None) -> S:
        """Validate ``spec`` as a ``kind`` and build it.

        ConfigError lines name ``where.<parameter>`` (``where`` defaults to the class name).
        """
        cls = self._classes[kind]
        try:
            return cls.model_validate(dict(spec))
        except ValidationError as exc:
            lines = describe_errors(exc, where or cls.__name__, cls.param_names())
            if where:  # a check of several parameters names the class, not where it sits
                lines = [line if line.startswith(where) else f"{where}: {line}" for line in lines]
            raise ConfigError("; ".join(lines), lines) from None
