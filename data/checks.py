"""Dataset sanity checks: every problem of a dataset folder in one list (docs/data.md#folder-layout layout, docs/data.md#normalisation stats).

``check_dataset`` never raises on bad data; it returns :class:`Problem` records. ``ensure_dataset_ok`` is
what trainers call: it raises one ``ValueError`` listing every error at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.layout import DatasetPaths
from data.text import read_text_file
from utils.npy import load_npy, read_npy_header
from utils.skeleton import DatasetSpec

logger = logging.getLogger(__name__)

DEFAULT_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Problem:
    """One finding. ``severity`` is ``error`` (unusable) or ``warning`` (the loaders skip the item)."""

    kind: str
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"[{self.severity}] {self.kind}: {self.path}: {self.message}"


def _check_stats(paths: DatasetPaths, spec: DatasetSpec) -> list[Problem]:
    problems = []
    for path in (paths.mean_file, paths.std_file):
        if not path.is_file():
            problems.append(
                Problem(
                    "missing_file",
                    str(path),
                    "dataset statistics missing; "
                    "rebuild them with python -m prepare.build_dataset (Mean/Std, docs/data.md#normalisation)",
                )
            )
            continue
        try:
            arr = load_npy(path, "statistics", finite=False)
        except ValueError as exc:
            problems.append(Problem("unreadable", str(path), str(exc)))
            continue
        if arr.shape != (spec.dim_pose,):
            problems.append(
                Problem(
                    "stats_shape", str(path), f"shape {arr.shape}, expected ({spec.dim_pose},) for dataset {spec.name}"
                )
            )
        elif not np.all(np.isfinite(arr)):
            problems.append(Problem("non_finite", str(path), "contains NaN or inf"))
        elif path == paths.std_file and not np.all(arr > 0):
            problems.append(
                Problem("stats_value", str(path), f"{int(np.sum(arr <= 0))} entries <= 0 (division by zero)")
            )
    return problems


def _check_motion(path: Path, spec: DatasetSpec, check_values: bool) -> tuple[list[Problem], int | None]:
    """Problems of one feature file and its frame count (None when unreadable)."""
    try:
        shape = read_npy_header(path, "motion features").shape
    except ValueError as exc:
        return [Problem("unreadable", str(path), str(exc))], None
    if len(shape) != 2 or shape[1] != spec.dim_pose:
        return [
            Problem("feature_dim", str(path), f"shape {shape}, expected (T, {spec.dim_pose}) for dataset {spec.name}")
        ], None
    problems = []
    if check_values:
        problems += _check_finite(path)
    length = int(shape[0])
    if length < spec.min_motion_length:
        problems.append(
            Problem(
                "too_short",
                str(path),
                f"{length} frames < {spec.min_motion_length}; the text loaders skip it",
                "warning",
            )
        )
    elif length >= spec.max_motion_length_exclusive:
        problems.append(
            Problem(
                "too_long",
                str(path),
                f"{length} frames >= {spec.max_motion_length_exclusive}; the text loaders skip it",
                "warning",
            )
        )
    return problems, length


def _check_joints(path: Path, spec: DatasetSpec, length: int | None, check_values: bool) -> list[Problem]:
    if not path.is_file():
        return [
            Problem(
                "missing_file",
                str(path),
                "joint positions missing (needed for evaluation/plots); regenerate with recover_from_ric",
                "warning",
            )
        ]
    try:
        shape = read_npy_header(path, "joint positions").shape
    except ValueError as exc:
        return [Problem("unreadable", str(path), str(exc))]
    if len(shape) != 3 or shape[1:] != (spec.joints_num, 3):
        return [Problem("joints_shape", str(path), f"shape {shape}, expected (T, {spec.joints_num}, 3)")]
    if length is not None and shape[0] != length:
        return [Problem("length_mismatch", str(path), f"{shape[0]} frames but features have {length}", "warning")]
    return _check_finite(path) if check_values else []


def _check_finite(path: Path) -> list[Problem]:
    try:
        load_npy(path, "array", dtype=np.float64)
    except ValueError as exc:
        return [Problem("non_finite", str(path), str(exc).removeprefix(f"array {path}: "))]
    return []


def _check_texts(path: Path) -> list[Problem]:
    try:
        annotations = read_text_file(path)
    except ValueError as exc:
        return [Problem("bad_caption", str(path), str(exc))]
    except OSError as exc:
        return [Problem("unreadable", str(path), f"cannot read: {exc}")]
    if not annotations:
        return [Problem("no_captions", str(path), "caption file is empty")]
    return []


# Problems that only matter to text-conditioned stages (the VQ tokenizer trains on motions alone).
CAPTION_KINDS = frozenset(
    {"motion_without_captions", "captions_without_motion", "bad_caption", "no_captions", "no_usable_clips"}
)


def check_dataset(
    root: str | Path,
    spec: DatasetSpec,
    splits: Sequence[str] = DEFAULT_SPLITS,
    check_values: bool = True,
    need_texts: bool = True,
) -> list[Problem]:
    """All problems of the dataset at ``root`` (the folder holding ``new_joint_vecs/``, or its parent).

    ``check_values`` reads every array fully to find NaN/inf (slower); otherwise only headers are read.
    ``need_texts=False`` (motion-only use, e.g. VQ training) reports caption problems as warnings.
    """
    problems = _check_dataset(root, spec, splits, check_values)
    if need_texts:
        return problems
    text_dir = str(DatasetPaths.for_dataset(root, spec).text_dir)
    return [
        Problem(p.kind, p.path, p.message, "warning") if p.kind in CAPTION_KINDS or p.path == text_dir else p
        for p in problems
    ]


def _check_dataset(root: str | Path, spec: DatasetSpec, splits: Sequence[str], check_values: bool) -> list[Problem]:
    paths = DatasetPaths.for_dataset(root, spec)
    if not paths.root.is_dir():
        return [Problem("missing_folder", str(paths.root), "dataset folder does not exist")]
    problems: list[Problem] = []
    for folder in (paths.motion_dir, paths.text_dir, paths.joints_dir):
        if not folder.is_dir():
            severity = "warning" if folder == paths.joints_dir else "error"
            problems.append(
                Problem(
                    "missing_folder",
                    str(folder),
                    "folder missing (official layout, docs/data.md#folder-layout)",
                    severity,
                )
            )
    problems += _check_stats(paths, spec)
    if not paths.motion_dir.is_dir():
        return problems

    motion_ids = {p.stem for p in paths.motion_dir.glob("*.npy")}
    text_ids = {p.stem for p in paths.text_dir.glob("*.txt")}  # empty when texts/ is missing (reported above)
    for clip_id in sorted(motion_ids - text_ids):
        problems.append(
            Problem("motion_without_captions", str(paths.motion_dir / f"{clip_id}.npy"), f"no texts/{clip_id}.txt")
        )
    for clip_id in sorted(text_ids - motion_ids):
        problems.append(
            Problem(
                "captions_without_motion", str(paths.text_dir / f"{clip_id}.txt"), f"no new_joint_vecs/{clip_id}.npy"
            )
        )

    split_ids: set[str] = set()
    for split in splits:
        split_file = paths.split_file(split)
        if not split_file.is_file():
            problems.append(Problem("missing_file", str(split_file), "split file missing (one id per line)"))
            continue
        ids = paths.read_split(split)
        if not ids:
            problems.append(Problem("empty_split", str(split_file), "split lists no ids"))
        unknown = [i for i in ids if i not in motion_ids]
        if unknown:
            problems.append(
                Problem(
                    "split_id_without_motion",
                    str(split_file),
                    f"{len(unknown)} ids have no motion file, e.g. {unknown[:5]}",
                )
            )
        split_ids.update(ids)

    usable = 0
    for clip_id in sorted(motion_ids):
        motion_problems, length = _check_motion(paths.motion_dir / f"{clip_id}.npy", spec, check_values)
        problems += motion_problems
        if paths.joints_dir.is_dir():
            problems += _check_joints(paths.joints_dir / f"{clip_id}.npy", spec, length, check_values)
        if clip_id in text_ids:
            text_problems = _check_texts(paths.text_dir / f"{clip_id}.txt")
            problems += text_problems
            if (
                not text_problems
                and not any(p.severity == "error" for p in motion_problems)
                and length is not None
                and spec.min_motion_length <= length < spec.max_motion_length_exclusive
            ):
                usable += 1
    if motion_ids and usable == 0:
        problems.append(
            Problem(
                "no_usable_clips",
                str(paths.root),
                "no clip has a valid caption file and a length "
                f"in [{spec.min_motion_length}, {spec.max_motion_length_exclusive}) frames",
            )
        )
    return problems


def ensure_dataset_ok(
    root: str | Path,
    spec: DatasetSpec,
    splits: Sequence[str] = DEFAULT_SPLITS,
    check_values: bool = False,
    need_texts: bool = True,
) -> list[Problem]:
    """Raise ``ValueError`` listing every error of the dataset; return (and log) the warnings."""
    problems = check_dataset(root, spec, splits, check_values, need_texts)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    if warnings:
        logger.warning("dataset %s: %d warnings, e.g. %s", root, len(warnings), warnings[0])
    if errors:  # one line (the CLIs print it as their error line); the full list is in check_dataset's report
        listing = "; ".join(str(p) for p in errors[:3]) + ("; ..." if len(errors) > 3 else "")
        raise ValueError(
            f"dataset {root} ({spec.name}) has {len(errors)} problem(s): {listing} "
            "(python -m prepare.check_dataset lists them all)"
        )
    return warnings
