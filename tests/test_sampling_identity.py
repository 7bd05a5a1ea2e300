"""Seeded identity with the official code: every result of sampling_ref.npz (and the seeded results of
mask_ref.npz / res_ref.npz) reproduced id for id, with torch's global generator seeded as the reference did and
with a ``torch.Generator`` seeded the same way.

Fixture: ../shared/reference/official_fixture (official MoMask code @ 94a6636, random weights; see its README
for the call order). Skips, saying why, when it is absent. The pipeline-level keys are in test_pipeline.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.transformer.build import load_mask_transformer, load_residual_transformer
from models.transformer.sampling import (
    MASK_DRAW_ORDER,
    RES_DRAW_ORDER,
    edit_base_tokens,
    generate_base_tokens,
    generate_residual_tokens,
    uniform_in_order,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models, one thread

MASK_KEYS = ("mask_gumbel_t1", "mask_categorical_t0p7", "mask_gumbel_t0p7")
RES_KEYS = ("res_t1_cs5", "res_t0p8_cs5")


@pytest.fixture(scope="module")
def models(fixture_dir):
    runs = fixture_dir / "checkpoints" / "t2m"
    mask, _ = load_mask_transformer(runs / "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1")
    res, _ = load_residual_transformer(runs / "tres_nlayer2_ld64_ff128_cdp0.2_sw")
    return mask.eval(), res.eval(), np.load(fixture_dir / "sampling_ref.npz")


def _seeded(seed: int, use_generator: bool) -> torch.Generator | None:
    """The reference's ``torch.manual_seed(seed)`` on the global generator, or an own generator with that seed."""
    if use_generator:
        torch.manual_seed(seed + 1)  # the global state must not matter then
        return torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return None


def _mask_generate(mask, ref, key: str, generator: torch.Generator | None) -> np.ndarray:
    return generate_base_tokens(
        mask,
        torch.from_numpy(ref["cond"]),
        torch.from_numpy(ref[f"{key}_m_lens_tokens"]),
        timesteps=int(ref[f"{key}_timesteps"]),
        cond_scale=float(ref[f"{key}_cond_scale"]),
        temperature=float(ref[f"{key}_temperature"]),
        topk_filter_thres=float(ref[f"{key}_topk_filter_thres"]),
        gsample=bool(ref[f"{key}_gsample"]),
        generator=generator,
    ).numpy()


@pytest.mark.parametrize("use_generator", [False, True], ids=["global", "generator"])
@pytest.mark.parametrize("key", MASK_KEYS)
def test_masked_generation_matches_official(models, key: str, use_generator: bool) -> None:
    mask, _, ref = models
    ids = _mask_generate(mask, ref, key, _seeded(int(ref[f"{key}_seed"]), use_generator))
    np.testing.assert_array_equal(ids, ref[f"{key}_ids"])


@pytest.mark.parametrize("use_generator", [False, True], ids=["global", "generator"])
@pytest.mark.parametrize("key", RES_KEYS)
def test_residual_generation_matches_official(models, key: str, use_generator: bool) -> None:
    _, res, ref = models
    generator = _seeded(int(ref[f"{key}_seed"]), use_generator)
    ids = generate_residual_tokens(
        res,
        torch.from_numpy(ref["res_base_ids"]),
        torch.from_numpy(ref["cond"]),
        torch.from_numpy(ref[f"{key}_m_lens_tokens"]),
        temperature=float(ref[f"{key}_temperature"]),
        topk_filter_thres=float(ref[f"{key}_topk_filter_thres"]),
        cond_scale=float(ref[f"{key}_cond_scale"]),
        num_res_layers=int(ref[f"{key}_num_res_layers"]),
        generator=generator,
    )
    np.testing.assert_array_equal(ids.numpy(), ref[f"{key}_ids"])


def test_older_seeded_refs_match(models, fixture_dir) -> None:
    """mask_ref/res_ref seeded results (categorical masked; residual identical to res_t1_cs5)."""
    mask, res, _ = models
    mref, rref = np.load(fixture_dir / "mask_ref.npz"), np.load(fixture_dir / "res_ref.npz")
    torch.manual_seed(int(mref["generate_seed"]))
    ids = generate_base_tokens(
        mask, torch.from_numpy(mref["cond"]), torch.tensor([49, 30]), timesteps=10, cond_scale=4.0
    )
    np.testing.assert_array_equal(ids.numpy(), mref["generate_seeded_ids_steps10_cs4"])
    torch.manual_seed(1234)
    ids = generate_residual_tokens(
        res,
        torch.from_numpy(rref["generate_seeded_base"]),
        torch.from_numpy(rref["cond"]),
        torch.tensor([49, 30]),
        cond_scale=5.0,
    )
    np.testing.assert_array_equal(ids.numpy(), rref["generate_seeded_all_ids_cs5"])


@pytest.mark.parametrize("key", ["mask_gumbel_t1", "mask_categorical_t0p7"])
def test_editing_every_token_draws_like_official_generation(models, key: str) -> None:
    """An edit whose mask covers the whole motion is the official generation (same schedule, same draws in the
    same memory order), whatever the source tokens are."""
    mask, _, ref = models
    m_lens = torch.from_numpy(ref[f"{key}_m_lens_tokens"])
    source = torch.randint(0, mask.num_tokens, (2, 49), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(int(ref[f"{key}_seed"]))
    ids = edit_base_tokens(
        mask,
        source,
        torch.from_numpy(ref["cond"]),
        m_lens,
        torch.ones(2, 49, dtype=torch.bool),
        timesteps=int(ref[f"{key}_timesteps"]),
        cond_scale=float(ref[f"{key}_cond_scale"]),
        temperature=float(ref[f"{key}_temperature"]),
        gsample=bool(ref[f"{key}_gsample"]),
    )
    np.testing.assert_array_equal(ids.numpy(), ref[f"{key}_ids"])


def test_draw_order_is_the_references_memory_order() -> None:
    """The noise equals a contiguous draw in the reference's layout, permuted to ours (strides as observed)."""
    like = torch.empty(2, 49, 32)
    got = uniform_in_order(like, MASK_DRAW_ORDER, torch.Generator().manual_seed(7))
    want = torch.empty(49, 2, 32).uniform_(generator=torch.Generator().manual_seed(7)).permute(1, 0, 2)
    assert torch.equal(got, want) and got.stride() == (32, 64, 1)
    got = uniform_in_order(torch.empty(2, 49, 33), RES_DRAW_ORDER, torch.Generator().manual_seed(7))
    assert got.stride() == (1617, 1, 49)
    plain = uniform_in_order(like, None, torch.Generator().manual_seed(7))
    assert torch.equal(plain, torch.empty(2, 49, 32).uniform_(generator=torch.Generator().manual_seed(7)))


def test_repeated_prompts_share_their_first_step(models, monkeypatch) -> None:
    """A prompt sampled several times is one input at the first step (every token masked): it is run once, and
    the seeded result is the one of running every row."""
    from models.transformer import sampling

    mask, _, ref = models
    cond = torch.from_numpy(ref["cond"])[[0, 0, 0, 1]]
    m_lens = torch.tensor([49, 49, 49, 30])
    sizes: list[int] = []
    hook = mask.register_forward_pre_hook(lambda _, args: sizes.append(len(args[0])))

    def run() -> np.ndarray:
        sizes.clear()
        torch.manual_seed(3)
        return generate_base_tokens(mask, cond, m_lens, timesteps=6, cond_scale=4.0, gsample=True).numpy()

    try:
        shared, shared_sizes = run(), list(sizes)
        monkeypatch.setattr(sampling, "_distinct_rows", lambda forward, ids, cond: forward(slice(None)))
        every_row = run()
    finally:
        hook.remove()
    assert shared_sizes[0] == 2 * 2 and sizes[0] == 2 * 4  # distinct rows x (conditional, unconditional)
    assert shared_sizes[1:] == sizes[1:] == [2 * 4] * 5  # later steps run every row
    np.testing.assert_array_equal(shared, every_row)
    assert len({tuple(r) for r in shared[:3]}) > 1  # the repeats still differ after the first step
