"""Options machinery: a stage's options are a dataclass; argparse and ``opt.txt`` are generated from it.

``opt.txt`` is a file format shared with the official code (docs/checkpoints.md#opttxt): a banner line, one ``key: value`` line
per option sorted by key (``str()`` of each value), and an end banner. Reading coerces each value by the
dataclass field type; keys the dataclass does not know are kept in :attr:`Options.extra`, never dropped.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import logging
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from utils.checkpoint import atomic_write
from utils.cli import CliParser

logger = logging.getLogger(__name__)

OPT_HEADER = "------------ Options -------------"
OPT_FOOTER = "-------------- End ----------------"

O = TypeVar("O", bound="Options")  # noqa: E741 (the options class a classmethod returns)


def opt(
    default: Any = dataclasses.MISSING, help: str = "", *, short: str | None = None, append: bool = False, **kw: Any
) -> Any:
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


MAX_VALUE_CHARS = 4096  # one option value (opt.txt line or flag)
MAX_OPT_FILE_BYTES = 1_000_000
MAX_INT = 2**63 - 1  # int64, what torch and NumPy take
# Options whose value becomes one path component (a run folder, a log file stem).
NAME_FIELDS = ("name", "ext", "which_epoch")


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _as_int(value: Any) -> int:
    """An int from an int, an integral float or their text (``"3"``, ``"3.0"``, ``"1e3"``), within int64."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d{1,19}", text):
            value = int(text)
        else:
            value = _as_float(text)
    if isinstance(value, float):
        if value != int(value):
            raise ValueError(f"expected an integer, got {value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"expected an integer, got {_shorten(repr(value))}")
    if abs(value) > MAX_INT:
        raise ValueError(f"expected an integer of at most {len(str(MAX_INT))} digits, got {_shorten(str(value))!r}")
    return value


def _as_float(value: Any) -> float:
    """A finite float from a number or its text."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {_shorten(repr(value))}")
    try:
        x = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"expected a number, got {_shorten(str(value))!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"expected a finite number, got {_shorten(str(value))!r}")
    return x


def _as_item(value: Any, tp: Any) -> Any:
    if tp is int:
        return _as_int(value)
    if tp is float:
        return _as_float(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        return coerce(str(value), bool)
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {_shorten(repr(value))}")
    return value


def coerce(value: str, tp: Any) -> Any:
    """Parse the text form of an option value (as written in opt.txt or on the command line).

    Strict: ints are whole numbers within int64, floats finite, lists hold items of the declared type (no
    ``None`` items, no nesting); anything else is a ``ValueError`` saying what was expected."""
    inner, optional = _base_type(tp)
    text = value.strip()
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError(f"value has {len(text)} characters; the limit is {MAX_VALUE_CHARS}")
    if "\x00" in text:
        raise ValueError("value contains a NUL character")
    if optional and text in ("None", ""):
        return None
    if inner is bool:
        if text in ("True", "true", "1"):
            return True
        if text in ("False", "false", "0"):
            return False
        raise ValueError(f"expected True/False, got {_shorten(value)!r}")
    if typing.get_origin(inner) is list:
        (item_tp,) = typing.get_args(inner) or (str,)
        if text.startswith("["):
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise ValueError(f"expected a list like [1, 2], got {_shorten(text)!r}") from None
            if not isinstance(parsed, (list, tuple)):
                raise ValueError(f"expected a list like [1, 2], got {_shorten(text)!r}")
        else:
            parsed = text.replace(",", " ").split()
        return [_as_item(v, item_tp) for v in parsed]
    if inner in (int, float):
        return _as_item(text, inner)
    return text


def is_name_field(key: str) -> bool:
    return key in NAME_FIELDS or key.endswith("_name")


def check_name(value: str, key: str) -> str:
    """A value used as one path component (run folder, file stem): no separators, at most 255 bytes."""
    if value in (".", "..") or any(c in value for c in "/\\\x00") or len(value.encode("utf-8", "replace")) > 255:
        raise ValueError(
            f"{key} {_shorten(value)!r} is not a usable folder/file name (at most 255 bytes, no '/', "
            f"'\\' or NUL, not '.' or '..')"
        )
    return value


def _flag_type(tp: Any) -> Any:
    """argparse ``type=``: coerce, with the reason in argparse's one-line error ("argument --x: ...")."""

    def parse(text: str) -> Any:
        try:
            return coerce(text, tp)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


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
        p = CliParser(
            description=cls.description or cls.__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
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
                p.add_argument(*flags, type=_flag_type(f.type), default=default, help=helptext)
        return p

    @classmethod
    def parse(cls: type[O], argv: list[str] | None = None) -> O:
        """Parse command-line arguments (``None`` = ``sys.argv``) into validated options."""
        values = vars(cls.parser().parse_args(argv))
        for f in cls._fields():
            if f.metadata.get("append") and values[f.name] is None:
                values[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else []
            if is_name_field(f.name) and isinstance(values[f.name], str):
                check_name(values[f.name], f"--{f.name}")
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
                    if is_name_field(key) and isinstance(kwargs[key], str):
                        check_name(kwargs[key], key)
                except ValueError as exc:
                    raise ValueError(f"{path}: option {key!r}: {exc}") from None
            else:
                extra[key] = text
        if extra:
            logger.debug("%s: keeping %d option(s) this version does not use: %s", path, len(extra), sorted(extra))
        kwargs.update(overrides)
        try:
            return cls(**kwargs, extra=extra)
        except (ValueError, ArithmeticError) as exc:
            # The checks are written for flags ("--nb_code must be positive"); here the value came from the file.
            reason = re.sub(r"--(\w+)", r"\1", str(exc) or exc.__class__.__name__)
            raise ValueError(f"{path}: {reason} (value read from this file)") from None


def read_opt_file(path: str | Path) -> dict[str, str]:
    """``key -> value text`` of an opt.txt; tolerant of values that contain ``': '`` and of blank lines."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_OPT_FILE_BYTES:
        raise ValueError(f"options file {path} is {size} bytes; an opt.txt is a few kB (wrong file?)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"options file {path} is not UTF-8 text (byte {exc.start}); expected 'key: value' lines"
        ) from None
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("----"):
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":"):
                key, value = line[:-1], ""
            else:
                raise ValueError(f"{path}:{lineno}: expected 'key: value', got {_shorten(line)!r}")
        out[key.strip()] = value
    return out
