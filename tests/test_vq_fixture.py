"""The RVQ-VAE against the official-format fixture (../shared/reference/official_fixture, README there):
checkpoint written by the official MoMask code @94a6636, reference outputs computed by that code (float32, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.vq.build import load_rvqvae, load_vq_meta
from utils.checkpoint import VQ, CheckpointError, find_checkpoint, load_checkpoint, load_state_dict_strict

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE = SHARED / "reference" / "official_fixture"
RUN = FIXTURE / "checkpoints" / "t2m" / "rvq_nq6_dc64_nc32_w64"
TOL = dict(atol=1e-4, rtol=1e-4)

pytestmark = pytest.mark.skipif(not RUN.is_dir(), reason=f"official fixture not found at {FIXTURE}")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "vq_ref.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def model():
    return load_rvqvae(RUN)


def test_fixture_loads_strictly_from_opt_txt(model) -> None:
    cfg = model.config
    assert (cfg.nb_code, cfg.code_dim, cfg.width, cfg.num_quantizers, cfg.input_width) == (32, 64, 64, 6, 263)
    assert find_checkpoint(RUN / "model", VQ).name == "net_best_fid.tar"
    state = load_checkpoint(find_checkpoint(RUN / "model", VQ))
    own = model.state_dict()
    assert sorted(own) == sorted(state["vq_model"])  # no key editing, nothing extra or missing
    load_state_dict_strict(model, state["vq_model"])
    assert sum(p.numel() for p in model.parameters()) == 394_119  # fixture README parameter count
    assert not model.training


def test_fallback_key_net(tmp_path: Path) -> None:
    state = load_checkpoint(find_checkpoint(RUN / "model", VQ))
    (tmp_path / "model").mkdir()
    (tmp_path / "opt.txt").write_text((RUN / "opt.txt").read_text())
    torch.save({"net": state["vq_model"], "ep": 3}, tmp_path / "model" / "net_best_fid.tar")
    alt = load_rvqvae(tmp_path)
    torch.testing.assert_close(alt.quantizer.codebooks, load_rvqvae(RUN).quantizer.codebooks, atol=0, rtol=0)


def test_encode_matches_official(model, ref) -> None:
    x = torch.from_numpy(ref["x_norm"])
    with torch.no_grad():
        latent = model.encode_latent(x[:, :168])
        codes, per_layer = model.encode(x[:, :168])
        codes_170, _ = model.encode(x)
    np.testing.assert_allclose(latent.numpy(), ref["encoder_latent_T168"], **TOL)
    np.testing.assert_array_equal(codes.numpy(), ref["codes_T168"])
    np.testing.assert_array_equal(codes_170.numpy(), ref["codes_T170"])
    assert per_layer.shape == (6, 1, 64, 42)
    np.testing.assert_allclose(per_layer.numpy(), ref["quantized_per_layer_T168"], **TOL)
    np.testing.assert_allclose(model.quantizer.codebooks.numpy(), ref["codebooks"], atol=0, rtol=0)


def test_decode_and_forward_match_official(model, ref) -> None:
    x = torch.from_numpy(ref["x_norm"][:, :168])
    with torch.no_grad():
        decoded = model.forward_decoder(torch.from_numpy(ref["codes_T168"]))
        recon, _, _ = model(x)
        first3 = model.forward_decoder(torch.from_numpy(ref["codes_first3_rest_minus1"]))
        first3_short = model.forward_decoder(torch.from_numpy(ref["codes_first3_rest_minus1"][..., :3]))
    np.testing.assert_allclose(decoded.numpy(), ref["decoded_T168"], **TOL)
    np.testing.assert_allclose(recon.numpy(), ref["forward_eval_T168"], **TOL)
    np.testing.assert_allclose(first3.numpy(), ref["decoded_first3"], **TOL)
    np.testing.assert_allclose(first3_short.numpy(), ref["decoded_first3"], **TOL)


def test_per_layer_codes_equal_codebook_lookup(model, ref) -> None:
    codes = torch.from_numpy(ref["codes_T168"])
    looked_up = model.quantizer.get_codes_from_indices(codes)  # (Q, B, n, C)
    np.testing.assert_allclose(looked_up.permute(0, 1, 3, 2).numpy(), ref["quantized_per_layer_T168"], **TOL)


def test_meta_is_doubly_divided_std() -> None:
    raw_file = SHARED / "reference" / "humanml3d" / "Std.npy"
    if not raw_file.is_file():
        pytest.skip(f"{raw_file} not found")
    mean, std = load_vq_meta(RUN)
    raw_std = np.load(raw_file)
    idx = [0, 1, 2, 3, 259, 260, 261, 262]
    np.testing.assert_allclose(std[idx], raw_std[idx] / 25, rtol=1e-6)
    np.testing.assert_array_equal(np.delete(std, idx), np.delete(raw_std, idx))
    assert mean.shape == (263,)


def test_transformer_checkpoint_is_refused() -> None:
    other = FIXTURE / "checkpoints" / "t2m" / "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1" / "model" / "latest.tar"
    if not other.is_file():
        pytest.skip(f"{other} not found")
    with pytest.raises(CheckpointError, match="vq_model"):
        load_rvqvae(other)
