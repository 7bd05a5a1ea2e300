"""Caption parsing, text-motion datasets (docs/data.md#datasets), Mean/Std (docs/data.md#normalisation) and dataset checks on a tiny dataset
built by ``data.synthetic.make_tiny_dataset``."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from data.checks import check_dataset, ensure_dataset_ok
from data.feature_stats import compute_mean_std
from data.layout import DatasetPaths
from data.pos_tagging import fallback_tag
from data.synthetic import make_tiny_dataset
from data.t2m_dataset import Text2MotionDataset, Text2MotionDatasetEval, collate_by_sent_len
from data.text import TextAnnotation, format_text_line, pad_tokens, parse_text_line, read_text_file
from utils.skeleton import get_dataset_spec

SPEC = get_dataset_spec("t2m")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"), "t2m", n_clips=8, seed=0)


def _stats(root: Path) -> tuple[np.ndarray, np.ndarray]:
    return DatasetPaths.for_dataset(root, SPEC).load_mean_std()


class FakeVectorizer:
    """Stands in for the GloVe WordVectorizer: encodes the token count so the collate order is checkable."""

    def build_sentence(self, tokens, max_text_len=20):
        _, sent_len = pad_tokens(tokens, max_text_len)
        return np.full((22, 300), sent_len, np.float32), np.zeros((22, 15), np.float32), sent_len


# ---------------------------------------------------------------------------------------------------- text


def test_parse_text_line_official_example() -> None:
    ann = parse_text_line("a man kicks something.#a/DET man/NOUN kick/VERB something/PRON#0.0#0.0")
    assert ann.caption == "a man kicks something."
    assert ann.tokens == ("a/DET", "man/NOUN", "kick/VERB", "something/PRON")
    assert ann.is_whole_clip


def test_parse_text_line_nan_and_subrange() -> None:
    assert parse_text_line("x#x/NOUN#nan#nan").is_whole_clip
    ann = parse_text_line("walks#walk/VERB#1.5#4.25")
    assert (ann.start, ann.end, ann.is_whole_clip) == (1.5, 4.25, False)
    # '#' inside the caption stays in the caption (we split from the right)
    assert parse_text_line("a # b#a/DET#0.0#0.0").caption == "a # b"


@pytest.mark.parametrize("bad", ["only caption", "c#t#0.0", "c#t#zero#1.0"])
def test_parse_text_line_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="f.txt:3"):
        parse_text_line(bad, "f.txt:3")


def test_format_parse_round_trip() -> None:
    ann = TextAnnotation("someone turns left", ("someone/PRON", "turn/VERB", "left/ADV"), 0.5, 2.75)
    assert parse_text_line(format_text_line(ann)) == ann


def test_pad_tokens_spec_5_2() -> None:
    tokens, n = pad_tokens(["a/DET", "man/NOUN"])
    assert n == 4 and len(tokens) == 22
    assert tokens[:4] == ["sos/OTHER", "a/DET", "man/NOUN", "eos/OTHER"] and tokens[4:] == ["unk/OTHER"] * 18
    long, n = pad_tokens([f"w{i}/NOUN" for i in range(25)])
    assert n == 22 and long[-1] == "eos/OTHER" and long[20] == "w19/NOUN"


def test_fallback_tagger_lemmas_and_left() -> None:
    assert fallback_tag("A person walks forward and turns left.") == [
        "a/DET",
        "person/NOUN",
        "walk/VERB",
        "forward/ADV",
        "and/CCONJ",
        "turn/VERB",
        "left/ADV",
    ]
    assert fallback_tag("kicks with the left-leg 2 times") == [
        "kick/VERB",
        "with/ADP",
        "the/DET",
        "leftleg/NOUN",
        "time/NOUN",
    ]


# ---------------------------------------------------------------------------------------------------- loaders


def _expected_items(root: Path, ids: list[str]) -> list[str]:
    """Independent re-derivation of the docs/data.md#datasets item list (names of sub-items reduced to '*_<id>')."""
    names = []
    for clip_id in ids:
        T = len(np.load(root / "new_joint_vecs" / f"{clip_id}.npy"))
        if not 40 <= T < 200:
            continue
        anns = read_text_file(root / "texts" / f"{clip_id}.txt")
        for a in anns:
            if not a.is_whole_clip and 40 <= len(range(T)[int(a.start * 20) : int(a.end * 20)]) < 200:
                names.append(f"*_{clip_id}")
        if any(a.is_whole_clip for a in anns):
            names.append(clip_id)
    return names


def test_items_match_spec_construction(tiny: Path) -> None:
    mean, std = _stats(tiny)
    ds = Text2MotionDataset(tiny, SPEC, mean, std, split="all", seed=3)
    ids = DatasetPaths(tiny).read_split("all")
    expected = _expected_items(tiny, ids)
    assert len(ds) == len(expected) == 11  # 8 clips + 3 sub-captions (clips 0, 3, 6)
    got = [re.sub(r"^[A-W]_", "*_", n) for n in ds.names]
    assert got == expected
    for item in ds.items:
        if item.name.startswith(tuple("ABCDEFGHIJKLMNOPQRSTUVW")) and "_" in item.name:
            full = np.load(tiny / "new_joint_vecs" / f"{item.name[2:]}.npy")
            np.testing.assert_array_equal(item.motion, full[10:55])  # 0.5 s .. 2.75 s at 20 fps
            assert [a.caption for a in item.annotations] == ["a person moves their arms"]


def test_length_filter_skips_short_and_long(tiny: Path) -> None:
    mean, std = _stats(tiny)
    ds = Text2MotionDataset(tiny, SPEC, mean, std, split="all", min_motion_length=100)
    lengths = [item.length for item in ds.items]
    assert lengths and all(100 <= n < 200 for n in lengths)
    assert all(len(n) == 6 for n in ds.names)  # the 45-frame sub-captions are gone


def test_getitem_crop_normalise_pad(tiny: Path) -> None:
    mean, std = _stats(tiny)
    ds = Text2MotionDataset(tiny, SPEC, mean, std, split="all", seed=0)
    coins = 0
    for index in range(len(ds)):
        item = ds.items[index]
        for _ in range(12):
            caption, motion, length = ds[index]
            assert caption in [a.caption for a in item.annotations]
            assert motion.shape == (196, 263) and motion.dtype == np.float32
            assert length % 4 == 0 and length <= 196
            assert length in ((item.length // 4) * 4, (item.length // 4 - 1) * 4)
            coins += length != (item.length // 4) * 4
            assert not motion[length:].any()
            raw = motion[:length] * std + mean
            starts = [
                s for s in range(item.length - length + 1) if np.allclose(item.motion[s : s + length], raw, atol=1e-4)
            ]
            assert starts, "window is not a normalised contiguous crop"
    n = len(ds) * 12
    assert abs(coins / n - 1 / 3) < 0.15


def test_determinism_under_seed(tiny: Path) -> None:
    mean, std = _stats(tiny)

    def draws(seed: int) -> list:
        ds = Text2MotionDataset(tiny, SPEC, mean, std, split="all", seed=seed)
        return ds.names + [(c, int(n), float(m.sum())) for c, m, n in (ds[i % len(ds)] for i in range(30))]

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)


def test_dataloader_workers_reproducible(tiny: Path) -> None:
    mean, std = _stats(tiny)
    ds = Text2MotionDataset(tiny, SPEC, mean, std, split="all", seed=1)

    def run() -> list[int]:
        loader = torch.utils.data.DataLoader(
            ds, batch_size=4, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0)
        )
        return [int(v) for batch in loader for v in batch[2]]

    assert run() == run()


def test_rejects_wrong_stats_shape(tiny: Path) -> None:
    mean, std = _stats(tiny)
    with pytest.raises(ValueError, match=r"expected \(263,\)"):
        Text2MotionDataset(tiny, SPEC, mean[:251], std, split="all")


def test_eval_dataset_sorted_pointer_and_collate(tiny: Path) -> None:
    mean, std = _stats(tiny)
    ds = Text2MotionDatasetEval(tiny, SPEC, mean, std, FakeVectorizer(), split="all", seed=0)
    lengths = [item.length for item in ds.items]
    assert lengths == sorted(lengths) and len(ds) == 11 and ds.pointer == 0
    ds.reset_max_len(100)
    assert ds.pointer == int(np.searchsorted(lengths, 100)) and len(ds) == 11 - ds.pointer
    assert ds[0][5] <= 196 and ds.items[ds.pointer].length >= 100
    with pytest.raises(ValueError):
        ds.reset_max_len(300)
    ds.reset_max_len(20)
    word_embs, pos, caption, sent_len, motion, length, tokens = ds[0]
    assert word_embs.shape == (22, 300) and motion.shape == (196, 263)
    assert tokens.startswith("sos/OTHER_") and len(tokens.split("_")) >= 22
    batch = collate_by_sent_len([ds[i] for i in range(len(ds))])
    assert torch.all(batch[3][:-1] >= batch[3][1:])
    assert torch.equal(batch[0][:, 0, 0].long(), batch[3])  # rows stay aligned after the sort


# ---------------------------------------------------------------------------------------------------- stats/checks


def test_mean_std_group_average() -> None:
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(n, 263)).astype(np.float32) * np.linspace(0.1, 3, 263) for n in (50, 70)]
    mean, std = compute_mean_std(clips, SPEC)
    frames = np.concatenate(clips)
    np.testing.assert_allclose(mean, frames.mean(0), rtol=1e-5, atol=1e-6)
    for sl in SPEC.feature_slices.values():
        np.testing.assert_allclose(std[sl], frames.std(0)[sl].mean(), rtol=1e-5)
    assert len(np.unique(std)) == 7


def test_group_std_reproduces_released_humanml3d_std() -> None:
    """The released Std.npy is constant inside each block (docs/data.md#normalisation values)."""
    ref = Path(__file__).resolve().parents[2] / "shared" / "reference" / "humanml3d" / "Std.npy"
    if not ref.is_file():
        pytest.skip("shared reference data not available")
    std = np.load(ref)
    for sl, value in zip(
        SPEC.feature_slices.values(), (0.0128256, 0.0169271, 0.153766, 0.122244, 0.299692, 0.0194703, 0.355933)
    ):
        assert np.allclose(std[sl], value, rtol=1e-5)


def test_tiny_dataset_is_clean(tiny: Path) -> None:
    assert check_dataset(tiny, SPEC) == []
    assert ensure_dataset_ok(tiny.parent, SPEC) == []  # parent folder accepted too
    mean, std = _stats(tiny)
    frames = np.concatenate([np.load(p) for p in sorted((tiny / "new_joint_vecs").glob("*.npy"))])
    assert math.isclose(float(mean[0]), float(frames[:, 0].mean()), rel_tol=1e-4, abs_tol=1e-6)


def test_ensure_dataset_ok_lists_every_error(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path, "t2m", n_clips=4, seed=1)
    (root / "texts" / "000001.txt").unlink()
    np.save(root / "Std.npy", np.ones(10, np.float32))
    with pytest.raises(ValueError) as info:
        ensure_dataset_ok(root, SPEC)
    message = str(info.value)
    assert "2 problem(s)" in message and "motion_without_captions" in message and "stats_shape" in message


def test_kit_tiny_dataset(tmp_path: Path) -> None:
    kit = get_dataset_spec("kit")
    root = make_tiny_dataset(tmp_path, "kit", n_clips=4, seed=0)
    assert root.name == "KIT-ML" and check_dataset(root, kit) == []
    mean, std = DatasetPaths(root).load_mean_std()
    ds = Text2MotionDataset(root, kit, mean, std, split="train")
    assert ds[0][1].shape == (196, 251)
