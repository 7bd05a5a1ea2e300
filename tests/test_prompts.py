"""Strict parsing of prompt files and edit spans (the official code evals spans and ignores file lengths)."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.prompts import Prompt, check_caption, parse_edit_sections, parse_prompt_file


def test_official_example_prompt_file_lengths_are_honoured(reference_dir: Path) -> None:
    prompts = parse_prompt_file(reference_dir / "momask/text_prompt.txt")
    lines = [s for s in (reference_dir / "momask/text_prompt.txt").read_text().splitlines() if s.strip()]
    assert len(prompts) == len(lines)
    for prompt, line in zip(prompts, lines):
        caption, _, length = line.rpartition("#")
        assert prompt.text == caption.strip()
        assert prompt.frames == (None if length.strip().upper() == "NA" else int(length))


def test_prompt_file_forms(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("a person walks forward#120\n\nsomeone jumps#NA\na man waves\n")
    assert parse_prompt_file(f) == [
        Prompt("a person walks forward", 120),
        Prompt("someone jumps"),
        Prompt("a man waves"),
    ]


@pytest.mark.parametrize(
    "content,message",
    [
        ("#120\n", r"p.txt:1: empty caption"),
        ("walk#12x\n", r"p.txt:1: length '12x' is not a whole number"),
        ("walk#100\nrun#400\n", r"p.txt:2: length 400 frames is out of range"),
        ("walk#0\n", r"p.txt:1: length 0 frames is out of range"),
        ("\n\n", r"has no prompts"),
    ],
)
def test_malformed_prompt_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "p.txt"
    f.write_text(content)
    with pytest.raises(ValueError, match=message):
        parse_prompt_file(f)


def test_huge_and_missing_prompt_files(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("walk#40\n" * 200_000)
    with pytest.raises(ValueError, match="bytes; the limit"):
        parse_prompt_file(f)
    with pytest.raises(FileNotFoundError):
        parse_prompt_file(tmp_path / "none.txt")


def test_caption_checks() -> None:
    assert check_caption("  jump  ") == "jump"
    with pytest.raises(ValueError, match="empty caption"):
        check_caption("   ")


def test_edit_sections_match_official_readme_example() -> None:
    """README of the official code: 0.3,0.6 == 59,118 -> tokens 14..29 on a 196-frame motion."""
    assert parse_edit_sections(["0.3,0.6"], 196, 20) == [(14, 29)]
    assert parse_edit_sections(["59,118"], 196, 20) == [(14, 29)]
    assert parse_edit_sections(["1s,3s"], 196, 20) == [(5, 15)]
    assert parse_edit_sections([",2s", "8s,"], 196, 20) == [(0, 10), (40, 49)]


@pytest.mark.parametrize(
    "section,message",
    [
        ("1s,20s", "not a non-empty span inside"),
        ("3s,1s", "not a non-empty span"),
        ("__import__('os'),3", "not a time"),
        ("1,2,3", "expected 'start,end'"),
        ("1.5,", "above 1"),
        ("4,6", "shorter than one token"),
    ],
)
def test_bad_edit_sections(section: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_edit_sections([section], 196, 20)
