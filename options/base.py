"""Options machinery: a stage's options are a dataclass; argparse and ``opt.txt`` are generated from it.

``opt.txt`` is a file format shared with the official code (spec §6.3): a banner line, one ``key: value`` line
per option sorted by key (``str()`` of each value), and an end banner. Reading coerces each value by the
dataclass field type; keys the dataclass does not know are kept in :attr:`Options.extra`, never dropped.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from utils.checkpoint import atomic_write

logger = logging.getLogger(__name__)

OPT_HEADER = "------------ Options -------------"
OPT_FOOTER = "-------------- End ----------------"

O = TypeVar("O", bound="Options")


def opt(default: Any = dataclasses.MISSING, help: str = "", *, short: str | None = None, append: bool = False,
        **kw: Any) -> Any:
    """A dataclass field with a help text for the generated parser.

    ``short``: an extra flag spelling (e.g. ``-msec``); ``append``: a list option given once per value
    (``--text a --text b``) instead of space-separated values.
    """
    metadata = {"help": help, "short": short, "append": append}
    if isinstance(default, list):
        value = list(default)
        return field(default_factory=lambda: list(value), metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


def override(default: Any, help: str = "") -> Any:
    """A new default for an option a base group declares (its help text is kept unless ``help`` refines it).

    Overriding a name that no base class declares is an error (caught when the parser or opt.txt is built).
    """
    field_ = opt(default, help)
    field_.metadata = types.MappingProxyType({**field_.metadata, "override": True})
    return field_


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, is_optional) for annotations like ``int``, ``int | None``, ``list[int]``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return tp, False


def coerce(value: str, tp: Any) -> Any:
    """Parse the text form of an option value (as written in opt.txt or on the command line)."""
    inner, optional = _base_type(tp)
    text = value.strip()
    if optional and text in ("None", ""):
        return None
    if inner is bool:
        if text in ("True", "true", "1"):
            return True
        if text in ("False", "false", "0"):
            return False
        raise ValueError(f"expected True/False, got {value!r}")
    if typing.get_origin(inner) is list:
        (item_tp,) = typing.get_args(inner) or (str,)
        parsed = ast.literal_eval(text) if text.startswith("[") else [p for p in text.replace(",", " ").split()]
        return [item_tp(v) if not isinstance(v, item_tp) else v for v in parsed]
    if inner in (int, float, str):
        return inner(float(text)) if inner is int and "." in text else inner(text)
    return text


@dataclass
class Options:
    """Base class of every stage's options. Subclasses add fields made with :func:`opt`."""

    description: ClassVar[str] = ""
    extra: dict[str, str] = field(default_factory=dict, repr=False, metadata={"internal": True})

    # ---- command line -------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        """Validation hook: every group checks its own fields and calls ``super().__post_init__()``."""

    def _require(self, *, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()) -> None:
        """ValueError naming the flag for a value out of range."""
        for flag in positive:
            if getattr(self, flag) <= 0:
                raise ValueError(f"--{flag} must be positive, got {getattr(self, flag)}")
        for flag in non_negative:
            if getattr(self, flag) < 0:
                raise ValueError(f"--{flag} must be >= 0, got {getattr(self, flag)}")

    @classmethod
    def _fields(cls) -> list[dataclasses.Field]:
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            f.type = hints[f.name]
            if f.metadata.get("override") and not f.metadata.get("help"):
                f.metadata = types.MappingProxyType({**f.metadata, "help": cls._declared_help(f.name)})
            out.append(f)
        return out

    @classmethod
    def _declared_help(cls, name: str) -> str:
        """The help text of the group that declares option ``name`` (for :func:`override`)."""
        for base in cls.__mro__[1:]:
            declared = getattr(base, "__dataclass_fields__", {}).get(name)
            if declared is not None and not declared.metadata.get("override"):
                return declared.metadata.get("help", "")
        raise TypeError(f"{cls.__name__} overrides option {name!r}, which none of its groups declares")

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(description=cls.description or cls.__doc__,
                                    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        for f in cls._fields():
            flags = [f"--{f.name}"] + ([f.metadata["short"]] if f.metadata.get("short") else [])
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            helptext = f.metadata.get("help", "")
            inner, _ = _base_type(f.type)
            if inner is bool:
                p.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, help=helptext)
            elif typing.get_origin(inner) is list:
                (item_tp,) = typing.get_args(inner) or (str,)
                if f.metadata.get("append"):
                    p.add_argument(*flags, type=item_tp, action="append", default=None, help=helptext)
                else:
                    p.add_argument(*flags, type=item_tp, nargs="*", default=default, help=helptext)
            else:
                p.add_argument(*flags, type=lambda s, t=f.type: coerce(s, t), default=default, help=helptext)
        return p

    @classmethod
    def parse(cls: type[O], argv: list[str] | None = None) -> O:
        """Parse command-line arguments (``None`` = ``sys.argv``) into validated options."""
        values = vars(cls.parser().parse_args(argv))
        for f in cls._fields():
            if f.metadata.get("append") and values[f.name] is None:
                values[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else []
        return cls(**values)

    # ---- opt.txt -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in self._fields()}
        out.update(self.extra)
        return out

    def save(self, path: str | Path, **additional: Any) -> None:
        """Write ``opt.txt`` in the official format (keys sorted; ``additional`` keys such as ``is_train``)."""
        values = {**self.to_dict(), **additional}
        lines = [OPT_HEADER] + [f"{k}: {values[k]}" for k in sorted(values)] + [OPT_FOOTER]
        with atomic_write(path) as tmp:
            tmp.write_text("\n".join(lines) + "\n")

    @classmethod
    def load(cls: type[O], path: str | Path, **overrides: Any) -> O:
        """Read an ``opt.txt`` (ours or the official code's); unknown keys are kept in ``extra``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"options file {path} not found (every run folder has an opt.txt)")
        raw = read_opt_file(path)
        known = {f.name: f for f in cls._fields()}
        kwargs: dict[str, Any] = {}
        extra: dict[str, str] = {}
        for key, text in raw.items():
            if key in known:
                try:
                    kwargs[key] = coerce(text, known[key].type)
                except (ValueError, SyntaxError) as exc:
                    raise ValueError(f"{path}: option {key!r} has value {text!r}: {exc}") from None
            else:
                extra[key] = text
        if extra:
            logger.debug("%s: keeping %d option(s) this version does not use: %s", path, len(extra), sorted(extra))
        kwargs.update(overrides)
        return cls(**kwargs, extra=extra)


def read_opt_file(path: str | Path) -> dict[str, str]:
    """``key -> value text`` of an opt.txt; tolerant of values that contain ``': '`` and of blank lines."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("----"):
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":"):
                key, value = line[:-1], ""
            else:
                raise ValueError(f"{path}:{lineno}: expected 'key: value', got {line!r}")
        out[key.strip()] = value
    return out
