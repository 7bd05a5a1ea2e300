"""RVQ-VAE speed: training iterations/s and encode/decode throughput, beside the official CPU figures.

Released architecture (nq6, dc512, nc512, width 512), random weights, synthetic normalised input.
Official figures: ../shared/reference/official_timings.md (2 CPU cores, torch 2.13 CPU, median of 3; machine
noise of +-30 % is normal there, so compare ratios measured in the same session where possible).

What both sides time. Training step: the official one is loss (reconstruction + velocity + commitment) +
backward + AdamW on a 256 x 64 batch; ours is the trainer's own step (training.vq.vq_step_gradients: the
sharded-quantizer path with keyed Gumbel/dropout/reset draws and EMA statistics, one shard) + AdamW. Decode:
``forward_decoder`` of all 6 layers' codes, 196 frames. Every row: min / median / max of ``--repeats`` runs
after one warm-up run.

    python -m benchmarks.bench_vq                       # a few minutes on 2 CPU cores
    python -m benchmarks.bench_vq --device cuda --train_iters 20 --batch_size 512
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.timing import load_average, official_hardware, wall_stats
from models.vq.build import build_rvqvae
from options.vq import VQOptions
from training.vq import make_optimizer, vq_step_gradients
from utils.device import resolve_device
from utils.distributed import MixedPrecision, ShardPlan
from utils.precision import describe_device

# official_timings.md (seconds)
OFFICIAL = {"train_step_b256_w64": 11.2, "decode_1x196": 0.063, "decode_32x196": 0.66}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--window_size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per row, after one warm-up run")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    opt = VQOptions(num_quantizers=6, batch_size=args.batch_size, window_size=args.window_size)
    model = build_rvqvae(opt).to(device)
    optimizer = make_optimizer(model, opt)
    x = torch.randn(args.batch_size, args.window_size, opt.spec.dim_pose, device=device)
    plan, amp, step = ShardPlan(global_batch=args.batch_size), MixedPrecision("off", device), [0]

    def train_step() -> None:
        model.train()
        step[0] += 1
        optimizer.zero_grad(set_to_none=True)
        vq_step_gradients(model, model, [x], plan, opt, step[0], amp, device)
        amp.step(optimizer)

    train = wall_stats(train_step, args.repeats, device)
    model.eval()
    rows = [
        (
            "train step (trainer step + AdamW)",
            f"b{args.batch_size} w{args.window_size}",
            train,
            OFFICIAL["train_step_b256_w64"] if (args.batch_size, args.window_size) == (256, 64) else None,
        )
    ]
    for batch in (1, 32):
        motion = torch.randn(batch, 196, opt.spec.dim_pose, device=device)
        with torch.inference_mode():
            codes, _ = model.encode(motion)
            enc = wall_stats(lambda: model.encode(motion), args.repeats, device)
            dec = wall_stats(lambda: model.forward_decoder(codes), args.repeats, device)
        rows.append((f"encode {batch}x196", "", enc, None))
        rows.append((f"decode {batch}x196", "", dec, OFFICIAL[f"decode_{batch}x196"]))
    print(
        f"RVQ-VAE benchmark on {device}: {describe_device(device)}; torch {torch.__version__}; {load_average()}; "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; {args.repeats} runs after a warm-up"
    )
    print(official_hardware(device))
    print(
        f"{'stage':36s} {'setting':10s} {'min s':>8s} {'median s':>9s} {'max s':>8s} {'official s':>11s} {'speed-up':>9s}"
    )
    for name, setting, (lo, med, hi), official in rows:
        ref = f"{official:11.3f}" if official is not None else f"{'-':>11s}"
        ratio = f"{official / med:8.2f}x" if official is not None else f"{'-':>9s}"
        print(f"{name:36s} {setting:10s} {lo:8.4f} {med:9.4f} {hi:8.4f} {ref} {ratio}")
    median = train[1]
    print(f"training: {1 / median:.3f} it/s, {args.batch_size * args.window_size / median:.0f} frames/s")


if __name__ == "__main__":
    main()
