"""eval_t2m.py / eval_t2m_vq.py end to end on the official-format fixture (random weights) + tiny synthetic data."""

from __future__ import annotations

import importlib
import pickle
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.text.base import TextEncoder
from tests.evaluator_helpers import (
    one_torch_thread,  # noqa: F401  (autouse fixture)
    write_small_evaluator,
    write_tiny_dataset,
    write_tiny_glove,
)
from tests.fuzz_inputs import Payload
from utils.cli import run_cli

MASK = "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1"
RES = "tres_nlayer2_ld64_ff128_cdp0.2_sw"
VQ = "rvq_nq6_dc64_nc32_w64"


@pytest.fixture()
def setup(tmp_path: Path, fixture_dir: Path) -> tuple[Path, list[str]]:
    ckpt = tmp_path / "checkpoints"
    shutil.copytree(fixture_dir / "checkpoints" / "t2m", ckpt / "t2m")
    for p in [ckpt, *ckpt.rglob("*")]:  # the shared fixture is read-only; this copy is the user's own
        p.chmod(p.stat().st_mode | 0o200)
    write_small_evaluator(ckpt, "t2m")
    write_tiny_dataset(tmp_path / "HumanML3D", num_clips=20)
    write_tiny_glove(tmp_path / "glove")
    common = [
        "--dataset_name",
        "t2m",
        "--checkpoints_dir",
        str(ckpt),
        "--data_root",
        str(tmp_path),
        "--glove_dir",
        str(tmp_path / "glove"),
        "--device",
        "cpu",
        "--repeat_times",
        "2",
        "--batch_size",
        "8",
        "--diversity_times",
        "10",
    ]
    return ckpt, common


def test_eval_t2m_vq_writes_official_log(setup) -> None:
    eval_t2m_vq = importlib.import_module("eval_t2m_vq")
    ckpt, common = setup
    results = eval_t2m_vq.main([*common, "--name", VQ, "--ext", "vq_test"])
    assert list(results) == ["net_best_fid.tar"]
    m = results["net_best_fid.tar"]
    assert len(m.per_repeat["FID"]) == 2 and np.isfinite(m.mean("FID")) and m.mean("MPJPE") > 0
    log = (ckpt / "t2m" / VQ / "eval" / "vq_test.log").read_text()
    assert log.startswith("net_best_fid.tar final result:\n\tFID: ")
    assert "\tMAE:" in log and "Multimodality" not in log


def test_eval_t2m_vq_finds_what_train_vq_writes(setup) -> None:
    """Our VQ trainer without an evaluator writes net_best_loss.tar (+ latest.tar): found with no --which_epoch."""
    eval_t2m_vq = importlib.import_module("eval_t2m_vq")
    ckpt, common = setup
    model = ckpt / "t2m" / VQ / "model"
    (model / "net_best_fid.tar").rename(model / "net_best_loss.tar")
    shutil.copy(model / "net_best_loss.tar", model / "latest.tar")
    results = eval_t2m_vq.main([*common, "--name", VQ, "--ext", "ours", "--repeat_times", "1"])
    assert list(results) == ["net_best_loss.tar"]
    assert (ckpt / "t2m" / VQ / "eval" / "ours.log").read_text().startswith("net_best_loss.tar final result:")
    assert list(
        eval_t2m_vq.main([*common, "--name", VQ, "--ext", "all", "--repeat_times", "1", "--which_epoch", "tar"])
    ) == ["latest.tar", "net_best_loss.tar"]


class HashTextEncoder(TextEncoder):
    """Deterministic pseudo-random 512-d vector per caption (stands in for CLIP, unavailable offline)."""

    name, dim, max_tokens = "hash", 512, 77

    def _encode_batch(self, captions: list[str]) -> torch.Tensor:
        return torch.stack(
            [torch.randn(512, generator=torch.Generator().manual_seed(zlib.crc32(c.encode()))) for c in captions]
        )


@pytest.mark.parametrize("estimated", [False, True])
def test_eval_t2m_mask_plus_residual(setup, monkeypatch, estimated: bool) -> None:
    eval_t2m = importlib.import_module("eval_t2m")
    ckpt, common = setup
    original = eval_t2m.MoMaskPipeline.from_checkpoints
    encoder = HashTextEncoder(nn.Identity())
    monkeypatch.setattr(
        eval_t2m.MoMaskPipeline, "from_checkpoints", lambda *a, **k: original(*a, **{**k, "text_encoder": encoder})
    )
    argv = [
        *common,
        "--name",
        MASK,
        "--res_name",
        RES,
        "--time_steps",
        "3",
        "--mm_batches",
        "1",
        "--mm_repeats",
        "11",
        "--ext",
        "t2m_test",
    ] + (["--use_estimated_length"] if estimated else [])
    results = eval_t2m.main(argv)
    m = results["latest.tar"]
    assert m.label == ("estimated length" if estimated else "ground-truth length")
    for key in ("FID", "Diversity", "TOP1", "TOP3", "Matching", "Multimodality"):
        assert len(m.per_repeat[key]) == 2 and np.isfinite(m.mean(key))
    assert m.mean("Multimodality") > 0  # sampled generations differ
    log = (ckpt / "t2m" / MASK / "eval" / "t2m_test.log").read_text()
    header = "latest.tar [estimated length] final result:" if estimated else "latest.tar final result:"
    assert log.startswith(header) and "\tMultimodality:" in log


def test_eval_t2m_missing_evaluator_named(setup, tmp_path) -> None:
    eval_t2m = importlib.import_module("eval_t2m")
    ckpt, common = setup
    shutil.rmtree(ckpt / "t2m" / "text_mot_match")
    with pytest.raises(FileNotFoundError, match=r"text_mot_match/model/finest\.tar.*humanml3d_evaluator\.zip"):
        eval_t2m.main([*common, "--name", MASK, "--res_name", RES])


def test_eval_t2m_refuses_a_pickle_payload_glove(setup, monkeypatch, tmp_path, capsys) -> None:
    eval_t2m = importlib.import_module("eval_t2m")
    ckpt, common = setup
    marker = tmp_path / "PAYLOAD_RAN"
    (tmp_path / "glove" / "our_vab_words.pkl").write_bytes(pickle.dumps(["unk", Payload(marker, "system")]))
    original = eval_t2m.MoMaskPipeline.from_checkpoints
    encoder = HashTextEncoder(nn.Identity())
    monkeypatch.setattr(
        eval_t2m.MoMaskPipeline, "from_checkpoints", lambda *a, **k: original(*a, **{**k, "text_encoder": encoder})
    )
    before = {p: p.read_bytes() for p in ckpt.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as info:
        run_cli(eval_t2m.main, [*common, "--name", MASK, "--res_name", RES, "--ext", "payload"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # the rest is the run's log
    assert info.value.code == 2 and len(errors) == 1 and "Traceback" not in err
    assert "our_vab_words.pkl" in errors[0] and "not a plain Python value" in errors[0]
    assert not marker.exists() and all(p.read_bytes() == data for p, data in before.items())  # only a log is new
