"""Caption files of the official layout (docs/data.md#folder-layout, docs/evaluation.md#word-vectors): ``caption#word/POS ...#start#end`` per line.

A text file ``texts/<id>.txt`` holds one annotation per line. ``start``/``end`` are seconds; ``0.0#0.0``
(or ``nan``) means the caption describes the whole clip, anything else names a sub-range of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

# docs/evaluation.md#word-vectors: sentences longer than this are cut before sos/eos are added.
MAX_TEXT_LEN = 20


@dataclass(frozen=True)
class TextAnnotation:
    """One line of a caption file. ``tokens`` are ``word/POS`` strings; times in seconds (0 = whole clip)."""

    caption: str
    tokens: tuple[str, ...]
    start: float = 0.0
    end: float = 0.0

    @property
    def is_whole_clip(self) -> bool:
        return self.start == 0.0 and self.end == 0.0


def _parse_time(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: time {text[:40]!r} is not a number (expected seconds, 0.0 or nan)") from None
    if math.isinf(value) or value < 0:
        raise ValueError(f"{where}: time {text[:40]!r} must be a finite number of seconds >= 0 (or nan)")
    # docs/data.md#folder-layout: nan means "not given", treated as 0.0.
    return 0.0 if math.isnan(value) else value


def parse_text_line(line: str, where: str = "<line>") -> TextAnnotation:
    """Parse ``caption#tokens#start#end``; ``where`` names the source in error messages."""
    # Split from the right so a caption that itself contains '#' stays intact.
    parts = line.strip().rsplit("#", 3)
    if len(parts) != 4:
        raise ValueError(f"{where}: expected 'caption#word/POS ...#start#end', got {line.strip()[:80]!r}")
    caption, tokens, start, end = parts
    return TextAnnotation(
        caption=caption,
        tokens=tuple(t for t in tokens.split(" ") if t),
        start=_parse_time(start, where),
        end=_parse_time(end, where),
    )


def format_text_line(annotation: TextAnnotation) -> str:
    """Inverse of :func:`parse_text_line` (times written as floats, e.g. ``0.0``)."""
    return f"{annotation.caption}#{' '.join(annotation.tokens)}#{float(annotation.start)}#{float(annotation.end)}"


def read_text_file(path: str | Path) -> list[TextAnnotation]:
    """All annotations of one ``texts/<id>.txt`` file (blank lines skipped)."""
    path = Path(path)
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"caption file {path} is not UTF-8 text (byte {exc.start})") from None
    return [parse_text_line(line, f"{path}:{i + 1}") for i, line in enumerate(lines) if line.strip()]


def write_text_file(path: str | Path, annotations: list[TextAnnotation]) -> None:
    Path(path).write_text("".join(format_text_line(a) + "\n" for a in annotations), encoding="utf-8")


def split_token(token: str) -> tuple[str, str]:
    """``'walk/VERB'`` -> ``('walk', 'VERB')``; a token without ``/`` gets POS ``OTHER``."""
    word, sep, pos = token.rpartition("/")
    if not sep:
        return token, "OTHER"
    return word, pos


def pad_tokens(tokens: tuple[str, ...] | list[str], max_text_len: int = MAX_TEXT_LEN) -> tuple[list[str], int]:
    """docs/evaluation.md#word-vectors: add ``sos``/``eos``, crop to ``max_text_len`` words, pad with ``unk`` to ``max_text_len + 2``.

    Returns ``(tokens (max_text_len + 2,), sent_len)`` where ``sent_len`` counts sos + words + eos.
    """
    words = list(tokens)
    if len(words) < max_text_len:
        words = ["sos/OTHER", *words, "eos/OTHER"]
        sent_len = len(words)
        words = words + ["unk/OTHER"] * (max_text_len + 2 - sent_len)
    else:
        words = ["sos/OTHER", *words[:max_text_len], "eos/OTHER"]
        sent_len = len(words)
    return words, sent_len
