"""Masked transformer: official-fixture equivalence, generation/editing properties, input validation.

Fixture: ../shared/reference/official_fixture (official MoMask code @ 94a6636, small config, random weights;
outputs computed by the official code, see its README). Tests that need it skip when it is absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from models.transformer.build import load_mask_transformer
from models.transformer.common import sinusoidal_table
from models.transformer.mask_transformer import MaskTransformer, MaskTransformerConfig
from models.transformer.sampling import (
    categorical_sample,
    cosine_schedule,
    edit_base_tokens,
    generate_base_tokens,
    gumbel_sample,
    top_k_filter,
)
from utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE = SHARED / "reference" / "official_fixture"
CKPT = FIXTURE / "checkpoints" / "t2m"
MASK_RUN = CKPT / "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1"
VQ_RUN = CKPT / "rvq_nq6_dc64_nc32_w64"


def need_fixture() -> None:
    if not FIXTURE.is_dir():
        pytest.skip(f"official fixture not found at {FIXTURE}")


@pytest.fixture(scope="module")
def official():
    need_fixture()
    model, opt = load_mask_transformer(MASK_RUN)
    return model, np.load(FIXTURE / "mask_ref.npz")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models, one thread


def tiny_model(seed: int = 0, num_tokens: int = 16) -> MaskTransformer:
    torch.manual_seed(seed)
    cfg = MaskTransformerConfig(
        num_tokens=num_tokens,
        code_dim=16,
        latent_dim=32,
        ff_size=64,
        num_layers=2,
        num_heads=2,
        dropout=0.1,
        clip_dim=8,
    )
    return MaskTransformer(cfg).eval()


# ---- official equivalence ----------------------------------------------------------------------------------------
def test_official_logits_match(official) -> None:
    model, ref = official
    ids, pad, cond = (torch.from_numpy(ref[k]) for k in ("ids", "padding_mask", "cond"))
    with torch.no_grad():
        got = {
            "logits_cond": model(ids, cond, pad),
            "logits_uncond": model(ids, cond, pad, force_mask=True),
            "logits_cfg4": model.forward_with_cond_scale(ids, cond, pad, 4.0),
        }
        two_pass = model.forward_with_cond_scale(ids, cond, pad, 4.0, batched=False)
    for key, value in got.items():
        torch.testing.assert_close(value, torch.from_numpy(ref[key]), atol=1e-4, rtol=1e-4, msg=key)
    torch.testing.assert_close(got["logits_cfg4"], two_pass, atol=1e-5, rtol=1e-5)
    assert model.mask_id == int(ref["mask_id"]) and model.pad_id == int(ref["pad_id"])


def test_official_seeded_generation_reproduced(official) -> None:
    """Same RNG consumption as the official generate: torch.manual_seed(1234) -> identical ids."""
    model, ref = official
    torch.manual_seed(int(ref["generate_seed"]))
    ids = generate_base_tokens(
        model, torch.from_numpy(ref["cond"]), torch.tensor([49, 30]), timesteps=10, cond_scale=4.0
    )
    np.testing.assert_array_equal(ids.numpy(), ref["generate_seeded_ids_steps10_cs4"])


def test_positional_table_matches_official_buffer() -> None:
    need_fixture()
    sd = load_checkpoint(MASK_RUN / "model" / "latest.tar")["t2m_transformer"]
    official = sd["position_enc.pe"][:, 0]
    ours = sinusoidal_table(5000, 64)
    # float32 rounds the angle p·ω to within half an ulp of p (≈ 6e-8·p), and CPUs' vectorised sin/cos
    # kernels differ by an ulp or two, so row p may differ by about 1.2e-7·p + 2e-6 between machines; a wrong
    # frequency or a sin/cos swap is off by O(1).
    bound = 1.2e-7 * torch.arange(5000.0)[:, None] + 2e-6
    assert ours.shape == official.shape
    assert bool(((ours - official).abs() <= bound).all()), float(((ours - official).abs() - bound).max())


def test_fallback_key_and_clip_keys_tolerated(tmp_path: Path) -> None:
    need_fixture()
    run = tmp_path / "t2m" / "m"
    (run / "model").mkdir(parents=True)
    shutil.copy(MASK_RUN / "opt.txt", run / "opt.txt")
    shutil.copytree(VQ_RUN, tmp_path / "t2m" / VQ_RUN.name)
    sd = dict(load_checkpoint(MASK_RUN / "model" / "latest.tar")["t2m_transformer"])
    sd["clip_model.token_embedding.weight"] = torch.zeros(3, 4)
    save_checkpoint(run / "model" / "latest.tar", {"trans": sd, "ep": 0})
    model, _ = load_mask_transformer(run)
    ref, _ = load_mask_transformer(MASK_RUN)
    for (k, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), k


def test_optimizer_state_of_official_checkpoint_fits_parameter_order() -> None:
    """Our parameter order equals the official one, so its AdamW state loads onto the right tensors."""
    need_fixture()
    model, _ = load_mask_transformer(MASK_RUN)
    state = load_checkpoint(MASK_RUN / "model" / "latest.tar")["opt_t2m_transformer"]
    params = list(model.parameters())
    assert len(params) == len(state["param_groups"][0]["params"])
    for i, p in enumerate(params):
        assert state["state"][i]["exp_avg"].shape == p.shape, i


def test_vq_with_other_codebook_size_is_a_clear_error(tmp_path: Path) -> None:
    need_fixture()
    vq = tmp_path / "vq"
    vq.mkdir()
    (vq / "opt.txt").write_text((VQ_RUN / "opt.txt").read_text().replace("nb_code: 32", "nb_code: 64"))
    with pytest.raises(CheckpointError, match="nb_code 64"):
        load_mask_transformer(MASK_RUN, vq_dir=vq)


# ---- sampling primitives ----------------------------------------------------------------------------------------
def test_top_k_keeps_52_of_512() -> None:
    logits = torch.randn(3, 5, 512, generator=torch.Generator().manual_seed(0))
    kept = torch.isfinite(top_k_filter(logits, 0.9))
    assert (kept.sum(-1) == 52).all()
    assert torch.equal(kept, logits >= logits.topk(52, dim=-1).values[..., -1:])


def test_cosine_schedule_monotone_and_endpoints() -> None:
    t = torch.linspace(0, 1, 18)
    p = cosine_schedule(t)
    assert p[0] == 1 and abs(p[-1]) < 1e-6 and (p[1:] <= p[:-1]).all()


def test_samplers_respect_filter_and_generator() -> None:
    g = torch.Generator().manual_seed(1)
    logits = top_k_filter(torch.randn(4, 7, 33, generator=g), 0.9)
    for sample in (gumbel_sample, categorical_sample):
        a = sample(logits, 1.0, torch.Generator().manual_seed(5))
        b = sample(logits, 1.0, torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
        assert torch.isfinite(logits.gather(-1, a[..., None])).all()
    assert torch.equal(categorical_sample(logits, 0.0), logits.argmax(-1))
    assert torch.equal(gumbel_sample(logits, 0.0, torch.Generator().manual_seed(3)), logits.argmax(-1))


# ---- generation properties -----------------------------------------------------------------------------------------
def test_generation_fills_every_position_and_respects_lengths() -> None:
    model = tiny_model()
    cond = torch.randn(3, 8)
    m_lens = torch.tensor([49, 7, 20])
    ids = generate_base_tokens(
        model, cond, m_lens, timesteps=6, cond_scale=3.0, generator=torch.Generator().manual_seed(0)
    )
    assert ids.shape == (3, 49)
    valid = torch.arange(49)[None] < m_lens[:, None]
    assert ((ids >= 0) & (ids < model.num_tokens))[valid].all()
    assert (ids[~valid] == -1).all()


@pytest.mark.parametrize("gsample", [False, True])
def test_generation_deterministic_with_generator(gsample: bool) -> None:
    model, cond = tiny_model(), torch.randn(2, 8)
    runs = [
        generate_base_tokens(
            model, cond, torch.tensor([12, 9]), timesteps=5, gsample=gsample, generator=torch.Generator().manual_seed(7)
        )
        for _ in range(2)
    ]
    assert torch.equal(*runs)
    other = generate_base_tokens(
        model, cond, torch.tensor([12, 9]), timesteps=5, gsample=gsample, generator=torch.Generator().manual_seed(8)
    )
    assert not torch.equal(runs[0], other)


def test_temperature_zero_is_deterministic_without_generator() -> None:
    model, cond = tiny_model(), torch.randn(2, 8)
    torch.manual_seed(0)
    a = generate_base_tokens(model, cond, torch.tensor([10, 4]), timesteps=4, temperature=0.0)
    torch.manual_seed(1)
    b = generate_base_tokens(model, cond, torch.tensor([10, 4]), timesteps=4, temperature=0.0)
    assert torch.equal(a, b)


@pytest.mark.parametrize("cond_scale,batched,calls,rows", [(1.0, True, 1, 2), (4.0, True, 1, 4), (4.0, False, 2, 4)])
def test_forward_passes_per_step(cond_scale: float, batched: bool, calls: int, rows: int) -> None:
    """CFG scale 1: one pass of B rows per step; scale > 1: cond + uncond (2B rows, one batched call or two)."""
    model, seen = tiny_model(), []
    model.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    generate_base_tokens(
        model, torch.randn(2, 8), torch.tensor([8, 5]), timesteps=3, cond_scale=cond_scale, batched_cfg=batched
    )
    assert len(seen) == 3 * calls and sum(seen) == 3 * rows


@pytest.mark.parametrize("bad", [[0], [50], [10, 0]])
def test_bad_lengths_raise(bad: list[int]) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="out of range"):
        generate_base_tokens(model, torch.randn(len(bad), 8), torch.tensor(bad))


def test_wrong_condition_width_raises() -> None:
    with pytest.raises(ValueError, match="clip_dim"):
        generate_base_tokens(tiny_model(), torch.randn(1, 512), torch.tensor([5]))


# ---- editing ---------------------------------------------------------------------------------------------------
def test_edit_changes_only_the_masked_span() -> None:
    model = tiny_model(num_tokens=16)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 16, (2, 20), generator=g)
    m_lens = torch.tensor([20, 15])
    span = torch.zeros(2, 20, dtype=torch.bool)
    span[:, 5:11] = True
    changed = torch.zeros_like(span)
    for seed in range(4):
        out = edit_base_tokens(
            model,
            tokens,
            torch.randn(2, 8, generator=g),
            m_lens,
            span,
            timesteps=5,
            cond_scale=2.0,
            generator=torch.Generator().manual_seed(seed),
        )
        valid = torch.arange(20)[None] < m_lens[:, None]
        assert torch.equal(out[valid & ~span], tokens[valid & ~span])
        assert (out[~valid] == -1).all()
        assert ((out >= 0) & (out < 16))[valid].all()
        changed |= out != tokens
    assert changed[span].any() and not changed[~span & (torch.arange(20)[None] < 15)].any()


def test_mask_free_edit_keeps_valid_ids_and_padding() -> None:
    model, tokens = tiny_model(), torch.randint(0, 16, (1, 12))
    out = edit_base_tokens(
        model,
        tokens,
        torch.randn(1, 8),
        torch.tensor([9]),
        None,
        timesteps=4,
        generator=torch.Generator().manual_seed(0),
    )
    assert ((out[0, :9] >= 0) & (out[0, :9] < 16)).all() and (out[0, 9:] == -1).all()


def test_empty_edit_mask_raises() -> None:
    tokens = torch.randint(0, 16, (1, 12))
    span = torch.zeros(1, 12, dtype=torch.bool)
    span[0, 10:] = True  # only padding
    with pytest.raises(ValueError, match="no token"):
        edit_base_tokens(tiny_model(), tokens, torch.randn(1, 8), torch.tensor([9]), span)


# ---- training objective ---------------------------------------------------------------------------------------------
def test_bert_corruption_split_and_padding() -> None:
    """Masked positions: 10 % random id, 0.9·0.88 = 79.2 % mask id (ratio 0.126 observable); padding -> pad id."""
    model = tiny_model(num_tokens=512).train()
    captured = {}
    model.register_forward_pre_hook(lambda mod, args: captured.update(x=args[0].clone()))
    torch.manual_seed(0)
    ids = torch.randint(0, 512, (512, 49))
    m_lens = torch.randint(5, 50, (512,))
    out = model.masked_loss(ids, torch.randn(512, 8), m_lens)
    x = captured["x"]
    valid = torch.arange(49)[None] < m_lens[:, None]
    assert (x[~valid] == model.pad_id).all()
    n_mask_id = ((x == model.mask_id) & valid).sum().item()
    n_random = ((x != ids) & (x != model.mask_id) & valid).sum().item()
    assert n_mask_id > 1000
    assert abs(n_random / n_mask_id - 0.1 * (511 / 512) / 0.792) < 0.015
    assert torch.isfinite(out.loss) and 0.0 <= out.acc.item() <= 1.0
