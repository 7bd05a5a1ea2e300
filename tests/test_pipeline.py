"""The generation pipeline on the official-format fixture (random weights, official outputs), CPU."""

from __future__ import annotations

import copy
import dataclasses
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from evaluation.benchmark import EvalBatch, pipeline_generator
from models.control.optimise import Control
from models.pipeline import MoMaskPipeline, Sampling
from models.text.base import TextEncoder
from models.transformer.build import RunSampling, load_run_sampling
from models.transformer.common import SelfAttention
from utils.checkpoint import CheckpointError
from utils.cleanup import cleanup_at_origin
from utils.motion import recover_from_ric
from utils.precision import bf16_support
from visualization.export import MotionWriter

MASK = "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1"
RES = "tres_nlayer2_ld64_ff128_cdp0.2_sw"
FIXTURE_MASK_REF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "official_fixture" / "mask_ref.npz"


class FixtureTextEncoder(TextEncoder):
    """The fixture's fixed 512-d vector per caption (what the official code got from CLIP), else a
    deterministic pseudo-random vector per caption."""

    name, dim, max_tokens = "fixture", 512, 77

    def __init__(self, captions: list[str], vectors: np.ndarray) -> None:
        super().__init__(nn.Identity())
        self.table = {c: torch.as_tensor(v) for c, v in zip(captions, vectors)}

    def _encode_batch(self, captions: list[str]) -> torch.Tensor:
        def vec(c: str) -> torch.Tensor:
            if c in self.table:
                return self.table[c]
            return torch.randn(512, generator=torch.Generator().manual_seed(zlib.crc32(c.encode())))

        return torch.stack([vec(c) for c in captions])


@pytest.fixture(scope="module")
def pipe(fixture_dir: Path) -> MoMaskPipeline:
    tv = np.load(fixture_dir / "text_vectors.npz")
    encoder = FixtureTextEncoder([str(c) for c in tv["captions"]], tv["vectors"])
    return MoMaskPipeline.from_checkpoints(fixture_dir / "checkpoints", "t2m", MASK, RES, text_encoder=encoder)


def test_decode_matches_official_pipeline(pipe: MoMaskPipeline, fixture_dir: Path) -> None:
    """pipeline_ref.npz: forward_decoder(all_ids)·std + mean and recover_from_ric per sample (official code)."""
    ref = np.load(fixture_dir / "pipeline_ref.npz")
    ids = torch.as_tensor(ref["all_ids"])
    (f0, j0), (f1, j1) = pipe.decode(ids, torch.tensor([49, 30]))
    np.testing.assert_allclose(f0, ref["features_denorm"][0], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(j0, ref["joints_sample0"], atol=1e-4)
    np.testing.assert_allclose(j1, ref["joints_sample1"], atol=1e-4)


def test_generate_lengths_shapes_and_seeds(pipe: MoMaskPipeline) -> None:
    texts = ["a person walks forward and then turns around.", "someone jumps up and down twice."]
    a = pipe.generate(texts, [120, 58], seed=3, sampling=Sampling(time_steps=6))
    assert [m.joints.shape for m in a] == [(120, 22, 3), (56, 22, 3)]
    assert [m.features.shape for m in a] == [(120, 263), (56, 263)]
    assert a[0].tokens.shape == (30, 6) and (a[0].tokens[:, 0] >= 0).all()
    b = pipe.generate(texts, [120, 58], seed=3, sampling=Sampling(time_steps=6))
    c = pipe.generate(texts, [120, 58], seed=4, sampling=Sampling(time_steps=6))
    assert all(np.array_equal(x.tokens, y.tokens) for x, y in zip(a, b))
    assert not all(np.array_equal(x.tokens, y.tokens) for x, y in zip(a, c))


def test_generate_cleanup_returns_the_cleaned_joints_features(pipe: MoMaskPipeline, tmp_path: Path) -> None:
    """cleanup=False: the model's features and their decoded joints. cleanup=True: same tokens, the cleaned
    joints, and features that decode to them (what a saved features .npy and the joints/BVH files hold)."""
    texts, kw = ["a person walks forward."], dict(seed=5, sampling=Sampling(time_steps=4))
    (raw,) = pipe.generate(texts, [64], **kw)
    (clean,) = pipe.generate(texts, [64], cleanup=True, **kw)
    np.testing.assert_array_equal(raw.tokens, clean.tokens)
    np.testing.assert_allclose(raw.joints, recover_from_ric(torch.from_numpy(raw.features), 22).numpy(), atol=1e-6)
    cleaned = cleanup_at_origin(raw.joints, pipe.spec)
    np.testing.assert_allclose(clean.joints, cleaned, atol=1e-6)
    assert np.abs(clean.joints - raw.joints).max() > 1e-3  # the clean-up did something
    decoded = recover_from_ric(torch.from_numpy(clean.features), 22).numpy()
    np.testing.assert_allclose(decoded, clean.joints, atol=1e-4)
    writer = MotionWriter(tmp_path, pipe.spec, ["npy"], cleanup=True)
    writer.write(raw, sample=0, repeat=0)
    saved = np.load(tmp_path / "features" / "0" / "sample0_repeat0_len64.npy")
    joints = np.load(tmp_path / "joints" / "0" / "sample0_repeat0_len64.npy")
    np.testing.assert_allclose(recover_from_ric(torch.from_numpy(saved), 22).numpy(), joints, atol=1e-4)
    np.testing.assert_allclose(joints, clean.joints, atol=1e-6)


def test_estimated_lengths_are_never_empty(pipe: MoMaskPipeline) -> None:
    motions = pipe.generate(
        ["a man kicks with his left leg."] * 16, seed=0, sampling=Sampling(time_steps=2, use_res=False)
    )
    lengths = [m.num_frames for m in motions]
    assert all(4 <= n <= 196 and n % 4 == 0 for n in lengths) and all(m.length_estimated for m in motions)


def test_bad_lengths(pipe: MoMaskPipeline) -> None:
    with pytest.raises(ValueError, match="out of range"):
        pipe.generate(["walk"], [400])
    with pytest.raises(ValueError, match="out of range"):
        pipe.generate(["walk"], [0])
    with pytest.raises(ValueError, match="empty caption"):
        pipe.generate(["  "], [40])


def test_edit_keeps_unedited_tokens(pipe: MoMaskPipeline, reference_dir: Path) -> None:
    source = np.load(reference_dir / "humanml3d/new_joint_vecs/012314.npy")[:160]
    codes = pipe.encode_motion(source)[0, :40].cpu().numpy()
    out = pipe.edit(source, "a person sits down slowly.", [(40, 80)], seed=1, sampling=Sampling(time_steps=6))
    assert out.tokens.shape == codes.shape and out.features.shape == (160, 263)
    keep = np.ones(40, bool)
    keep[10:20] = False
    np.testing.assert_array_equal(out.tokens[keep], codes[keep])
    assert not np.array_equal(out.tokens[~keep], codes[~keep])
    with pytest.raises(ValueError, match="not a non-empty span inside the source's 160 frames"):
        pipe.edit(source, "jump", [(120, 180)])


def test_chained_long_motion(pipe: MoMaskPipeline) -> None:
    out = pipe.generate_long(
        ["a person walks forward and then turns around.", "a person sits down slowly."],
        [196, 160],
        seed=2,
        sampling=Sampling(time_steps=4),
    )
    assert out.joints.shape == (196 + 160, 22, 3)
    step = np.linalg.norm(np.diff(out.joints[:, 0], axis=0), axis=-1)
    assert np.isfinite(out.joints).all() and step.max() < 1.0


def test_decoding_margin_generates_longer_and_keeps_the_middle(pipe: MoMaskPipeline, monkeypatch) -> None:
    """A margin of k tokens: each motion is generated k tokens longer at both ends (the same draws as asking for
    those longer lengths), decoded, and the 4k frames at each end are cut; the kept frames start over the
    origin. -1 means the run's own margin; margins are refused where frames are decoded exactly."""
    texts = ["a person walks forward and then turns around.", "someone jumps up and down twice."]
    s = Sampling(time_steps=6, margin=2)
    motions = pipe.generate(texts, [120, 56], seed=3, sampling=s)
    ids = pipe.generate_codes(
        pipe.encode_text(texts), torch.tensor([30 + 4, 14 + 4]), dataclasses.replace(s, margin=0), pipe._generator(3)
    )
    with torch.no_grad():
        longer = pipe.denormalise(pipe.vq.forward_decoder(ids)).numpy()
    for b, (m, n) in enumerate(zip(motions, (30, 14))):
        assert m.features.shape == (4 * n, 263) and m.tokens.shape == (n, 6)
        np.testing.assert_array_equal(m.features, longer[b, 8 : 8 + 4 * n])
        np.testing.assert_array_equal(m.tokens, ids[b, 2 : 2 + n].numpy())
        np.testing.assert_allclose(m.joints[0, 0, [0, 2]], 0.0, atol=1e-6)
    assert not np.allclose(
        motions[0].features,
        pipe.generate(texts[:1], [120], seed=3, sampling=Sampling(time_steps=6, margin=0))[0].features,
    )
    monkeypatch.setattr(pipe, "run_sampling", RunSampling(margin=2))
    run_own = pipe.generate(texts, [120, 56], seed=3, sampling=dataclasses.replace(s, margin=-1))
    assert all(np.array_equal(a.features, b.features) for a, b in zip(run_own, motions))
    (full,) = pipe.generate(texts[:1], [196], seed=3, sampling=Sampling(time_steps=2, margin=3))  # 55 tokens
    assert full.features.shape == (196, 263)
    source = motions[0].features
    with pytest.raises(ValueError, match="margin"):
        pipe.edit(source, "jump", [(40, 80)], sampling=s)
    with pytest.raises(ValueError, match="margin"):
        pipe.generate_long(texts, [120, 120], sampling=s)
    with pytest.raises(ValueError, match="margin"):
        pipe.generate(texts[:1], [120], sampling=s, control=Control(objectives=[torch.sum]))


def test_run_sampling_file(tmp_path: Path) -> None:
    """sampling.json in a masked-transformer run: absent = the official sampling (margin 0, guidance 4); any of
    {"margin": k, "cond_scale": g} sets those, the rest stay official; anything else a CheckpointError naming
    the file."""
    assert load_run_sampling(tmp_path) == RunSampling(margin=0, cond_scale=4.0)
    for text, expected in (
        ('{"margin": 3}', RunSampling(3, 4.0)),
        ('{"cond_scale": 2}', RunSampling(0, 2.0)),
        ('{"margin": 3, "cond_scale": 2.5}', RunSampling(3, 2.5)),
        ("{}", RunSampling(0, 4.0)),
    ):
        (tmp_path / "sampling.json").write_text(text)
        assert load_run_sampling(tmp_path) == expected
    bad = (
        '{"margin": -1}',
        '{"margin": 2.5}',
        '{"margin": true}',
        '{"cond_scale": -1}',
        '{"cond_scale": "2"}',
        '{"cond_scale": NaN}',
        '{"cond_scale": 1e9}',
        '{"margin": 1, "temperature": 2}',
        "[3]",
        "{margin: 3",
    )
    for text in bad:
        (tmp_path / "sampling.json").write_text(text)
        with pytest.raises(CheckpointError, match="sampling.json"):
            load_run_sampling(tmp_path)


def test_run_sampling_fills_only_unset_settings(pipe: MoMaskPipeline) -> None:
    """Pipeline.resolve: -1 settings become the run's own, explicit ones are kept; idempotent; a pipeline whose
    run records guidance 2 samples exactly as an explicit cond_scale=2 does, and unlike the official 4."""
    run = copy.copy(pipe)
    run.run_sampling = RunSampling(margin=2, cond_scale=2.0)
    assert run.resolve(Sampling()) == Sampling(margin=2, cond_scale=2.0)
    assert run.resolve(Sampling(margin=0, cond_scale=3.0)) == Sampling(margin=0, cond_scale=3.0)
    assert run.resolve(run.resolve(Sampling(time_steps=3))) == run.resolve(Sampling(time_steps=3))
    fast = Sampling(time_steps=3, margin=0)
    texts, lengths = ["a person walks forward and then turns around.", "someone jumps up and down twice."], [80, 80]
    own = run.generate(texts, lengths, seed=4, sampling=fast)
    explicit = pipe.generate(texts, lengths, seed=4, sampling=dataclasses.replace(fast, cond_scale=2.0))
    official = pipe.generate(texts, lengths, seed=4, sampling=fast)
    for a, b in zip(own, explicit):
        np.testing.assert_array_equal(a.tokens, b.tokens)
    assert any((a.tokens != b.tokens).any() for a, b in zip(own, official))


def test_bf16_offered_only_with_native_support(pipe: MoMaskPipeline) -> None:
    """bf16: generates valid, seeded-deterministic motions where the CPU has bf16, else a one-line refusal;
    the bf16 autocast logits stay close to fp32 either way (emulated here if need be)."""
    fast = Sampling(time_steps=4, precision="bf16")
    ok, why = bf16_support(pipe.device)
    if ok:
        a = pipe.generate(["a person sits down slowly."], [80], seed=5, sampling=fast)[0]
        b = pipe.generate(["a person sits down slowly."], [80], seed=5, sampling=fast)[0]
        assert a.joints.shape == (80, 22, 3) and np.isfinite(a.joints).all() and (a.tokens[:, 0] >= 0).all()
        np.testing.assert_array_equal(a.tokens, b.tokens)
    else:
        with pytest.raises(ValueError, match="--precision bf16 is not offered here: CPU"):
            pipe.generate(["a person sits down slowly."], [80], seed=5, sampling=fast)
        assert "avx512_bf16" in why
    cond = pipe.encode_text(["a person sits down slowly."])
    ids = torch.full((1, 20), pipe.mask.mask_id)
    pad = torch.zeros(1, 20, dtype=torch.bool)
    ref = pipe.mask.forward_with_cond_scale(ids, cond, pad, 4.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = pipe.mask.forward_with_cond_scale(ids, cond, pad, 4.0)
    assert low.dtype == torch.float32
    assert torch.corrcoef(torch.stack([ref.flatten(), low.flatten()]))[0, 1] > 0.99
    with pytest.raises(ValueError, match="precision 'fp16'"):
        Sampling(precision="fp16")


def test_int8_quantises_every_linear_and_keeps_the_logits(pipe: MoMaskPipeline) -> None:
    """int8: no float nn.Linear left (attention in-projections included), close logits, valid seeded motions,
    and the fp32 models untouched."""
    mask8, res8 = pipe.transformers(Sampling(precision="int8"))
    assert pipe.transformers(Sampling(precision="int8"))[0] is mask8  # made once
    for model in (mask8, res8):
        assert not [n for n, m in model.named_modules() if type(m) is nn.Linear]
        assert all(m.in_proj is not None for m in model.modules() if isinstance(m, SelfAttention))
    assert "seqTransEncoder.layers.0.self_attn.in_proj_weight" in pipe.mask.state_dict()
    ref = np.load(FIXTURE_MASK_REF)
    ids, pad, cond = (torch.from_numpy(ref[k]) for k in ("ids", "padding_mask", "cond"))
    with torch.no_grad():
        low, full = mask8(ids, cond, pad), pipe.mask(ids, cond, pad)
    valid = ~pad[:, None, :].expand_as(full)
    assert torch.corrcoef(torch.stack([full[valid], low[valid]]))[0, 1] > 0.99
    assert not torch.equal(low, full)
    a = pipe.generate(["a person sits down slowly."], [80], seed=5, sampling=Sampling(time_steps=4, precision="int8"))
    b = pipe.generate(["a person sits down slowly."], [80], seed=5, sampling=Sampling(time_steps=4, precision="int8"))
    assert np.isfinite(a[0].joints).all() and np.array_equal(a[0].tokens, b[0].tokens)


@pytest.mark.parametrize("variant", ["categorical", "gumbel"])
def test_generate_reproduces_official_seeded_pipeline(pipe: MoMaskPipeline, fixture_dir: Path, variant: str) -> None:
    """sampling_ref.npz pipeline keys: one seed, masked then residual generation without reseeding, decode."""
    ref = np.load(fixture_dir / "sampling_ref.npz")
    key = f"pipeline_{variant}"
    sampling = Sampling(
        time_steps=int(ref[f"{key}_timesteps"]),
        cond_scale=float(ref[f"{key}_cond_scale"]),
        res_cond_scale=float(ref[f"{key}_res_cond_scale"]),
        temperature=float(ref[f"{key}_temperature"]),
        topkr=float(ref[f"{key}_topk_filter_thres"]),
        gumbel_sample=bool(ref[f"{key}_gsample"]),
    )
    (motion,) = pipe.generate(
        [str(ref["pipeline_caption"][0])],
        [int(ref["pipeline_motion_length"])],
        seed=int(ref[f"{key}_seed"]),
        sampling=sampling,
    )
    np.testing.assert_array_equal(motion.tokens[:, 0], ref[f"{key}_base_ids"][0])
    np.testing.assert_array_equal(motion.tokens, ref[f"{key}_ids"][0])
    np.testing.assert_allclose(motion.features, ref[f"{key}_features_denorm"][0], atol=1e-4, rtol=1e-4)


def _eval_batch(captions: list[str], frames: list[int]) -> EvalBatch:
    b = len(captions)
    return EvalBatch(
        torch.zeros(b, 3, 300),
        torch.zeros(b, 3, 15),
        captions,
        torch.full((b,), 3),
        torch.zeros(b, 196, 263),
        torch.tensor(frames),
        ["a/DET"] * b,
    )


@pytest.mark.parametrize("margin", [0, 2])
def test_eval_generator_chunks_are_the_one_call_generation(pipe: MoMaskPipeline, margin: int) -> None:
    """Length-sorted chunks give, sample for sample, what one call over the whole (repeated) batch gives
    (greedy masked sampling, no residual: no randomness), and repeats come back as rows r·B + i; with a
    decoding margin, the frames kept are those after the margin."""
    captions = [
        "a person walks forward and then turns around.",
        "someone jumps up and down twice.",
        "a man kicks with his left leg.",
        "a person sits down slowly.",
    ]
    batch = _eval_batch(captions, [196, 40, 120, 84])
    greedy = Sampling(time_steps=5, temperature=0.0, use_res=False, margin=margin)
    feats, lens = pipeline_generator(pipe, greedy, chunk=3)(batch, False, 2)
    assert feats.shape == (8, 196, 263) and lens.tolist() == [196, 40, 120, 84] * 2
    cond = pipe.encode_text(captions * 2)
    whole = pipe.denormalise(pipe.vq.forward_decoder(pipe.generate_codes(cond, lens // 4, greedy, None, margin)))
    torch.testing.assert_close(feats, whole[:, 4 * margin : 4 * margin + 196], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(feats[:4], feats[4:])


def test_eval_generator_keeps_the_sampling_distribution(pipe: MoMaskPipeline, monkeypatch) -> None:
    """Chunked multimodality generation draws from the same distribution as one call per generation (the
    reference loop): layer-0 token histograms agree to within sampling noise, and a real change of the
    distribution (unconditional sampling) is far outside it."""
    batch = _eval_batch(["a person walks forward and then turns around.", "a man kicks with his left leg."], [40, 28])
    sampling = Sampling(time_steps=2, use_res=False, gumbel_sample=True)
    lens, cond = batch.m_lens // 4, pipe.encode_text(batch.captions)

    def histogram(seed: int, run) -> np.ndarray:
        torch.manual_seed(seed)
        ids = np.concatenate([x[..., 0][x[..., 0] >= 0] for x in run()])
        return np.bincount(ids, minlength=pipe.mask.num_tokens) / len(ids)

    def one_call_each(s: Sampling = sampling) -> list[np.ndarray]:
        return [pipe.generate_codes(cond, lens, s, None).numpy() for _ in range(40)]

    def chunked() -> list[np.ndarray]:
        seen: list[np.ndarray] = []
        real = pipe.generate_codes
        monkeypatch.setattr(
            pipe, "generate_codes", lambda *a: seen.append(real(*a).numpy()) or torch.from_numpy(seen[-1])
        )
        feats, out_lens = pipeline_generator(pipe, sampling, chunk=7)(batch, True, 40)
        monkeypatch.undo()
        assert feats.shape[0] == 80 and out_lens.tolist() == [40, 28] * 40 and len(seen) == 12
        return seen

    ref, same = histogram(0, one_call_each), histogram(1, one_call_each)
    chunk = histogram(2, chunked)
    cold = histogram(3, lambda: one_call_each(dataclasses.replace(sampling, force_mask=True)))
    tv = lambda p, q: 0.5 * np.abs(p - q).sum()  # noqa: E731
    assert tv(ref, chunk) < 2 * tv(ref, same) + 0.02 < tv(ref, cold), (tv(ref, chunk), tv(ref, same), tv(ref, cold))


def test_eval_generator_repeats_are_independent_draws(pipe: MoMaskPipeline) -> None:
    """The R multimodality generations of one text are independent draws (what Diversity and Multimodality
    measure): two repeats of a text in one batched call are as far apart as two separate one-call generations,
    while generations that share their random numbers (a seed reused per repeat) are identical."""
    batch = _eval_batch(["a person walks forward and then turns around.", "a man kicks with his left leg."], [40, 28])
    sampling = Sampling(time_steps=2, gumbel_sample=True)  # masked and residual layers both draw
    generate = pipeline_generator(pipe, sampling, chunk=7)
    repeats, b = 20, len(batch)

    def spread(feats: torch.Tensor) -> float:
        """(R·B, T, D), row r·B + i -> mean L2 distance between two repeats of the same text."""
        per_text = feats.reshape(repeats, b, -1).transpose(0, 1)  # (B, R, T·D)
        dist = torch.cdist(per_text, per_text)  # (B, R, R)
        return float(dist.sum() / (b * repeats * (repeats - 1)))

    torch.manual_seed(0)
    batched = spread(generate(batch, True, repeats)[0])
    torch.manual_seed(1)
    separate = spread(torch.cat([generate(batch, True, 1)[0] for _ in range(repeats)]))

    def reseeded() -> torch.Tensor:
        torch.manual_seed(2)
        return generate(batch, True, 1)[0]

    shared = spread(torch.cat([reseeded() for _ in range(repeats)]))
    assert separate > 0 and shared == 0.0
    assert abs(batched / separate - 1) < 0.1, (batched, separate)
