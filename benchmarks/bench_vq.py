"""RVQ-VAE speed: training iterations/s and encode/decode throughput, beside the official CPU figures.

Released architecture (nq6, dc512, nc512, width 512), random weights, synthetic normalised input.
Official figures: ../shared/reference/official_timings.md (2 CPU cores, torch 2.13 CPU, median of 3; machine
noise of +-30 % is normal there, so compare ratios measured in the same session where possible).

    python -m benchmarks.bench_vq                       # < 2 minutes on 2 CPU cores
    python -m benchmarks.bench_vq --device cuda --train_iters 20 --batch_size 512
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from models.vq.build import build_rvqvae
from options.vq import VQOptions
from training.vq import make_optimizer, vq_loss
from utils.device import resolve_device

# official_timings.md (seconds)
OFFICIAL = {"train_step_b256_w64": 11.2, "decode_1x196": 0.063, "decode_32x196": 0.66}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--window_size", type=int, default=64)
    p.add_argument("--train_iters", type=int, default=2, help="timed training iterations (after 1 warm-up)")
    p.add_argument("--decode_repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    opt = VQOptions(num_quantizers=6, batch_size=args.batch_size, window_size=args.window_size)
    model = build_rvqvae(opt).to(device)
    optimizer = make_optimizer(model, opt)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(args.batch_size, args.window_size, opt.spec.dim_pose, device=device)

    def train_step() -> None:
        model.train()
        out = model.reconstruct(x, gen)
        loss, _ = vq_loss(out.recon, x, out.commit_loss, joints_num=opt.spec.joints_num)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train = timed(train_step, device, args.train_iters)
    model.eval()
    rows = [
        (
            "train step (loss+backward+AdamW)",
            f"b{args.batch_size} w{args.window_size}",
            statistics.median(train),
            OFFICIAL["train_step_b256_w64"] if args.batch_size == 256 else None,
        )
    ]
    for batch in (1, 32):
        motion = torch.randn(batch, 196, opt.spec.dim_pose, device=device)
        with torch.inference_mode():
            codes, _ = model.encode(motion)
            enc = timed(lambda: model.encode(motion), device, args.decode_repeats)
            dec = timed(lambda: model.forward_decoder(codes), device, args.decode_repeats)
        rows.append((f"encode {batch}x196", "", statistics.median(enc), None))
        rows.append((f"decode {batch}x196", "", statistics.median(dec), OFFICIAL[f"decode_{batch}x196"]))
    print(
        f"RVQ-VAE benchmark on {device} (torch {torch.__version__}, {torch.get_num_threads()} threads), "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters"
    )
    print(f"{'stage':36s} {'setting':10s} {'ours s':>9s} {'official s':>11s} {'speed-up':>9s}")
    for name, setting, ours, official in rows:
        ref = f"{official:11.3f}" if official is not None else f"{'-':>11s}"
        ratio = f"{official / ours:8.2f}x" if official is not None else f"{'-':>9s}"
        print(f"{name:36s} {setting:10s} {ours:9.4f} {ref} {ratio}")
    print(
        f"training: {1 / statistics.median(train):.3f} it/s, "
        f"{args.batch_size * args.window_size / statistics.median(train):.0f} frames/s "
        "(official figures: other hardware unless this is the 2-core CPU machine)"
    )


if __name__ == "__main__":
    main()
