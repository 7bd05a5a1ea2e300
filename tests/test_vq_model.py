"""RVQ-VAE building blocks: shapes, quantizer EMA/reset semantics (docs/networks.md#quantizer, docs/networks.md#residual-quantization), dataset windows (docs/data.md#datasets),
learning-rate schedule (docs/training.md#vq-schedule) and options."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from data.motion_dataset import MotionDataset, ResumableRandomSampler, epoch_permutation
from models.vq.build import build_rvqvae, config_from_options
from models.vq.model import RVQVAE, RVQVAEConfig
from models.vq.quantizer import QuantizeEMAReset
from models.vq.residual_vq import ResidualVQ
from options.vq import VQOptions
from training.vq import make_optimizer, make_scheduler, vq_loss

SMALL = RVQVAEConfig(input_width=263, nb_code=16, code_dim=8, output_emb_width=8, width=16, num_quantizers=4)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models, one thread


def test_shapes_and_token_count() -> None:
    model = RVQVAE(SMALL).eval()
    for frames, tokens in ((196, 49), (199, 49), (64, 16)):
        x = torch.randn(2, frames, 263)
        codes, per_layer = model.encode(x)
        assert codes.shape == (2, tokens, 4) and codes.dtype == torch.int64
        assert per_layer.shape == (4, 2, 8, tokens)
        assert model.forward_decoder(codes).shape == (2, 4 * tokens, 263)
    with pytest.raises(ValueError, match="263"):
        model.encode(torch.randn(1, 64, 251))


def test_released_architecture_parameter_count() -> None:
    """docs/networks.md#rvq-vae-encoder-and-decoder: 19,436,807 parameters for t2m (encoder 9,587,200, decoder 9,849,607), 19,399,931 for kit."""
    t2m = build_rvqvae(VQOptions(num_quantizers=6))
    assert sum(p.numel() for p in t2m.encoder.parameters()) == 9_587_200
    assert sum(p.numel() for p in t2m.decoder.parameters()) == 9_849_607
    assert sum(p.numel() for p in t2m.parameters()) == 19_436_807
    kit = build_rvqvae(VQOptions(dataset_name="kit", num_quantizers=6))
    assert sum(p.numel() for p in kit.parameters()) == 19_399_931
    keys = set(t2m.state_dict())
    assert {
        "encoder.model.2.1.model.0.conv1.weight",
        "decoder.model.3.2.weight",
        "decoder.model.6.bias",
        "quantizer.layers.5.codebook",
    } <= keys
    assert not any("code_sum" in k or "code_count" in k for k in keys)  # EMA stats are not official keys
    # dilations 9, 3, 1 (reversed) in every residual stack
    assert [b.conv1.dilation[0] for b in t2m.encoder.model[2][1].model] == [9, 3, 1]
    assert [b.conv1.dilation[0] for b in t2m.decoder.model[2][0].model] == [9, 3, 1]


def test_encode_roundtrip_and_forward_decoder_equivalence() -> None:
    torch.manual_seed(0)
    model = RVQVAE(SMALL)
    model.train()
    model(torch.randn(4, 64, 263))  # initialises the codebooks from a batch
    model.eval()
    x = torch.randn(2, 64, 263)
    with torch.no_grad():
        codes, per_layer = model.encode(x)
        lookup = model.quantizer.get_codes_from_indices(codes).permute(0, 1, 3, 2)
        torch.testing.assert_close(lookup, per_layer, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            model.quantizer.summed_codes(codes),
            model.quantizer.get_codes_from_indices(codes).sum(0),
            atol=1e-6,
            rtol=1e-6,
        )
        recon, _, _ = model(x)
        torch.testing.assert_close(model.forward_decoder(codes), recon, atol=1e-5, rtol=1e-5)
        # absent layers (-1) contribute zero == decoding only the first layers
        partial = codes.clone()
        partial[..., 2:] = -1
        torch.testing.assert_close(model.forward_decoder(partial), model.forward_decoder(codes[..., :2]))
        summed = per_layer[:2].sum(0)
        torch.testing.assert_close(
            model.forward_decoder(codes[..., :2]), model.decoder(summed).permute(0, 2, 1), atol=1e-5, rtol=1e-5
        )


def test_encode_never_updates_codebooks_even_in_train_mode() -> None:
    model = RVQVAE(SMALL).train()
    model(torch.randn(4, 64, 263))
    books = model.quantizer.codebooks.clone()
    model.encode(torch.randn(4, 64, 263))
    torch.testing.assert_close(model.quantizer.codebooks, books, atol=0, rtol=0)


def test_quantizer_init_from_first_batch_rows_and_tiling() -> None:
    layer = QuantizeEMAReset(nb_code=6, code_dim=3).train()
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2, 3, 5)  # (B, C, n): 10 rows >= K
    layer(x)
    rows = x.permute(0, 2, 1).reshape(-1, 3)
    assert bool(layer.initialized)
    small = QuantizeEMAReset(nb_code=8, code_dim=3).train()
    xs = torch.randn(1, 3, 3)  # 3 rows < K: tiled with noise
    g = torch.Generator().manual_seed(0)
    small._init_codebook(xs.permute(0, 2, 1).reshape(-1, 3), g)
    tiled = xs.permute(0, 2, 1).reshape(-1, 3).repeat(3, 1)[:8]
    diff = small.codebook - tiled
    assert 0 < diff.abs().max() < 0.01 / math.sqrt(3) * 6
    # the big layer: codebook = EMA of its first update from the first K rows
    fresh = QuantizeEMAReset(nb_code=6, code_dim=3)
    fresh._init_codebook(rows, None)
    torch.testing.assert_close(fresh.codebook, rows[:6])


def test_ema_update_and_dead_code_reset() -> None:
    layer = QuantizeEMAReset(nb_code=4, code_dim=2, mu=0.5).train()
    with torch.no_grad():
        layer.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [20.0, 20.0], [30.0, 30.0]]))
    layer.load_ema_state(None)  # counts 1, sums = codebook
    assert bool(layer.initialized)
    x = torch.tensor([[0.2, 0.0], [0.0, 0.2], [10.4, 10.0], [9.6, 10.0], [-0.2, 0.0]])  # rows, codes 0,0,1,1,0
    layer(x.t().unsqueeze(0), temperature=0.0)
    # code 0: sum 0.5*0 + 0.5*(0,0.2), count 0.5+1.5 = 2 -> mean (0, 0.05); code 1: count 0.5+1 = 1.5
    torch.testing.assert_close(layer.codebook[0], torch.tensor([0.0, 0.05]))
    torch.testing.assert_close(layer.codebook[1], torch.tensor([(5 + 10.0) / 1.5, (5 + 10.0) / 1.5]))
    # codes 2, 3 now have count 0.5 < 1: reset to the batch rows 2 and 3 (not random rows)
    torch.testing.assert_close(layer.codebook[2], x[2])
    torch.testing.assert_close(layer.codebook[3], x[3])


def test_gumbel_selection_only_in_training() -> None:
    layer = QuantizeEMAReset(nb_code=8, code_dim=4)
    with torch.no_grad():
        layer.codebook.copy_(torch.randn(8, 4, generator=torch.Generator().manual_seed(1)))
    x = torch.randn(500, 4, generator=torch.Generator().manual_seed(2))
    nearest = layer.eval().select(x, temperature=0.5)
    torch.testing.assert_close(nearest, layer.distances(x).argmin(-1))
    layer.train()
    sampled = layer.select(x, temperature=0.5, generator=torch.Generator().manual_seed(3))
    again = layer.select(x, temperature=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(sampled, again)  # reproducible from the generator
    assert 0.3 < (sampled == nearest).float().mean() < 1.0  # stochastic but biased to the nearest
    assert torch.equal(layer.select(x, temperature=0.0), nearest)  # tau 0 -> deterministic


def test_quantizer_dropout_distribution() -> None:
    rvq = ResidualVQ(num_quantizers=6, nb_code=4, code_dim=2, quantize_dropout_prob=0.2).train()
    g = torch.Generator().manual_seed(0)
    draws = np.array([rvq.last_active_layer(g) for _ in range(20000)])
    # P(last = 5) = 0.8 + 0.2/6; each other index 0.2/6
    assert abs((draws == 5).mean() - (0.8 + 0.2 / 6)) < 0.01
    for q in range(5):
        assert abs((draws == q).mean() - 0.2 / 6) < 0.006
    assert rvq.eval().last_active_layer(g) == 5
    out, idx, loss, ppl = rvq.train()(torch.randn(3, 2, 5), generator=torch.Generator().manual_seed(5))
    assert idx.shape == (3, 5, 6)


def test_dropped_layers_report_minus_one_and_gradient_scale() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(num_quantizers=3, nb_code=4, code_dim=2, quantize_dropout_prob=0.0).train()
    x = torch.randn(2, 2, 6, requires_grad=True)
    out, idx, _, _ = rvq(x)
    out.sum().backward()
    # every active layer's straight-through term passes the identity: gradient = n_active
    torch.testing.assert_close(x.grad, torch.full_like(x, 3.0))

    class Fixed(ResidualVQ):
        def last_active_layer(self, generator=None) -> int:
            return 0

    fixed = Fixed(num_quantizers=3, nb_code=4, code_dim=2).train()
    _, idx, _, _ = fixed(torch.randn(2, 2, 6))
    assert (idx[..., 1:] == -1).all() and (idx[..., 0] >= 0).all()


def test_shared_codebook_layout() -> None:
    rvq = ResidualVQ(num_quantizers=3, nb_code=4, code_dim=2, shared_codebook=True)
    assert rvq.layers[0] is rvq.layers[2]
    assert [k for k in rvq.state_dict()] == [f"layers.{q}.codebook" for q in range(3)]


def test_codebook_state_roundtrip() -> None:
    model = RVQVAE(SMALL).train()
    model(torch.randn(4, 64, 263))
    state = model.codebook_state()
    other = RVQVAE(SMALL)
    other.load_state_dict(model.state_dict())
    other.load_codebook_state(state)
    for a, b in zip(model.quantizer.layers, other.quantizer.layers):
        torch.testing.assert_close(a.code_sum, b.code_sum, atol=0, rtol=0)
        torch.testing.assert_close(a.code_count, b.code_count, atol=0, rtol=0)
        assert bool(b.initialized)


def test_motion_dataset_window_mapping() -> None:
    """docs/data.md#datasets: clip k contributes T_k - 64 windows; item 0 -> (0, 0); item i -> start i - cumsum[k] - 1."""
    clips = [np.arange(t * 2, dtype=np.float32).reshape(t, 2) for t in (66, 64, 70, 50)]
    ds = MotionDataset(clips, mean=np.zeros(2), std=np.ones(2), window_size=64)
    assert len(ds) == 2 + 0 + 6  # the 50-frame clip is dropped
    located = [ds.locate(i) for i in range(len(ds))]
    assert located == [(0, 0), (0, 0), (0, 1), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4)]
    assert all(start <= clips[[0, 1, 2][c]].shape[0] - 64 - 1 for c, start in located)  # start T-64 never used
    item = ds[5]
    assert item.shape == (64, 2)
    np.testing.assert_array_equal(item.numpy(), clips[2][2:66])
    normed = MotionDataset(clips, mean=np.full(2, 1.0), std=np.full(2, 2.0))
    np.testing.assert_allclose(normed[0].numpy(), (clips[0][:64] - 1) / 2)


def test_resumable_sampler_is_a_suffix_of_the_epoch_order() -> None:
    sampler = ResumableRandomSampler(50, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start=16)
    assert list(sampler) == full[16:]
    assert sorted(full) == list(range(50))
    assert not torch.equal(epoch_permutation(50, 3, 2), epoch_permutation(50, 3, 3))


def test_lr_warmup_and_multistep_schedule() -> None:
    """docs/training.md#vq-schedule: lr(it) = base (it+1)/(wu+1) for it < wu, then base wu/(wu+1) until milestone m hits at
    it = m + wu - 1 (scheduler stepped after the optimizer from it = wu on)."""
    opt = VQOptions(warm_up_iter=10, milestones=[5, 8], gamma=0.1, lr=1.0)
    model = RVQVAE(SMALL)
    optimizer = make_optimizer(model, opt)
    scheduler = make_scheduler(optimizer, opt)
    used = {}
    for it in range(1, 25):
        scheduler.before_step(it)
        used[it] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.after_step(it)
    assert used[1] == pytest.approx(2 / 11) and used[9] == pytest.approx(10 / 11)
    for it in (10, 11, 14):
        assert used[it] == pytest.approx(10 / 11)
    assert used[15] == pytest.approx(10 / 11 * 0.1)  # milestone 5 hits at it 5 + 10 - 1 = 14
    assert used[17] == pytest.approx(10 / 11 * 0.1) and used[18] == pytest.approx(10 / 11 * 0.01)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.99) and optimizer.param_groups[0]["weight_decay"] == 0


def test_loss_uses_ric_slice() -> None:
    target = torch.zeros(2, 8, 263)
    recon = target.clone()
    recon[..., 10] = 2.0  # inside ric 4:67
    loss, parts = vq_loss(recon, target, torch.tensor(0.5), joints_num=22)
    assert parts["loss_rec"] == pytest.approx(1.5 / 263)  # smooth L1 (beta 1) of 2 is 1.5
    assert parts["loss_vel"] == pytest.approx(1.5 / 63)
    assert loss == pytest.approx(1.5 / 263 + 0.5 * 1.5 / 63 + 0.02 * 0.5)
    recon2 = target.clone()
    recon2[..., 100] = 2.0  # outside ric: no second term
    _, parts2 = vq_loss(recon2, target, torch.tensor(0.0), joints_num=22, recons_loss="l1")
    assert parts2["loss_vel"] == 0 and parts2["loss_rec"] == pytest.approx(2 / 263)


def test_options_validation_and_config() -> None:
    with pytest.raises(ValueError, match="output_emb_width"):
        VQOptions(code_dim=256)
    with pytest.raises(ValueError, match="quantize_dropout_prob"):
        VQOptions(quantize_dropout_prob=1.0)
    with pytest.raises(ValueError, match="dataset_name"):
        VQOptions(dataset_name="nope")
    cfg = config_from_options(VQOptions(dataset_name="kit", vq_norm="None", num_quantizers=6))
    assert cfg.input_width == 251 and cfg.norm is None and cfg.num_quantizers == 6


def test_opt_txt_roundtrip_keeps_official_keys(tmp_path: Path) -> None:
    opt = VQOptions.parse(["--name", "x", "--gamma", "0.05", "--milestones", "10", "20"])
    opt.save(tmp_path / "opt.txt", is_train=True)
    text = (tmp_path / "opt.txt").read_text()
    for line in (
        "gamma: 0.05",
        "milestones: [10, 20]",
        "vq_norm: None",
        "is_train: True",
        "nb_code: 512",
        "quantize_dropout_prob: 0.2",
        "which_epoch: all",
    ):
        assert line in text.splitlines()
    back = VQOptions.load(tmp_path / "opt.txt")
    assert back.milestones == [10, 20] and back.gamma == 0.05 and back.vq_norm is None
