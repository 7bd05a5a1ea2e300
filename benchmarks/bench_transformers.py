"""Time the transformers at the released sizes (random weights) beside the official CPU figures.

What both sides time (official figures: ../shared/reference/official_timings.md, official code, 2 CPU
threads, same machine kind, released sizes, random weights, fixed text vectors):

* generation, 196 frames (49 tokens), batch 1 and 32: the masked transformer's full 18- or 10-step decoding
  at cond_scale 4 (official ``generate``: two passes per step for guidance; ours one batched pass unless
  ``--two_pass``), the residual transformer's 5 layers at cond_scale 5 (official ``generate``);
* training step, batch 64: loss + backward + AdamW, with and without the RVQ-VAE encode of the batch (the
  official step encodes inside; official figures with anomaly detection off).

Every case: one warm-up run of its own, then ``--repeats`` timed runs (min / median / max printed).

    python -m benchmarks.bench_transformers            # about 10 min on 2 quiet CPU cores (batch 32 dominates)
    python -m benchmarks.bench_transformers --device cuda
"""

from __future__ import annotations

import argparse
import logging

import torch

from benchmarks.timing import load_average, official_hardware, wall_stats
from models.transformer.mask_transformer import MaskTransformer, MaskTransformerConfig
from models.transformer.residual_transformer import ResidualTransformer, ResidualTransformerConfig
from models.transformer.sampling import generate_base_tokens, generate_residual_tokens
from utils.device import resolve_device
from utils.log import setup_logging
from utils.precision import describe_device

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


def build_vq(device: torch.device):
    from models.vq.build import build_rvqvae
    from models.vq.model import RVQVAEConfig

    return build_rvqvae(RVQVAEConfig()).to(device).eval()


def bench(args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    device = resolve_device(args.device)
    torch.manual_seed(0)
    mask = MaskTransformer(MaskTransformerConfig()).to(device).eval()
    res = ResidualTransformer(ResidualTransformerConfig()).to(device).eval()
    out: dict[str, tuple[float, float, float]] = {}
    reps = args.repeats
    for b in args.batches:
        cond = torch.randn(b, 512, device=device)
        m_lens = torch.full((b,), 49, device=device)
        for steps in (18, 10):
            out[f"M generate b{b} {steps} steps"] = wall_stats(
                lambda: generate_base_tokens(
                    mask, cond, m_lens, timesteps=steps, cond_scale=4.0, batched_cfg=not args.two_pass
                ),
                reps,
                device,
            )
        base = torch.randint(0, 512, (b, 49), device=device)
        out[f"R generate b{b}"] = wall_stats(
            lambda: generate_residual_tokens(res, base, cond, m_lens, cond_scale=5.0, batched_cfg=not args.two_pass),
            reps,
            device,
        )
    if not args.skip_train:
        vq = build_vq(device)
        motion = torch.randn(64, 196, 263, device=device)
        lengths = torch.randint(10, 50, (64,), device=device)
        cond = torch.randn(64, 512, device=device)
        with torch.no_grad():
            codes = vq.encode(motion)[0]
        out["VQ encode b64"] = wall_stats(lambda: vq.encode(motion), reps, device)
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

            out[f"{tag} train step b64"] = wall_stats(lambda: step(False), reps, device)
            out[f"{tag} train step b64 (+VQ encode)"] = wall_stats(lambda: step(True), reps, device)
            model.eval()
    return out


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float, float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case, after one warm-up run of its own")
    p.add_argument("--batches", type=int, nargs="*", default=[1, 32])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave torch's default)")
    p.add_argument("--two_pass", action="store_true", help="classifier-free guidance as two passes (official)")
    p.add_argument("--skip_train", action="store_true", help="only time generation")
    args = p.parse_args(argv)
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = bench(args)
    device = resolve_device(args.device)
    logger.info(
        "device %s: %s; torch %s; %s; %d runs after a warm-up",
        device,
        describe_device(device),
        torch.__version__,
        load_average(),
        args.repeats,
    )
    logger.info("%s", official_hardware(device))
    logger.info("%-34s %8s %8s %8s %9s %8s", "case", "min s", "median s", "max s", "official", "speed-up")
    for case, (lo, med, hi) in results.items():
        ref = OFFICIAL.get(case)
        logger.info(
            "%-34s %8.3f %8.3f %8.3f %9s %8s",
            case,
            lo,
            med,
            hi,
            f"{ref:.2f}" if ref else "-",
            f"{ref / med:.2f}x" if ref else "-",
        )
    return results


if __name__ == "__main__":
    main()
