"""Options declared once: a config dataclass field carries its type, default, choices and help text.

A config class (``MiningConfig``, ``TrainingConfig``) subclasses :class:`Options`; its fields are made with
:func:`option`. From that one declaration come the checks of a mapping read from YAML or a component's
``init_parameters`` (:func:`from_mapping`: unknown keys and wrong types are named), the command-line flags
(:func:`add_arguments`, :func:`from_arguments`) and the component's ``to_dict`` (:func:`to_mapping`). Plain
Python, no Haystack.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from typing import Any, Literal, Mapping, Sequence, TypeVar, get_args, get_origin

T = TypeVar("T", bound="Options")


class ConfigError(ValueError):
    """A config that cannot be used: the message names the section, the key and what is accepted."""


def option(default: Any = dataclasses.MISSING, *, help: str, choices: Sequence[Any] | None = None,
           flag: str | None = None, negative_flag: str | None = None, metavar: Any = None, cli: bool = True,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """A config field. ``choices``: the accepted values (else read from a ``Literal`` type); ``flag``: the
    command-line flag when it is not ``--field-name``; ``negative_flag``: for a boolean that defaults to true,
    the flag that turns it off (default ``--no-field-name``); ``metavar``: the value's name in the help;
    ``cli=False``: no flag is generated."""
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None, "flag": flag,
                "negative_flag": negative_flag, "metavar": metavar, "cli": cli}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


class Options:
    """Base of the typed configs: values are checked against the field types, then by ``validate``."""

    def __post_init__(self) -> None:
        check_types(self)
        self.validate()

    def validate(self) -> None:
        """Checks that span several fields; a subclass raises ``ValueError`` naming the fields."""


def check_types(config: Any) -> None:
    """Each field of the dataclass ``config`` checked against its type (``ValueError`` naming the field); YAML's
    lists become tuples where a tuple is declared."""
    hints = typing.get_type_hints(type(config))
    for item in dataclasses.fields(config):
        value = _coerce(item.name, getattr(config, item.name), hints[item.name], item.metadata.get("choices"))
        object.__setattr__(config, item.name, value)


def names(cls: type[Options]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None, *, where: str, what: str = "option",
                 **fixed: Any) -> T:
    """``cls`` built from a mapping (a YAML section, ``init_parameters``); ``fixed`` values are set by the caller.
    Unknown keys (called ``what``), wrong types and values that do not fit together are one ``ConfigError``
    naming ``where``."""
    if mapping is not None and not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: expected a mapping of options, got {type(mapping).__name__} {mapping!r}.")
    mapping = dict(mapping or {})
    known = [n for n in names(cls) if n not in fixed]
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown {what}(s) {unknown}; known: {sorted(known)}.")
    try:
        return cls(**mapping, **fixed)
    except (TypeError, ValueError) as error:  # TypeError: a required option is missing
        raise ConfigError(f"{where}: {error}") from None


def as_config(cls: type[T], value: T | Mapping[str, Any] | None, *, where: str) -> T:
    """``value`` as it is when it is a ``cls`` already, else :func:`from_mapping` of it (a component's parameter,
    given in Python or read from YAML)."""
    return value if isinstance(value, cls) else from_mapping(cls, value, where=where)


def to_mapping(config: Options) -> dict[str, Any]:
    """The config as plain values (tuples as lists), as YAML and ``to_dict`` hold them."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def is_number(value: Any) -> bool:
    """A finite int or float as JSON or YAML gives one (not a bool, not NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Plain field types: what a value must be, and the test of it.
_SIMPLE_TYPES: dict[Any, tuple[str, Any]] = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("an integer", lambda v: is_number(v) and float(v).is_integer()),
    float: ("a number", is_number),
    str: ("a string", lambda v: isinstance(v, str)),
}


def _coerce(name: str, value: Any, hint: Any, choices: Sequence[Any] | None) -> Any:
    """``value`` checked against the field's type; YAML's lists become tuples where a tuple is declared."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0] if len(inner) == 1 else Any, choices)
    if origin is Literal or choices:
        allowed = tuple(choices) if choices else args
        if value not in allowed:
            raise ValueError(f"Unknown {name} {value!r}; choose one of {list(allowed)}.")
        return value
    if hint in _SIMPLE_TYPES:
        what, accepts = _SIMPLE_TYPES[hint]
        if not accepts(value):
            raise ValueError(f"{name} must be {what}, got {value!r}.")
        # Kept as written (8 and 8.0 alike): an experiment's stage keys hash the values as its YAML gives them.
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{name} must be a list of {len(args)} values, got {value!r}.")
        return tuple(_coerce(name, v, a, None) for v, a in zip(value, args))
    if origin is list and not isinstance(value, list):
        raise ValueError(f"{name} must be a list, got {value!r}.")
    if origin is dict and not isinstance(value, dict):
        raise ValueError(f"{name} must be a mapping, got {value!r}.")
    return value


# -- command-line flags ---------------------------------------------------------------------------------------
def _parse(hint: Any) -> Any:
    """The argparse ``type`` of a field: a number, or ``none`` where the field accepts None."""
    args = [a for a in get_args(hint) if a is not type(None)]
    base = args[0] if get_origin(hint) is not None and len(args) == 1 else hint
    optional = type(None) in get_args(hint)

    def parse(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        return base(text) if base in (int, float) else text

    parse.__name__ = getattr(base, "__name__", "value")  # argparse names the type in its errors
    return parse


def add_arguments(parser: argparse._ActionsContainer, cls: type[Options], *, skip: Sequence[str] = (),
                  defaults: Mapping[str, Any] | None = None) -> None:
    """One flag per field of ``cls`` (but ``skip`` and fields declared ``cli=False``), with the field's help and
    choices. A flag not given leaves the field's default, unless ``defaults`` sets one for the command line."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        if item.name in skip or not item.metadata.get("cli", True):
            continue
        _add_flag(parser, item, hints[item.name], (defaults or {}).get(item.name, argparse.SUPPRESS))


def _add_flag(parser: argparse._ActionsContainer, item: dataclasses.Field, hint: Any, default: Any) -> None:
    meta = item.metadata
    flag = meta.get("flag") or "--" + item.name.replace("_", "-")
    shown = default if default is not argparse.SUPPRESS else item.default
    help_text = meta.get("help", "") + ("" if shown is dataclasses.MISSING else f" (default: {shown})")
    common = {"dest": item.name, "default": default, "help": help_text}
    if hint is bool:
        negative = meta.get("negative_flag") or "--no-" + item.name.replace("_", "-")
        parser.add_argument(flag, action="store_true", **common)
        parser.add_argument(negative, action="store_false", dest=item.name, default=default,
                            help=f"turn {item.name} off")
    elif get_origin(hint) is list:  # the flag repeated, one value each time
        parser.add_argument(flag, action="append", type=get_args(hint)[0], metavar=meta.get("metavar"), **common)
    elif get_origin(hint) is tuple:
        parser.add_argument(flag, nargs=len(get_args(hint)), type=get_args(hint)[0],
                            metavar=meta.get("metavar") or tuple(f"V{i}" for i in range(len(get_args(hint)))),
                            **common)
    else:
        choices = meta.get("choices") or (get_args(hint) if get_origin(hint) is Literal else None)
        parser.add_argument(flag, type=_parse(hint), choices=choices, **common)


def from_arguments(cls: type[T], args: argparse.Namespace, *, where: str = "command line", **fixed: Any) -> T:
    """``cls`` from the flags given on the command line (the others keep the field defaults) and ``fixed``."""
    given = {n: getattr(args, n) for n in names(cls) if hasattr(args, n) and n not in fixed}
    return from_mapping(cls, given, where=where, **fixed)
