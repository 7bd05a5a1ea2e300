"""The RVQ-VAE on a CUDA device: official-fixture equivalence and a resumable training run (marked gpu)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

import train_vq
from models.vq.build import load_rvqvae
from tests.vq_synthetic import make_dataset, tiny_vq_args
from training.vq import train_vq as real_train_vq
from utils.checkpoint import load_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE = SHARED / "reference" / "official_fixture"
RUN = FIXTURE / "checkpoints" / "t2m" / "rvq_nq6_dc64_nc32_w64"

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture
def exact_fp32():
    """TF32 convolutions/matmuls (PyTorch's CUDA default for cuDNN) are not float32-exact; the official
    references were computed in float32 on the CPU."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.skipif(not RUN.is_dir(), reason=f"official fixture not found at {FIXTURE}")
def test_fixture_on_cuda(exact_fp32) -> None:
    model = load_rvqvae(RUN, device="cuda")
    with np.load(FIXTURE / "vq_ref.npz") as z:
        ref = {k: z[k] for k in z.files}
    x = torch.from_numpy(ref["x_norm"]).to("cuda")
    with torch.no_grad():
        codes, per_layer = model.encode(x[:, :168])
        codes_170, _ = model.encode(x)
        decoded = model.forward_decoder(torch.from_numpy(ref["codes_T168"]).to("cuda"))
        first3 = model.forward_decoder(torch.from_numpy(ref["codes_first3_rest_minus1"]).to("cuda"))
        recon, _, _ = model(x[:, :168])
    np.testing.assert_array_equal(codes.cpu().numpy(), ref["codes_T168"])
    np.testing.assert_array_equal(codes_170.cpu().numpy(), ref["codes_T170"])
    tol = dict(atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(per_layer.cpu().numpy(), ref["quantized_per_layer_T168"], **tol)
    np.testing.assert_allclose(decoded.cpu().numpy(), ref["decoded_T168"], **tol)
    np.testing.assert_allclose(first3.cpu().numpy(), ref["decoded_first3"], **tol)
    np.testing.assert_allclose(recon.cpu().numpy(), ref["forward_eval_T168"], **tol)


@pytest.fixture
def restore_cudnn_flags():
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def test_training_and_resume_on_cuda(tmp_path: Path, monkeypatch, restore_cudnn_flags) -> None:
    """Kill after step 17 (last save at 10) and resume == 30 straight steps, bit for bit, on the GPU with
    ``--deterministic`` (without it cuDNN's non-deterministic kernels let the runs drift apart)."""
    make_dataset(tmp_path / "data")
    common = dict(
        device="cuda",
        deterministic=True,
        max_steps=30,
        batch_size=16,
        warm_up_iter=5,
        milestones="16",
        save_latest=10,
        quantize_dropout_prob=0.5,
    )
    train_vq.main(tiny_vq_args(tmp_path / "data", tmp_path / "a", **common))
    straight = load_checkpoint(tmp_path / "a" / "t2m" / "tiny" / "model" / "latest.tar")

    def crash(state) -> None:
        if state.total_it == 17:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(train_vq, "train_vq", functools.partial(real_train_vq, step_callback=crash))
    with pytest.raises(KeyboardInterrupt):
        train_vq.main(tiny_vq_args(tmp_path / "data", tmp_path / "b", **common))
    monkeypatch.setattr(train_vq, "train_vq", real_train_vq)
    train_vq.main(tiny_vq_args(tmp_path / "data", tmp_path / "b", is_continue=True, **common))
    resumed = load_checkpoint(tmp_path / "b" / "t2m" / "tiny" / "model" / "latest.tar")
    assert resumed["total_it"] == straight["total_it"] == 30
    assert resumed["scheduler"] == straight["scheduler"]
    for key in ("vq_model", "vq_codebook_state"):
        for name, value in straight[key].items():
            assert torch.equal(value, resumed[key][name]), name
