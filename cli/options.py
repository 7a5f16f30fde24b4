"""Click options made from config dataclass fields: one source for every default and every allowed value.

    @config_option(LMConfig, "hidden", "--hidden", help="LSTM cell width.")

gives `--hidden INTEGER  LSTM cell width.  [default: 512]`, where 512 is LMConfig.hidden and the choices of a
Literal field come from the Literal itself. The option's own default is None, so a command passes on only what
the user gave (`given(...)`) and the dataclass fills in the rest.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, Optional

import click


def _field(kind: type, name: str) -> dataclasses.Field:
    for field in dataclasses.fields(kind):
        if field.name == name:
            return field
    raise KeyError(f"{kind.__name__} has no field {name}")


def field_default(kind: type, name: str) -> Any:
    field = _field(kind, name)
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def literal_choices(kind: type, name: str) -> Optional[tuple[str, ...]]:
    """The allowed values of a Literal (or Optional[Literal]) field, else None."""
    hint = typing.get_type_hints(kind)[name]
    for candidate in (hint, *typing.get_args(hint)):
        if typing.get_origin(candidate) is Literal:
            return typing.get_args(candidate)
    return None


def _click_type(kind: type, name: str):
    choices = literal_choices(kind, name)
    if choices is not None:
        return click.Choice(list(choices))
    hint = typing.get_type_hints(kind)[name]
    for candidate in (hint, *typing.get_args(hint)):
        if candidate in (int, float, str):
            return candidate
    raise TypeError(f"{kind.__name__}.{name}: no click type for {hint}")


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter("must be > 0")
    return value


def config_option(kind: type, name: str, *flags: str, help: str = "", positive: bool = False):
    """A click option for dataclass field `kind.name`, default None, its help showing the dataclass default."""
    default = field_default(kind, name)
    shown = "" if default is None else f"  [default: {default}]"
    return click.option(*(flags or (f"--{name.replace('_', '-')}",)), name, type=_click_type(kind, name),
                        default=None, help=f"{help}{shown}".strip(), callback=_positive if positive else None)


def given(params: dict, names: typing.Iterable[str]) -> dict:
    """The subset of `params` the user gave (not None), for the fields `names`."""
    return {name: params[name] for name in names if params.get(name) is not None}
