"""train_vq.py end to end on a tiny synthetic dataset in the official layout (tests/vq_synthetic.py):
loss goes down, lr schedule, logging, exact kill-and-resume, and clear errors on bad input."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train_vq
from data.motion_dataset import load_vq_datasets
from models.vq.build import load_rvqvae
from options.vq import VQOptions
from tests.vq_synthetic import assert_same_vq_state, make_dataset, tiny_vq_args
from training.vq import VQObjective, corrupt_codes, finetune_decoder_loss
from training.vq import train_vq as real_train_vq
from utils.checkpoint import VQ, CheckpointError, find_checkpoint, load_checkpoint, save_checkpoint
from utils.cli import run_cli

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE_CKPT = SHARED / "reference" / "official_fixture" / "checkpoints" / "t2m"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models, one thread


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vqdata")
    make_dataset(root)
    return root


def scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_tiny_training_lowers_loss_and_logs(data_root: Path, tmp_path: Path) -> None:
    args = tiny_vq_args(
        data_root,
        tmp_path,
        max_steps=200,
        batch_size=16,
        lr=3e-3,
        warm_up_iter=20,
        milestones="150",
        gamma=0.5,
        log_every=1,
        save_latest=100,
    )
    train_vq.main(args)
    run = tmp_path / "t2m" / "tiny"
    logged = scalars(run)
    rec = logged["train/loss_rec"]
    first, last = rec[1], np.mean([rec[i] for i in range(191, 201)])
    assert first / last >= 5.0, f"reconstruction loss only went {first:.4f} -> {last:.4f}"
    assert {
        "train/perplexity",
        "train/loss_commit",
        "train/loss_vel",
        "val/loss_rec",
        "val/code_usage",
        "val/perplexity",
        "val/code_usage_q2",
    } <= set(logged)
    assert 1.0 < logged["train/perplexity"][200] <= 32
    assert 0 < logged["val/code_usage"][200] <= 1
    # lr: warm-up base (it+1)/21, then base 20/21, milestone 150 takes effect at it 150 + 20 = 170
    lr = logged["train/lr"]
    assert lr[1] == pytest.approx(3e-3 * 2 / 21, rel=1e-5)
    assert lr[19] == pytest.approx(3e-3 * 20 / 21, rel=1e-5)
    assert lr[169] == pytest.approx(3e-3 * 20 / 21, rel=1e-5)
    assert lr[170] == pytest.approx(3e-3 * 20 / 21 * 0.5, rel=1e-5)
    # run folder: official files + ours
    assert (run / "opt.txt").read_text().startswith("------------ Options -------------")
    assert "is_train: True" in (run / "opt.txt").read_text()
    std = np.load(run / "meta" / "std.npy")
    raw = np.load(data_root / "HumanML3D" / "Std.npy")
    np.testing.assert_allclose(std[[0, 3, 259, 262]], raw[[0, 3, 259, 262]] / 25, rtol=1e-6)
    latest = load_checkpoint(run / "model" / "latest.tar")
    assert {"vq_model", "opt_vq_model", "scheduler", "ep", "total_it", "vq_codebook_state"} <= set(latest)
    assert latest["total_it"] == 200
    assert sorted(p.name for p in (run / "model").iterdir()) == ["latest.tar", "net_best_loss.tar"]  # no evaluator
    assert find_checkpoint(run / "model", VQ).name == "net_best_loss.tar"  # what eval_t2m_vq.py / gen load
    model = load_rvqvae(run)
    assert model.config.nb_code == 32 and not model.training
    assert "perplexity" in (run / "log.txt").read_text()


def _crash_at(step: int):
    def callback(state) -> None:
        if state.total_it == step:
            raise KeyboardInterrupt("simulated kill")

    return callback


def _final_state(run: Path) -> dict:
    return load_checkpoint(run / "model" / "latest.tar")


@pytest.mark.parametrize("kill_at, save_latest", [(17, 10), (23, 23)])
def test_kill_and_resume_equals_uninterrupted(
    data_root: Path, tmp_path: Path, monkeypatch, kill_at: int, save_latest: int
) -> None:
    """30 steps straight == killed after step ``kill_at`` (last save at ``save_latest``) + --is_continue.

    One epoch is 23 iterations here, so both the epoch boundary and a mid-epoch restart are crossed; warm-up
    (5 its) and a milestone (it 20) fall inside the run."""
    common = dict(
        max_steps=30, batch_size=16, warm_up_iter=5, milestones="16", save_latest=save_latest, quantize_dropout_prob=0.5
    )
    train_vq.main(tiny_vq_args(data_root, tmp_path / "a", **common))
    straight = _final_state(tmp_path / "a" / "t2m" / "tiny")

    monkeypatch.setattr(train_vq, "train_vq", functools.partial(real_train_vq, step_callback=_crash_at(kill_at)))
    with pytest.raises(KeyboardInterrupt):
        train_vq.main(tiny_vq_args(data_root, tmp_path / "b", **common))
    run_b = tmp_path / "b" / "t2m" / "tiny"
    assert _final_state(run_b)["total_it"] == (kill_at // save_latest) * save_latest
    monkeypatch.setattr(train_vq, "train_vq", real_train_vq)
    train_vq.main(tiny_vq_args(data_root, tmp_path / "b", is_continue=True, **common))
    assert_same_vq_state(straight, _final_state(run_b))


def test_refuses_to_overwrite_and_to_continue_nothing(data_root: Path, tmp_path: Path) -> None:
    args = tiny_vq_args(data_root, tmp_path, max_steps=2, save_latest=1)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_vq.main(args + ["--is_continue"])
    assert not (tmp_path / "t2m").exists()
    train_vq.main(args)
    latest = tmp_path / "t2m" / "tiny" / "model" / "latest.tar"
    before = latest.read_bytes()
    with pytest.raises(ValueError, match="already exists"):
        train_vq.main(args)
    assert latest.read_bytes() == before


def test_missing_dataset_files(tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(ValueError, match="nowhere: dataset folder does not exist"):
        train_vq.main(tiny_vq_args(tmp_path / "nowhere", tmp_path / "ck"))
    broken = tmp_path / "broken"
    make_dataset(broken, n_train=2, n_val=1)
    (broken / "HumanML3D" / "Std.npy").unlink()
    with pytest.raises(ValueError, match="Std.npy"):
        train_vq.main(tiny_vq_args(broken, tmp_path / "ck"))
    (broken / "HumanML3D" / "train.txt").unlink()
    np.save(broken / "HumanML3D" / "Std.npy", np.ones(263, dtype=np.float32))
    with pytest.raises(ValueError, match="train.txt"):
        train_vq.main(tiny_vq_args(broken, tmp_path / "ck"))
    assert not (tmp_path / "ck").exists()  # nothing written on error


def test_feature_dim_mismatch_is_reported(data_root: Path, tmp_path: Path, capsys) -> None:
    # the HumanML3D folder given directly as --data_root with --dataset_name kit (251 features expected)
    args = tiny_vq_args(data_root / "HumanML3D", tmp_path / "ck", dataset_name="kit")
    with pytest.raises(ValueError, match=r"expected \(T, 251\) for dataset kit"):
        train_vq.main(args)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(train_vq.main, args)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()


def test_resume_from_another_models_checkpoint_is_refused(data_root: Path, tmp_path: Path) -> None:
    other = FIXTURE_CKPT / "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1" / "model" / "latest.tar"
    if not other.is_file():
        pytest.skip(f"official fixture not found at {other}")
    args = tiny_vq_args(data_root, tmp_path, max_steps=1)
    model_dir = tmp_path / "t2m" / "tiny" / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "latest.tar").write_bytes(other.read_bytes())
    with pytest.raises(CheckpointError, match="vq_model"):
        train_vq.main(args + ["--is_continue"])
    with pytest.raises(CheckpointError, match="vq_model"):
        load_rvqvae(other)


def test_resume_with_a_different_architecture_is_refused(data_root: Path, tmp_path: Path) -> None:
    train_vq.main(tiny_vq_args(data_root, tmp_path, max_steps=1))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        train_vq.main(tiny_vq_args(data_root, tmp_path, max_steps=2, nb_code=64, is_continue=True))


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "latest.tar"
    save_checkpoint(path, {"total_it": torch.tensor(1)})

    def broken_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"total_it": torch.tensor(2)})
    monkeypatch.undo()
    assert int(load_checkpoint(path)["total_it"]) == 1


def test_training_with_an_evaluator_keeps_best_fid(tmp_path: Path) -> None:
    """--eval_fid: a small random T2M evaluator (tests/evaluator_helpers.py) scores the val split each
    validation; the best checkpoints are net_best_fid.tar / net_best_mm.tar instead of net_best_loss.tar."""
    from tests.evaluator_helpers import write_small_evaluator, write_tiny_dataset, write_tiny_glove

    write_tiny_dataset(tmp_path / "data" / "HumanML3D", num_clips=24)
    write_small_evaluator(tmp_path / "evaluator", "t2m")
    write_tiny_glove(tmp_path / "glove")
    train_vq.main(
        tiny_vq_args(
            tmp_path / "data",
            tmp_path / "ck",
            max_steps=6,
            eval_fid=True,
            evaluator_dir=tmp_path / "evaluator",
            glove_dir=tmp_path / "glove",
            eval_batch_size=8,
        )
    )
    run = tmp_path / "ck" / "t2m" / "tiny"
    model_files = {p.name for p in (run / "model").iterdir()}
    assert {"net_best_fid.tar", "net_best_mm.tar", "latest.tar"} <= model_files
    assert "net_best_loss.tar" not in model_files
    logged = scalars(run)
    assert {"eval/fid", "eval/matching", "eval/mpjpe", "eval/top1"} <= set(logged)
    assert np.isfinite(logged["eval/fid"][6]) and logged["eval/mpjpe"][6] > 0
    assert load_rvqvae(run).config.nb_code == 32  # prefers net_best_fid.tar


# ---- decoder fine-tuning (--decoder_from) ---------------------------------------------------------------------
def test_corrupt_codes_replaces_at_the_asked_rates_and_keeps_a_layer_prefix() -> None:
    codes = torch.randint(64, (4000, 8, 3))
    out = corrupt_codes(
        codes, 64, base=0.4, residual=0.1, noisy_windows=0.5, generator=torch.Generator().manual_seed(0)
    )
    kept = out >= 0
    assert kept[..., 0].all()  # the base layer is always kept
    assert (kept[..., 1:] <= kept[..., :-1]).all()  # kept layers are a prefix
    layers = kept[:, 0].sum(-1)
    assert set(layers.tolist()) == {1, 2, 3} and abs(float((layers == 3).float().mean()) - 1 / 3) < 0.03
    changed = (out != codes) & kept
    noisy = changed.flatten(1).any(1)
    assert abs(float(noisy.float().mean()) - 0.5) < 0.03  # only about half the windows are touched
    # half the replacements are uniform over 64 codes (the original again 1/64 of the time), half the code at a
    # uniform position of the window's 8 (the same position 1/8 of the time, another position with the same code
    # 1/64 of the time on these random codes)
    unchanged = 0.5 / 64 + 0.5 * (1 / 8 + 7 / 8 / 64)
    base_rate = changed[noisy][..., 0].float().mean()
    assert abs(float(base_rate) - 0.4 * (1 - unchanged)) < 0.02
    res = changed[noisy][..., 1][kept[noisy][..., 1]].float().mean()
    assert abs(float(res) - 0.1 * (1 - unchanged)) < 0.02
    # the moved codes come from the same window and layer: with 2 codes per window, no third code appears
    two = torch.stack([torch.zeros(500, 4, 3, dtype=torch.long), torch.ones(500, 4, 3, dtype=torch.long)], 1)
    two = two.reshape(500, 8, 3)
    moved = corrupt_codes(two, 1000, base=1.0, residual=1.0, noisy_windows=1.0)
    foreign = (moved > 1).float().mean()  # uniform replacements over 1000 codes: ~half of all
    assert 0.45 < float(foreign) / float((moved >= 0).float().mean()) < 0.55
    clean = corrupt_codes(codes, 64, base=1.0, residual=1.0, noisy_windows=0.0)
    assert torch.equal(clean[..., 0], codes[..., 0])


def test_decoder_finetuning_keeps_the_codes_and_trains_the_decoder_on_corrupted_codes(
    data_root: Path, tmp_path: Path
) -> None:
    """Encoder and codebooks stay bit-identical to the source run (so its codes, and transformers trained on them,
    still fit); only the decoder changes, and it decodes the training windows' corrupted codes better than the
    source's. (That this beats fine-tuning on clean codes needs real motion: the caption check in
    tests/test_demo_model.py measures it on the demo model; this tiny decoder on random curves cannot show it.)"""
    train_vq.main(tiny_vq_args(data_root, tmp_path, max_steps=100, batch_size=16, lr=3e-3))
    flags = dict(decoder_from="tiny", code_noise=0.4, res_code_noise=0.3, batch_size=16, lr=1e-3, log_every=50)
    train_vq.main(tiny_vq_args(data_root, tmp_path, name="ft", max_steps=300, **flags))
    source, tuned = load_rvqvae(tmp_path / "t2m" / "tiny"), load_rvqvae(tmp_path / "t2m" / "ft")
    a, b = source.state_dict(), tuned.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]) != key.startswith("decoder."), key
    for key, value in source.codebook_state().items():
        assert torch.equal(value, tuned.codebook_state()[key]), key
    opt = VQOptions.parse(tiny_vq_args(data_root, tmp_path, name="x", **{**flags, "noisy_windows": 1.0}))  # all noisy
    train, _, _, _ = load_vq_datasets(data_root, opt.spec)
    x = torch.stack([torch.as_tensor(train[i]) for i in range(0, len(train), 3)]).float()
    objective = VQObjective.from_options(opt, None, torch.device("cpu"))
    with torch.no_grad():
        before, after = (
            float(
                finetune_decoder_loss(m.decoder, m, x, opt, objective, torch.Generator().manual_seed(0))[1]["loss_rec"]
            )
            for m in (source, tuned)
        )
    assert after < 0.85 * before, (before, after)
    logged = scalars(tmp_path / "t2m" / "ft")
    assert {"val/finetune_loss_rec", "val/loss_rec", "train/loss_rec"} <= set(logged)


def test_decoder_finetuning_kill_and_resume_equals_uninterrupted(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    train_vq.main(tiny_vq_args(data_root, tmp_path / "src", max_steps=5))
    for run in ("a", "b"):
        shutil.copytree(tmp_path / "src" / "t2m" / "tiny", tmp_path / run / "t2m" / "tiny")
    common = dict(name="ft", decoder_from="tiny", code_noise=0.4, res_code_noise=0.3, max_steps=30, save_latest=10)
    train_vq.main(tiny_vq_args(data_root, tmp_path / "a", **common))
    monkeypatch.setattr(train_vq, "train_vq", functools.partial(real_train_vq, step_callback=_crash_at(17)))
    with pytest.raises(KeyboardInterrupt):
        train_vq.main(tiny_vq_args(data_root, tmp_path / "b", **common))
    monkeypatch.setattr(train_vq, "train_vq", real_train_vq)
    train_vq.main(tiny_vq_args(data_root, tmp_path / "b", is_continue=True, **common))
    assert_same_vq_state(_final_state(tmp_path / "a" / "t2m" / "ft"), _final_state(tmp_path / "b" / "t2m" / "ft"))


def test_decoder_finetuning_refuses_what_would_change_the_codes(data_root: Path, tmp_path: Path, capsys) -> None:
    train_vq.main(tiny_vq_args(data_root, tmp_path, max_steps=2))
    cases = [
        (dict(nb_code=64), "its VQ has nb_code 32"),
        (dict(feat_bias=2), "not this dataset's statistics"),
        (dict(decoder_from="nowhere"), "nowhere"),
    ]
    for overrides, message in cases:
        args = tiny_vq_args(data_root, tmp_path, **{"name": "ft", "decoder_from": "tiny", **overrides})
        with pytest.raises(SystemExit) as exit_info:
            run_cli(train_vq.main, args)
        assert exit_info.value.code == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], errors
        assert not (tmp_path / "t2m" / "ft").exists()
    for flags, message in (
        (dict(code_noise=0.3), "add --decoder_from"),
        (dict(decoder_from="tiny"), "is this run"),
        (dict(decoder_from="x", res_code_noise=1.5), "--res_code_noise must be in [0, 1]"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            VQOptions.parse(tiny_vq_args(data_root, tmp_path, **flags))


def _features_with_heights(t: int, joints_num: int, generator: torch.Generator) -> torch.Tensor:
    """Random (2, t, D) HumanML3D-layout features whose root height (dim 3) is above every joint's y."""
    dim = 4 + 9 * (joints_num - 1) + 6 * joints_num + 4
    x = torch.randn(2, t, dim, generator=generator)
    x[..., 3] = 2.0 + torch.rand(2, t, generator=generator)  # root highest: the lowest joint is a RIC joint
    return x


def test_ground_loss_is_the_height_error_of_what_touches_the_floor() -> None:
    """Closed form: lifting the whole body by d (root height and every joint's y) costs exactly d, moving it
    sideways or rotating it about the vertical costs nothing, the normalisation is undone first, and a joint on
    the floor lifted by d costs e^10 times what the same joint 1 m up does (weights exp(-y / 10 cm))."""
    from training.vq import ground_loss

    joints_num, g = 22, torch.Generator().manual_seed(0)
    target = _features_with_heights(30, joints_num, g)
    mean, std = torch.randn(target.shape[-1], generator=g), torch.rand(target.shape[-1], generator=g) + 0.5
    ys = [3] + [4 + 3 * j + 1 for j in range(joints_num - 1)]
    lifted = target.clone()
    lifted[..., ys] += 0.25
    sideways = target.clone()
    sideways[..., 1:3] += 1.0  # root angular and linear velocity: the path changes, heights do not
    normalised = [(v - mean) / std for v in (target, lifted, sideways)]
    assert float(ground_loss(normalised[0], normalised[0], mean, std, joints_num)) == 0.0
    assert float(ground_loss(normalised[1], normalised[0], mean, std, joints_num)) == pytest.approx(0.25, abs=1e-5)
    assert float(ground_loss(normalised[2], normalised[0], mean, std, joints_num)) == pytest.approx(0.0, abs=1e-5)
    one = torch.zeros(1, 2, target.shape[-1])
    one[..., 3] = 1.0  # root 1 m up, every RIC joint 1 m up except joint 1 (a foot, say) on the floor
    one[..., ys[2:]] = 1.0
    costs = []
    for j in (ys[1], ys[2]):  # the joint on the floor, then one 1 m up, each lifted by 0.1
        moved = one.clone()
        moved[..., j] += 0.1
        costs.append(float(ground_loss(moved, one, torch.zeros(one.shape[-1]), torch.ones(one.shape[-1]), joints_num)))
    assert costs[0] / costs[1] == pytest.approx(float(np.exp(10.0)), rel=1e-4)


def test_objective_adds_the_ground_term_only_when_weighted(data_root: Path, tmp_path: Path) -> None:
    from training.vq import ground_loss, vq_loss

    g = torch.Generator().manual_seed(1)
    x = _features_with_heights(16, 22, g)
    recon = x + 0.1 * torch.randn(x.shape, generator=g)
    stats = (np.zeros(x.shape[-1], np.float32), np.ones(x.shape[-1], np.float32))
    cpu = torch.device("cpu")
    plain = VQOptions.parse(tiny_vq_args(data_root, tmp_path))
    weighted = VQOptions.parse(tiny_vq_args(data_root, tmp_path, loss_ground=2.0))
    ref, ref_parts = vq_loss(recon, x, torch.tensor(0.3), joints_num=22, commit=plain.commit)
    loss, parts = VQObjective.from_options(plain, None, cpu)(recon, x, torch.tensor(0.3))
    assert torch.equal(loss, ref) and set(parts) == set(ref_parts)
    loss, parts = VQObjective.from_options(weighted, stats, cpu)(recon, x, torch.tensor(0.3))
    ground = ground_loss(recon, x, torch.zeros(x.shape[-1]), torch.ones(x.shape[-1]), 22)
    assert float(ground) > 0 and torch.equal(parts["loss_ground"], ground)
    assert float(loss) == pytest.approx(float(ref + 2.0 * ground), rel=1e-6)
    with pytest.raises(ValueError, match="--loss_ground needs"):
        VQObjective.from_options(weighted, None, cpu)
    with pytest.raises(ValueError, match="--loss_ground must be >= 0"):
        VQOptions.parse(tiny_vq_args(data_root, tmp_path, loss_ground=-1))


def test_decoder_finetuning_with_the_ground_term_lowers_it(data_root: Path, tmp_path: Path) -> None:
    """train_vq.py --loss_ground: the term is trained and logged, and on corrupted codes the decoder fine-tuned
    with it keeps the joints near the floor nearer the data's heights than the same fine-tune without it."""
    train_vq.main(tiny_vq_args(data_root, tmp_path, max_steps=150, lr=3e-3, warm_up_iter=10, milestones="1000"))
    flags = {"code_noise": 0.4, "res_code_noise": 0.3, "noisy_windows": 1.0, "decoder_from": "tiny"}
    for name, weight in (("plain", 0.0), ("ground", 5.0)):
        args = tiny_vq_args(data_root, tmp_path, name=name, loss_ground=weight, max_steps=150, lr=1e-3, **flags)
        train_vq.main(args + ["--warm_up_iter", "0", "--milestones", "1000"])
    opt = VQOptions.parse(tiny_vq_args(data_root, tmp_path, name="x", loss_ground=1.0, **flags))
    train, _, mean, std = load_vq_datasets(data_root, opt.spec)
    x = torch.stack([torch.as_tensor(train[i]) for i in range(0, len(train), 3)]).float()
    objective = VQObjective.from_options(opt, (mean, std), torch.device("cpu"))

    def ground_error(name: str) -> float:
        model = load_rvqvae(tmp_path / "t2m" / name)
        with torch.no_grad():
            _, parts = finetune_decoder_loss(model.decoder, model, x, opt, objective, torch.Generator().manual_seed(0))
        return float(parts["loss_ground"])

    plain, ground = ground_error("plain"), ground_error("ground")
    assert ground < 0.85 * plain, (plain, ground)
    logged = scalars(tmp_path / "t2m" / "ground")
    assert {"train/loss_ground", "val/loss_ground", "val/finetune_loss_ground"} <= set(logged)
    assert "train/loss_ground" not in scalars(tmp_path / "t2m" / "plain")
