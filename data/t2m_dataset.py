"""Text-motion datasets for the transformers and the evaluator (docs/data.md#datasets).

Both classes share one construction (:func:`build_text_motion_items`):

1. clips with ``T < min_motion_length`` (40 t2m / 24 kit) or ``T >= 200`` are skipped;
2. a caption with ``start == end == 0`` joins the clip's caption list; any other caption cuts
   ``motion[int(start*20):int(end*20)]`` and, if that cut is in ``[min_len, 200)`` frames, becomes its own item
   named ``<letter A-W>_<id>`` with that single caption;
3. the whole clip is an item only if it has at least one whole-clip caption.

``__getitem__`` picks a caption at random, draws the "coin" (1/3: one unit shorter), crops at a random start,
normalises with the given mean/std and zero-pads to ``max_motion_length`` (196) frames.

Randomness comes from a per-dataset ``numpy.random.Generator`` seeded by ``seed``; inside DataLoader workers each
worker re-seeds from torch's per-worker seed, so results are reproducible under ``torch.manual_seed`` and
workers never repeat each other's draws.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch.utils.data import Dataset, default_collate, get_worker_info

from data.layout import DatasetPaths
from data.text import MAX_TEXT_LEN, TextAnnotation, pad_tokens, read_text_file
from utils.npy import load_npy, read_npy_header
from utils.skeleton import DatasetSpec

logger = logging.getLogger(__name__)

# docs/data.md#datasets: sub-caption item names are '<random letter>_<id>' with letters A..W.
SUB_ITEM_LETTERS = string.ascii_uppercase[:23]
# QUIRK(reference): sub-caption times are converted with 20 fps for every dataset (KIT has no sub-ranges).
CUT_FPS = 20.0


@dataclass(frozen=True)
class TextMotionItem:
    """One dataset item: a whole clip or a captioned sub-range of one. ``motion`` is (T, D), not normalised."""

    name: str
    motion: np.ndarray
    annotations: tuple[TextAnnotation, ...]

    @property
    def length(self) -> int:
        return int(self.motion.shape[0])


class SentenceVectorizer(Protocol):
    """The evaluator's word vectorizer (docs/evaluation.md#word-vectors)."""

    def build_sentence(self, tokens: Sequence[str], max_text_len: int = MAX_TEXT_LEN) -> tuple[Any, Any, int]: ...


def _unique_sub_name(clip_id: str, taken: set[str], rng: np.random.Generator) -> str:
    """``<letter>_<id>`` not yet in ``taken``, letter drawn uniformly from A..W (re-drawn on collision)."""
    free = [c for c in SUB_ITEM_LETTERS if f"{c}_{clip_id}" not in taken]
    if not free:  # the reference would loop forever here; fall back to numbered names instead
        n = 0
        while f"{SUB_ITEM_LETTERS[n % 23]}{n // 23}_{clip_id}" in taken:
            n += 1
        return f"{SUB_ITEM_LETTERS[n % 23]}{n // 23}_{clip_id}"
    while True:  # same distribution as re-drawing until unique
        name = f"{SUB_ITEM_LETTERS[int(rng.integers(len(SUB_ITEM_LETTERS)))]}_{clip_id}"
        if name not in taken:
            return name


def load_motion(path: Path, dim_pose: int) -> np.ndarray:
    """A ``new_joint_vecs`` file as float32 (T, D); clear error on a wrong shape."""
    header = read_npy_header(path, "motion features")
    if len(header.shape) != 2 or header.shape[1] != dim_pose:
        raise ValueError(
            f"{path}: features have shape {header.shape}, expected (T, {dim_pose}); "
            "is dataset_name right for this data_root? (python -m prepare.check_dataset lists all problems)"
        )
    return load_npy(path, "motion features")


def build_text_motion_items(
    paths: DatasetPaths,
    ids: Sequence[str],
    spec: DatasetSpec,
    rng: np.random.Generator,
    *,
    min_motion_length: int | None = None,
    max_length_exclusive: int | None = None,
) -> list[TextMotionItem]:
    """docs/data.md#datasets construction: items in split order, a clip's sub-range items before the clip itself."""
    min_len = spec.min_motion_length if min_motion_length is None else min_motion_length
    max_len = spec.max_motion_length_exclusive if max_length_exclusive is None else max_length_exclusive
    items: list[TextMotionItem] = []
    taken: set[str] = set()
    missing: list[str] = []
    for clip_id in ids:
        motion_file, text_file = paths.motion_dir / f"{clip_id}.npy", paths.text_dir / f"{clip_id}.txt"
        if not motion_file.is_file() or not text_file.is_file():
            missing.append(clip_id)
            continue
        motion = load_motion(motion_file, spec.dim_pose)
        if not min_len <= len(motion) < max_len:
            continue
        whole: list[TextAnnotation] = []
        for ann in read_text_file(text_file):
            if ann.is_whole_clip:
                whole.append(ann)
                continue
            cut = motion[int(ann.start * CUT_FPS) : int(ann.end * CUT_FPS)]
            if not min_len <= len(cut) < max_len:
                continue
            name = _unique_sub_name(clip_id, taken, rng)
            taken.add(name)
            items.append(TextMotionItem(name, cut, (ann,)))
        if whole:
            taken.add(clip_id)
            items.append(TextMotionItem(clip_id, motion, tuple(whole)))
    if missing:
        logger.warning(
            "%d of %d split ids have no motion or text file (skipped), e.g. %s", len(missing), len(ids), missing[:5]
        )
    if not items:
        raise ValueError(
            f"no usable text-motion items in {paths.root} for {len(ids)} split ids (clip lengths must be in "
            f"[{min_len}, {max_len}) frames with a caption); run python -m prepare.check_dataset {paths.root}"
        )
    return items


class Text2MotionDataset(Dataset):
    """``(caption, motion (196, D) float32 normalised + zero-padded, length)`` items (docs/data.md#datasets).

    ``mean``/``std`` are the stats the model was trained with (the VQ ``meta`` files, docs/data.md#normalisation).
    """

    def __init__(
        self,
        data_root: str | Path,
        spec: DatasetSpec,
        mean: np.ndarray,
        std: np.ndarray,
        *,
        split: str = "train",
        ids: Sequence[str] | None = None,
        seed: int = 0,
        max_motion_length: int | None = None,
        unit_length: int | None = None,
        min_motion_length: int | None = None,
    ) -> None:
        self.spec = spec
        self.paths = DatasetPaths.for_dataset(data_root, spec)
        mean, std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
        for label, arr in (("mean", mean), ("std", std)):
            if arr.shape != (spec.dim_pose,):
                raise ValueError(f"{label} has shape {arr.shape}, expected ({spec.dim_pose},) for {spec.name}")
        if not np.all(std > 0):
            raise ValueError(f"std has {int(np.sum(~(std > 0)))} non-positive entries; cannot normalise")
        self.mean, self.std = mean, std
        self.max_motion_length = spec.max_motion_length if max_motion_length is None else max_motion_length
        self.unit_length = spec.unit_length if unit_length is None else unit_length
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._rng_worker: int | None = None
        split_ids = list(ids) if ids is not None else self.paths.read_split(split)
        self.items = build_text_motion_items(
            self.paths, split_ids, spec, np.random.default_rng([seed, 1]), min_motion_length=min_motion_length
        )
        self.names = [item.name for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def _item_rng(self) -> np.random.Generator:
        """The generator for ``__getitem__`` draws: the dataset's own, or a per-worker one inside workers."""
        info = get_worker_info()
        if info is not None and self._rng_worker != info.id:
            self._rng = np.random.default_rng([self.seed, info.seed % 2**63])
            self._rng_worker = info.id
        return self._rng

    def sample_window(self, item: TextMotionItem, rng: np.random.Generator) -> tuple[TextAnnotation, np.ndarray, int]:
        """Caption choice, coin, crop, normalisation and zero padding: ``(annotation, (196, D), length)``."""
        ann = item.annotations[int(rng.integers(len(item.annotations)))]
        unit = self.unit_length
        length = item.length
        # docs/data.md#datasets "coin": ['single', 'single', 'double'] -> 1/3 chance to drop one more unit.
        if unit < 10 and int(rng.integers(3)) == 2:
            length = (length // unit - 1) * unit
        else:
            length = (length // unit) * unit
        start = int(rng.integers(item.length - length + 1))
        window = (item.motion[start : start + length] - self.mean) / self.std
        padded = np.zeros((self.max_motion_length, self.spec.dim_pose), dtype=np.float32)
        padded[:length] = window[: self.max_motion_length]
        return ann, padded, length

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, int]:
        ann, motion, length = self.sample_window(self.items[index], self._item_rng())
        return ann.caption, motion, length


class Text2MotionDatasetEval(Text2MotionDataset):
    """Evaluator items ``(word_embs (22,300), pos_onehot (22,15), caption, sent_len, motion (196,D), length,
    tokens '_'-joined)``, sorted by clip length; ``reset_max_len(n)`` hides items shorter than ``n`` frames."""

    def __init__(
        self,
        data_root: str | Path,
        spec: DatasetSpec,
        mean: np.ndarray,
        std: np.ndarray,
        vectorizer: SentenceVectorizer,
        *,
        split: str = "test",
        max_text_len: int = MAX_TEXT_LEN,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_root, spec, mean, std, split=split, **kwargs)
        self.vectorizer = vectorizer
        self.max_text_len = max_text_len
        # Stable sort: ties keep construction (file) order, as the reference's sorted(zip(...)).
        order = sorted(range(len(self.items)), key=lambda i: self.items[i].length)
        self.items = [self.items[i] for i in order]
        self.names = [item.name for item in self.items]
        self.lengths = np.array([item.length for item in self.items])
        self.pointer = 0
        self.reset_max_len(20)

    def reset_max_len(self, length: int) -> None:
        """Start the item range at the first clip with at least ``length`` frames."""
        if length > self.max_motion_length:
            raise ValueError(f"reset_max_len({length}) exceeds max_motion_length {self.max_motion_length}")
        self.pointer = int(np.searchsorted(self.lengths, length))
        self.max_length = length
        logger.debug("eval dataset pointer at %d", self.pointer)

    def __len__(self) -> int:
        return len(self.items) - self.pointer

    def __getitem__(self, index: int) -> tuple[Any, Any, str, int, np.ndarray, int, str]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        ann, motion, length = self.sample_window(self.items[self.pointer + index], self._item_rng())
        padded_tokens, _ = pad_tokens(ann.tokens, self.max_text_len)
        word_embs, pos_onehot, sent_len = self.vectorizer.build_sentence(list(ann.tokens), self.max_text_len)
        return word_embs, pos_onehot, ann.caption, sent_len, motion, length, "_".join(padded_tokens)


def collate_by_sent_len(batch: list[tuple]) -> Any:
    """Default collate after sorting the batch by ``sent_len`` (item[3]) descending (packed GRUs need it)."""
    return default_collate(sorted(batch, key=lambda item: item[3], reverse=True))
