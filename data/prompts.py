"""User text inputs of the generation/editing CLIs: prompt files and edit spans, parsed strictly (no eval)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

MAX_PROMPT_FILE_BYTES = 1_000_000
MAX_PROMPTS = 10_000
MAX_CAPTION_CHARS = 1_000


@dataclass(frozen=True)
class Prompt:
    """One caption and its requested length in frames (``None``: estimate it)."""

    text: str
    frames: int | None = None


def check_caption(text: str, where: str = "--text") -> str:
    """Strip a caption; reject empty or absurdly long ones with a message naming ``where``."""
    caption = text.strip()
    if not caption:
        raise ValueError(f'{where}: empty caption; describe the motion, e.g. "a person walks forward"')
    if len(caption) > MAX_CAPTION_CHARS:
        raise ValueError(f"{where}: caption has {len(caption)} characters; the limit is {MAX_CAPTION_CHARS}")
    return caption


def check_length(frames: int, max_frames: int, unit_length: int, where: str) -> int:
    """Frames must give at least one token and at most ``max_frames``."""
    if not unit_length <= frames <= max_frames:
        raise ValueError(
            f"{where}: length {frames} frames is out of range; use {unit_length}..{max_frames} frames "
            f"(or leave it out to estimate it)"
        )
    return frames


def parse_prompt_file(path: str | Path, max_frames: int = 196, unit_length: int = 4) -> list[Prompt]:
    """Read ``text#frames`` lines (``#NA`` or no ``#`` part: estimate). Blank lines are skipped.

    Unlike the official reader, lengths are honoured on every line (docs/sampling.md#prompts QUIRK fixed). Any malformed line
    raises ``ValueError`` naming ``path:line``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} not found")
    size = path.stat().st_size
    if size > MAX_PROMPT_FILE_BYTES:
        raise ValueError(f"prompt file {path} is {size} bytes; the limit is {MAX_PROMPT_FILE_BYTES} (split it)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"prompt file {path} is not UTF-8 text") from None
    if "\x00" in text:
        raise ValueError(f"prompt file {path} is not text (it contains NUL bytes)")
    prompts: list[Prompt] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        caption, sep, length = line.rpartition("#") if "#" in line else (line, "", "")
        caption = check_caption(caption, where)
        length = length.strip()
        if not sep or length.upper() in ("NA", ""):
            prompts.append(Prompt(caption))
            continue
        if not re.fullmatch(r"\d{1,9}", length):
            raise ValueError(f"{where}: length {length!r} is not a whole number of frames (or NA to estimate)")
        prompts.append(Prompt(caption, check_length(int(length), max_frames, unit_length, where)))
        if len(prompts) > MAX_PROMPTS:
            raise ValueError(f"prompt file {path} has more than {MAX_PROMPTS} prompts (split it)")
    if not prompts:
        raise ValueError(f"prompt file {path} has no prompts (expected lines like 'a person jumps#120')")
    return prompts


_BOUND = re.compile(r"^\s*(?:(?P<sec>\d+(?:\.\d*)?|\.\d+)s|(?P<frac>\d*\.\d+|\d+\.\d*)|(?P<frame>\d+)|(?P<empty>))\s*$")


MAX_BOUND_CHARS = 32


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_BOUND_CHARS else text[:MAX_BOUND_CHARS] + "..."


def _bound_to_frame(text: str, total_frames: int, fps: float, default: int, where: str) -> int:
    m = _BOUND.match(text) if len(text) <= MAX_BOUND_CHARS else None
    if m is None:
        raise ValueError(
            f"{where}: {_shorten(text)!r} is not a time: use frames (59), seconds (2.5s) or a fraction (0.3)"
        )
    if m["empty"] is not None:
        return default
    if m["sec"] is not None:
        return int(round(float(m["sec"]) * fps))  # past the end: refused by the caller, naming this frame
    if m["frac"] is not None:
        frac = float(m["frac"])
        if frac > 1.0:
            raise ValueError(f"{where}: fraction {text!r} is above 1 (write seconds as e.g. {text}s)")
        return int(math.floor(frac * total_frames))
    return int(m["frame"])


def parse_frame(text: str, total_frames: int, fps: float, where: str) -> int:
    """One time point in frames (``59``), seconds (``2.5s``) or a fraction of ``total_frames`` (``0.3``)."""
    if not text.strip():
        raise ValueError(f"{where}: empty time; use frames (59), seconds (2.5s) or a fraction (0.3)")
    return _bound_to_frame(text, total_frames, fps, 0, where)


def parse_edit_frames(sections: list[str], total_frames: int, fps: float) -> list[tuple[int, int]]:
    """``["1s,3s", ",40", "0.5,"]`` → frame spans ``[(start, end), ...]`` (end exclusive).

    Each section is ``start,end`` with each bound in frames (``59``), seconds (``2.5s``) or a fraction of the
    motion (``0.3``); an empty start means the beginning (prefix form), an empty end the end (suffix form).
    Spans outside the motion, empty or reversed spans raise ``ValueError`` naming the section.
    """
    if not sections:
        raise ValueError("--mask_edit_section: give at least one span such as 1s,3s (or ,2s for a prefix)")
    spans = []
    for section in sections:
        where = f"--mask_edit_section {_shorten(section)!r}"
        parts = section.split(",")
        if len(parts) != 2:
            raise ValueError(f"{where}: expected 'start,end' (e.g. 1s,3s, ,2s or 0.5,)")
        start = _bound_to_frame(parts[0], total_frames, fps, 0, where)
        end = _bound_to_frame(parts[1], total_frames, fps, total_frames, where)
        if not 0 <= start < end <= total_frames:
            raise ValueError(
                f"{where}: frames {start}..{end} are not a non-empty span inside the motion's "
                f"{total_frames} frames ({total_frames / fps:.2f} s)"
            )
        spans.append((start, end))
    return spans


def parse_edit_sections(
    sections: list[str], total_frames: int, fps: float, unit_length: int = 4
) -> list[tuple[int, int]]:
    """:func:`parse_edit_frames` mapped to token spans by ``// unit_length`` as the official parser does."""
    n_tokens = total_frames // unit_length
    spans = []
    for section, (start, end) in zip(sections, parse_edit_frames(sections, total_frames, fps)):
        s_tok, e_tok = start // unit_length, min(end // unit_length, n_tokens)
        if e_tok <= s_tok:
            raise ValueError(f"--mask_edit_section {section!r}: span is shorter than one token ({unit_length} frames)")
        spans.append((s_tok, e_tok))
    return spans
