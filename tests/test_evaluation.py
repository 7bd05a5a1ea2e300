"""The benchmark loop (evaluation/benchmark.py) on tiny synthetic setups."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from evaluation.benchmark import (
    EvalBatch,
    Metrics,
    evaluate_t2m,
    format_official_log,
    format_table,
    reconstruction_generator,
)
from models.evaluator.word_vectorizer import WordVectorizer
from tests.evaluator_helpers import (
    one_torch_thread,  # noqa: F401  (autouse fixture)
    write_small_evaluator,
    write_tiny_dataset,
    write_tiny_glove,
)

B, N_BATCHES, T, D = 8, 6, 40, 263


def _memory_loader(seed: int = 0) -> list[tuple]:
    """Batches in the eval-dataset layout: (word_embs, pos_onehot, captions, sent_lens, motions, m_lens, tokens)."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(N_BATCHES):
        sent = torch.randint(3, 23, (B,), generator=g).sort(descending=True).values
        m_lens = torch.randint(3, T // 4 + 1, (B,), generator=g) * 4
        motions = torch.randn(B, T, D, generator=g)
        for i, n in enumerate(m_lens.tolist()):
            motions[i, n:] = 0
        batches.append(
            (
                torch.randn(B, 22, 300, generator=g),
                torch.rand(B, 22, 15, generator=g),
                [f"caption {i}" for i in range(B)],
                sent,
                motions,
                m_lens,
                ["a/DET"] * B,
            )
        )
    return batches


@pytest.fixture()
def evaluator(tmp_path):
    return write_small_evaluator(tmp_path, "t2m", seed=0)


def test_ground_truth_as_generation_gives_zero_fid(evaluator, caplog) -> None:
    loader = _memory_loader()
    calls = {True: 0, False: 0}

    def generate(batch: EvalBatch, is_mm: bool, repeats: int = 1):
        calls[is_mm] += repeats  # all generations of a batch come from one call
        return evaluator.denormalize(batch.motions).repeat(repeats, 1, 1), batch.m_lens.repeat(repeats)

    metrics = evaluate_t2m(
        loader,
        generate,
        evaluator,
        repeats=3,
        mm_batches=2,
        mm_repeats=11,
        diversity_times=10,
        rng=np.random.default_rng(0),
        progress=False,
    )
    s = metrics.summary()
    assert abs(s["FID"][0]) < 1e-6
    for k in ("TOP1", "TOP2", "TOP3", "Matching"):
        assert s[k][0] == pytest.approx(s[f"{k}_real"][0], abs=1e-5)
    assert s["Multimodality"] == pytest.approx((0.0, 0.0), abs=1e-5)  # identical generations
    assert 0 < s["TOP1"][0] <= s["TOP2"][0] <= s["TOP3"][0] <= 1
    assert calls == {True: 3 * 2 * 11, False: 3 * (N_BATCHES - 2)}
    assert all(len(v) == 3 for v in metrics.per_repeat.values())
    text = str(metrics)
    for name in ("FID", "Diversity", "TOP1", "TOP3", "Matching", "Multimodality"):
        assert name in text and "±" in text


def test_last_multimodality_generation_counts_for_fid(evaluator) -> None:
    """Only the final generation of a multimodality batch enters FID / R-precision (reference protocol)."""
    loader = _memory_loader(1)

    def generate(batch: EvalBatch, is_mm: bool, repeats: int = 1):
        raw = evaluator.denormalize(batch.motions).repeat(repeats, 1, 1)
        if is_mm:  # all but the last of the 11 generations are noise
            noisy = raw + 5 * torch.randn_like(raw)
            raw = torch.cat([noisy[: -len(batch)], raw[-len(batch) :]])
        return raw, batch.m_lens.repeat(repeats)

    metrics = evaluate_t2m(
        loader, generate, evaluator, repeats=1, mm_batches=2, mm_repeats=11, diversity_times=10, progress=False
    )
    assert abs(metrics.mean("FID")) < 1e-3
    assert metrics.mean("Multimodality") > 0.01


def test_noise_generation_is_detected(evaluator) -> None:
    loader = _memory_loader(2)

    def generate(batch: EvalBatch, is_mm: bool, repeats: int = 1):
        return evaluator.denormalize(batch.motions + 2.0), batch.m_lens  # shifted in evaluator space (R = 1)

    metrics = evaluate_t2m(loader, generate, evaluator, repeats=2, mm_batches=0, diversity_times=10, progress=False)
    assert metrics.mean("FID") > 1e-3  # ground truth gives < 1e-6 (first test)
    assert "Multimodality" not in metrics.per_repeat


def test_reconstruction_generator_round_trips_statistics(evaluator) -> None:
    """Model stats != evaluator stats: de-normalise with the model's, re-normalise with the evaluator's."""
    model_mean, model_std = torch.randn(D), torch.rand(D) + 0.5
    seen = {}

    def identity(x):
        seen["x"] = x
        return x

    batch = EvalBatch.from_loader(_memory_loader()[0])
    raw, lens = reconstruction_generator(identity, evaluator, model_mean, model_std)(batch, False)
    torch.testing.assert_close(seen["x"], (evaluator.denormalize(batch.motions) - model_mean) / model_std)
    torch.testing.assert_close(evaluator.normalize(raw), batch.motions, atol=1e-4, rtol=1e-4)
    assert torch.equal(lens, batch.m_lens)


def test_mpjpe_through_joints_fn(evaluator) -> None:
    loader = _memory_loader(3)[:2]

    def joints(raw: torch.Tensor) -> torch.Tensor:  # toy "recovery": 3 joints from the first 9 features
        return raw[:, :9].reshape(-1, 3, 3)

    def generate(batch: EvalBatch, is_mm: bool, repeats: int = 1):
        assert repeats == 1  # no multimodality batches here
        raw = evaluator.denormalize(batch.motions).clone()
        raw[..., 3:6] += torch.tensor([0.3, 0.0, 0.4])  # joint 1 off by 0.5 -> MPJPE 0.5 / 3
        return raw, batch.m_lens

    metrics = evaluate_t2m(
        loader, generate, evaluator, repeats=1, mm_batches=0, joints_fn=joints, diversity_times=10, progress=False
    )
    assert metrics.mean("MPJPE") == pytest.approx(0.5 / 3, rel=1e-4)


def test_official_log_and_table_format() -> None:
    m = Metrics(label="ground-truth length")
    m.add(
        {
            "FID": 0.1,
            "Diversity": 9.0,
            "TOP1": 0.5,
            "TOP2": 0.7,
            "TOP3": 0.8,
            "Matching": 3.0,
            "Multimodality": 1.2,
            "TOP1_real": 0.51,
            "TOP2_real": 0.70,
            "TOP3_real": 0.79,
            "Matching_real": 2.97,
            "Diversity_real": 9.5,
        }
    )
    m.add(
        {
            "FID": 0.3,
            "Diversity": 9.2,
            "TOP1": 0.52,
            "TOP2": 0.71,
            "TOP3": 0.8,
            "Matching": 3.1,
            "Multimodality": 1.4,
            "TOP1_real": 0.51,
            "TOP2_real": 0.70,
            "TOP3_real": 0.79,
            "Matching_real": 2.97,
            "Diversity_real": 9.5,
        }
    )
    ci = 1.96 * 0.1 / np.sqrt(2)
    log = format_official_log("latest.tar", m)
    assert log == (
        "latest.tar final result:\n"
        f"\tFID: 0.200, conf. {ci:.3f}\n"
        f"\tDiversity: 9.100, conf. {ci:.3f}\n"
        f"\tTOP1: 0.510, conf. {1.96 * 0.01 / np.sqrt(2):.3f}, TOP2. 0.705, conf. 0.007, TOP3. 0.800, "
        "conf. 0.000\n"
        f"\tMatching: 3.050, conf. {1.96 * 0.05 / np.sqrt(2):.3f}\n"
        f"\tMultimodality:1.300, conf.{ci:.3f}\n\n"
    )
    table = format_table({"MoMask": m})
    assert "| Real motion | 0.510±0.000 |" in table
    assert "| MoMask (ground-truth length) | 0.510±0.014 |" in table
    assert "MModality" in table and "MPJPE" not in table


def test_with_eval_dataset_class(tmp_path) -> None:
    """End to end through the data engineer's Text2MotionDatasetEval + collate and our WordVectorizer."""
    t2m_dataset = importlib.import_module("data.t2m_dataset")
    root = tmp_path / "HumanML3D"
    write_tiny_dataset(root)
    write_tiny_glove(tmp_path / "glove")
    evaluator = write_small_evaluator(tmp_path / "checkpoints", "t2m")
    from utils.skeleton import get_dataset_spec

    ds = t2m_dataset.Text2MotionDatasetEval(
        root,
        get_dataset_spec("t2m"),
        evaluator.mean.numpy(),
        evaluator.std.numpy(),
        WordVectorizer(tmp_path / "glove"),
        split="test",
    )
    loader = DataLoader(ds, batch_size=8, shuffle=True, drop_last=True, collate_fn=t2m_dataset.collate_by_sent_len)
    metrics = evaluate_t2m(
        loader,
        lambda b, mm, r: (evaluator.denormalize(b.motions).repeat(r, 1, 1), b.m_lens.repeat(r)),
        evaluator,
        repeats=2,
        mm_batches=1,
        mm_repeats=11,
        diversity_times=10,
        progress=False,
    )
    assert abs(metrics.mean("FID")) < 1e-3
    assert metrics.mean("TOP3") == pytest.approx(metrics.mean("TOP3_real"))
