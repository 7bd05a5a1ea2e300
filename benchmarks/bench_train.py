"""Training-step speed of every stage (released sizes, random weights, synthetic batches), per --amp mode.

One optimisation step = the trainers' step: VQ (sharded quantizer path, loss, backward, AdamW) at batch 256 x
window 64; masked / residual transformer (VQ encode of the batch + loss + backward + AdamW) at batch 64. Official
figures (../shared/reference/official_timings.md, 2 CPU cores) are printed beside ours where there is one; with
several --amp modes the last column is each mode's speed-up over the first (fp32 "off").

    python -m benchmarks.bench_train --device cpu --iters 1 --vq_batch 32 --trans_batch 8   # quick CPU look
    python -m benchmarks.bench_train --device cuda --amp off bf16 --iters 5                 # GPU, fp32 vs bf16
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from benchmarks.bench_transformers import build_vq
from benchmarks.timing import official_hardware, wall_median
from models.transformer.mask_transformer import MaskTransformer, MaskTransformerConfig
from models.transformer.residual_transformer import ResidualTransformer, ResidualTransformerConfig
from models.vq.build import build_rvqvae
from models.vq.quantizer import BatchShard
from options.vq import VQOptions
from training.vq import make_optimizer, vq_loss
from utils.device import resolve_device
from utils.distributed import MixedPrecision

# official_timings.md, seconds per step on 2 CPU cores (anomaly detection off / on for the transformers).
OFFICIAL = {
    "vq": (11.2, "b256 w64"),
    "mask": (4.22, "b64, 4.71 with anomaly on"),
    "res": (5.18, "b64, 6.96 with anomaly on"),
}
OFFICIAL_BATCH = {"vq": 256, "mask": 64, "res": 64}


def vq_step(
    device: torch.device,
    batch: int,
    window: int,
    amp: MixedPrecision,
    compile_: bool,
) -> Callable[[], None]:
    opt = VQOptions(num_quantizers=6, batch_size=batch, window_size=window)
    model = build_rvqvae(opt).to(device).train()
    if compile_:
        model.encoder.compile()
        model.decoder.compile()
    optimizer = make_optimizer(model, opt)
    x = torch.randn(batch, window, opt.spec.dim_pose, device=device)
    it = iter(range(10**9))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with model.quantizer.sharded(BatchShard(seed=next(it))), amp.autocast():
            recon, commit, _ = model(x)
        loss, _ = vq_loss(recon.float(), x, commit, joints_num=opt.spec.joints_num)
        amp.backward(loss)
        amp.step(optimizer)

    return step


def transformer_step(
    stage: str,
    device: torch.device,
    batch: int,
    amp: MixedPrecision,
    compile_: bool,
) -> Callable[[], None]:
    model = (
        (
            MaskTransformer(MaskTransformerConfig())
            if stage == "mask"
            else ResidualTransformer(ResidualTransformerConfig())
        )
        .to(device)
        .train()
    )
    if compile_:
        model.compile()
    vq = build_vq(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.99), weight_decay=1e-5)
    motion = torch.randn(batch, 196, 263, device=device)
    lengths = torch.randint(10, 50, (batch,), device=device)
    cond = torch.randn(batch, 512, device=device)

    def step() -> None:
        with torch.no_grad():
            codes = vq.encode(motion)[0]
        optimizer.zero_grad(set_to_none=True)
        with amp.autocast():
            out = (
                model.masked_loss(codes[..., 0], cond, lengths)
                if stage == "mask"
                else model.residual_loss(codes, cond, lengths)
            )
        amp.backward(out.loss)
        amp.step(optimizer)

    return step


def bench(args: argparse.Namespace) -> list[tuple[str, str, float, float]]:
    """[(stage, amp mode, median seconds per step, peak CUDA memory in GiB (nan elsewhere))]."""
    device = resolve_device(args.device)
    rows = []
    for stage in args.stages:
        for mode in args.amp:
            torch.manual_seed(0)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            amp = MixedPrecision(mode, device)
            step = (
                vq_step(device, args.vq_batch, args.window, amp, args.compile)
                if stage == "vq"
                else transformer_step(stage, device, args.trans_batch, amp, args.compile)
            )
            for _ in range(args.warmup):
                step()
            seconds = wall_median(step, args.iters, device, warmup=False)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
            rows.append((stage, mode, seconds, peak))
            del step
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def report(rows: list[tuple[str, str, float, float]], args: argparse.Namespace) -> str:
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [
        f"training steps on {device} ({name}), torch {torch.__version__}" + (", torch.compile" if args.compile else ""),
        official_hardware(device),
        f"{'stage':6s} {'batch':>5s} {'amp':5s} {'s/step':>9s} {'it/s':>8s} {'official s':>11s} "
        f"{'vs official':>11s} {'vs fp32':>8s} {'peak GiB':>8s}",
    ]
    first: dict[str, float] = {}
    for stage, mode, seconds, peak in rows:
        batch = args.vq_batch if stage == "vq" else args.trans_batch
        ref, note = OFFICIAL[stage]
        same = batch == OFFICIAL_BATCH[stage]
        first.setdefault(stage, seconds)
        lines.append(
            f"{stage:6s} {batch:5d} {mode:5s} {seconds:9.4f} {1 / seconds:8.2f} "
            f"{(f'{ref:.2f}' if same else '-'):>11s} {(f'{ref / seconds:.1f}x' if same else '-'):>11s} "
            f"{first[stage] / seconds:7.2f}x {peak:8.2f}" + (f"   (official: {note})" if same else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[tuple[str, str, float, float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--stages", nargs="+", default=["vq", "mask", "res"], choices=["vq", "mask", "res"])
    p.add_argument("--amp", nargs="+", default=["off"], choices=["off", "bf16", "fp16"])
    p.add_argument("--vq_batch", type=int, default=256)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--trans_batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=3, help="timed steps (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (more with --compile)")
    p.add_argument("--compile", action="store_true", help="torch.compile the trained networks")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = bench(args)
    print(report(rows, args))
    return rows


if __name__ == "__main__":
    main()
