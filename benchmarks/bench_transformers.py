"""Time the transformers at the released sizes (random weights) beside the official CPU figures.

Measures one training step per stage (batch 64: loss + backward + AdamW, with and without the VQ encode of the
batch) and full generations (masked 10/18 steps at cond_scale 4, residual at cond_scale 5; batch 1 and 32,
196 frames). Official figures: ../shared/reference/official_timings.md (2 CPU threads, same machine kind).

    python -m benchmarks.bench_transformers            # default: < 3 min on 2 CPU cores
    python -m benchmarks.bench_transformers --device cuda --repeats 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

import torch

from models.transformer.mask_transformer import MaskTransformer, MaskTransformerConfig
from models.transformer.residual_transformer import ResidualTransformer, ResidualTransformerConfig
from models.transformer.sampling import generate_base_tokens, generate_residual_tokens
from utils.device import resolve_device
from utils.log import setup_logging

logger = logging.getLogger("bench_transformers")

# Seconds, official code on this project's CPU machine kind (official_timings.md, medians / quieter run).
OFFICIAL = {
    "M generate b1 18 steps": 1.00,
    "M generate b1 10 steps": 0.59,
    "R generate b1": 0.30,
    "M generate b32 18 steps": 15.7,
    "M generate b32 10 steps": 8.5,
    "R generate b32": 4.8,
    "M train step b64 (+VQ encode)": 4.22,
    "R train step b64 (+VQ encode)": 5.18,
}


def timed(fn: Callable[[], object], repeats: int, device: torch.device, warmup: bool = True) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs (after one warm-up run if ``warmup``)."""
    return timed_stats(fn, repeats, device, warmup)[1]


def timed_stats(
    fn: Callable[[], object], repeats: int, device: torch.device, warmup: bool = True
) -> tuple[float, float, float]:
    """(min, median, max) wall time of ``fn`` over ``repeats`` runs (after one warm-up run if ``warmup``)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if warmup:
        fn()
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), max(times)


def build_vq(device: torch.device):
    from models.vq.build import build_rvqvae
    from models.vq.model import RVQVAEConfig

    return build_rvqvae(RVQVAEConfig()).to(device).eval()


def bench(args: argparse.Namespace) -> dict[str, float]:
    device = resolve_device(args.device)
    torch.manual_seed(0)
    mask = MaskTransformer(MaskTransformerConfig()).to(device).eval()
    res = ResidualTransformer(ResidualTransformerConfig()).to(device).eval()
    out: dict[str, float] = {}
    for b in args.batches:
        reps = args.repeats if b == 1 else max(1, args.repeats // 3)
        cond = torch.randn(b, 512, device=device)
        m_lens = torch.full((b,), 49, device=device)
        for steps in (18, 10):
            out[f"M generate b{b} {steps} steps"] = timed(
                lambda: generate_base_tokens(
                    mask, cond, m_lens, timesteps=steps, cond_scale=4.0, batched_cfg=not args.two_pass
                ),
                reps,
                device,
                warmup=b == 1,
            )
        base = torch.randint(0, 512, (b, 49), device=device)
        out[f"R generate b{b}"] = timed(
            lambda: generate_residual_tokens(res, base, cond, m_lens, cond_scale=5.0, batched_cfg=not args.two_pass),
            reps,
            device,
            warmup=b == 1,
        )
    if not args.skip_train:
        vq = build_vq(device)
        motion = torch.randn(64, 196, 263, device=device)
        lengths = torch.randint(10, 50, (64,), device=device)
        cond = torch.randn(64, 512, device=device)
        with torch.no_grad():
            codes = vq.encode(motion)[0]
        out["VQ encode b64"] = timed(lambda: vq.encode(motion), 1, device)
        for tag, model, loss in (
            ("M", mask, lambda m, c: m.masked_loss(c[..., 0], cond, lengths)),
            ("R", res, lambda m, c: m.residual_loss(c, cond, lengths)),
        ):
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.99), weight_decay=1e-5)

            def step(encode: bool, model=model, loss=loss, opt=opt) -> None:
                c = vq.encode(motion)[0] if encode else codes
                opt.zero_grad(set_to_none=True)
                loss(model, c).loss.backward()
                opt.step()

            out[f"{tag} train step b64"] = timed(lambda: step(False), 1, device)
            out[f"{tag} train step b64 (+VQ encode)"] = timed(lambda: step(True), 1, device)
            model.eval()
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per batch-1 case (batch 32: a third)")
    p.add_argument("--batches", type=int, nargs="*", default=[1, 32])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave torch's default)")
    p.add_argument("--two_pass", action="store_true", help="classifier-free guidance as two passes (official)")
    p.add_argument("--skip_train", action="store_true", help="only time generation")
    args = p.parse_args(argv)
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = bench(args)
    logger.info("%-34s %10s %10s %8s", "case", "ours (s)", "official", "speed-up")
    for case, seconds in results.items():
        ref = OFFICIAL.get(case)
        logger.info(
            "%-34s %10.3f %10s %8s",
            case,
            seconds,
            f"{ref:.2f}" if ref else "-",
            f"{ref / seconds:.1f}x" if ref else "-",
        )
    logger.info("device %s, %d threads, torch %s", args.device, torch.get_num_threads(), torch.__version__)
    return results


if __name__ == "__main__":
    main()
