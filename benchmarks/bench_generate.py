"""End-to-end text -> BVH at the released model sizes (random weights), beside the official CPU figures.

Like the official measurement (../shared/reference/official_timings.md), the text encoder is replaced by fixed
512-d vectors so that CLIP's own cost is not in the pipeline figures; CLIP's text tower (ViT-B/32 size, random
weights) is timed separately. Defaults are gen_t2m's: 18 steps, cond scales 4 (masked) and 5 (residual).

    python -m benchmarks.bench_generate                   # 1 prompt and a batch of 32, 196 frames, CPU
    python -m benchmarks.bench_generate --batches 1 --repeats 5 --device cuda
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.timing import load_average, official_hardware, wall_median, wall_stats
from models.length_estimator import LengthEstimator
from models.pipeline import MoMaskPipeline, Sampling
from models.text.base import TextEncoder
from models.transformer.mask_transformer import MaskTransformer, MaskTransformerConfig
from models.transformer.residual_transformer import ResidualTransformer, ResidualTransformerConfig
from models.vq.build import build_rvqvae
from models.vq.model import RVQVAEConfig
from utils.device import resolve_device
from utils.precision import PRECISIONS, check_precision, describe_device
from utils.skeleton import get_dataset_spec
from visualization.joints2bvh import save_bvh

# Official gen_t2m on this machine kind, seconds (official_timings.md): neural part per prompt (masked 1.00 +
# residual 0.30 + decode 0.063) and of a batch of 32 (15.7 + 4.8 + 0.66). Text -> BVH compares like with like:
# we write ONE BVH per motion (plain, no foot IK), so the official side is neural + ONE plain IK export (5.05 s
# per motion), not gen_t2m's two exports (plain + foot IK, 11.6 s in all); "BVH export" is one export alone,
# timed with --bvh_repeats runs (it is ~40 ms, below the run-to-run noise of the neural part).
OFFICIAL = {
    "neural b1": 1.36,
    "text -> BVH b1": 1.36 + 5.05,
    "BVH export (one, 196 frames)": 5.05,
    "neural b32": 21.2,
    "text -> BVH b32": 21.2 + 32 * 5.05,
}


class FixedVectors(TextEncoder):
    """Stands in for CLIP in the timed pipeline: one fixed 512-d vector per caption (as the official timing)."""

    name, dim, max_tokens = "fixed", 512, 77

    def __init__(self) -> None:
        super().__init__(nn.Identity())

    def _encode_batch(self, captions: list[str]) -> torch.Tensor:
        return torch.randn(len(captions), self.dim, generator=torch.Generator().manual_seed(len(captions)))


def released_pipeline(device: torch.device) -> MoMaskPipeline:
    """VQ 19.4 M, masked 12.0 M, residual 13.4 M, length estimator 0.4 M parameters, random weights."""
    torch.manual_seed(0)
    vq = build_rvqvae(RVQVAEConfig())
    for layer in vq.quantizer.layers:
        layer.codebook.copy_(torch.randn_like(layer.codebook) * 0.1)
    spec = get_dataset_spec("t2m")
    return MoMaskPipeline(
        vq=vq,
        mask=MaskTransformer(MaskTransformerConfig()),
        res=ResidualTransformer(ResidualTransformerConfig()),
        text_encoder=FixedVectors(),
        mean=np.zeros(spec.dim_pose, np.float32),
        std=np.ones(spec.dim_pose, np.float32),
        spec=spec,
        length_estimator=LengthEstimator(),
        device=device,
    )


def clip_text_seconds(device: torch.device, repeats: int) -> float | None:
    """One prompt through a ViT-B/32-sized CLIP text tower (random weights); None without transformers."""
    try:
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    except ImportError:
        return None
    model = (
        CLIPTextModelWithProjection(
            CLIPTextConfig(
                hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8, projection_dim=512
            )
        )
        .to(device)
        .eval()
    )
    ids = torch.randint(0, 49407, (1, 77), device=device)
    with torch.no_grad():
        return wall_median(lambda: model(input_ids=ids), repeats, device)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case, after one warm-up run")
    p.add_argument("--bvh_repeats", type=int, default=30, help="timed runs of one BVH export alone")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument(
        "--precisions",
        nargs="+",
        default=list(PRECISIONS),
        choices=PRECISIONS,
        help="transformer arithmetic (gen_t2m --precision); modes the device does not offer are "
        "skipped with the reason; every row compares with the fp32 official figure",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    pipe = released_pipeline(device)
    build_s = time.perf_counter() - t0
    out: dict[str, tuple[float, float, float]] = {}
    skipped = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions:
            try:
                check_precision(precision, device)
            except ValueError as err:
                skipped.append(str(err))
                continue
            sampling = Sampling(precision=precision)  # gen_t2m defaults: 18 steps, cond scales 4 and 5
            tag = "" if precision == "fp32" else f" {precision}"
            for b in args.batches:
                texts = [f"a person walks forward {i}" for i in range(b)]
                reps = args.repeats

                def neural() -> list:
                    return pipe.generate(texts, [196] * b, seed=0, sampling=sampling)

                def text_to_bvh() -> None:
                    for k, motion in enumerate(neural()):
                        save_bvh(motion.joints, Path(tmp) / f"{k}.bvh", pipe.spec)

                out[f"neural b{b}{tag}"] = wall_stats(neural, reps, device)
                out[f"text -> BVH b{b}{tag}"] = wall_stats(text_to_bvh, reps, device)
        motion = pipe.generate(["a person walks forward"], [196], seed=0)[0]
        out["BVH export (one, 196 frames)"] = wall_stats(
            lambda: save_bvh(motion.joints, Path(tmp) / "one.bvh", pipe.spec), args.bvh_repeats, device
        )
    clip_s = clip_text_seconds(device, args.repeats)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"device {device}: {describe_device(device)}; torch {torch.__version__}; "
        f"{load_average()}; build {build_s:.2f} s (official build + load 0.75 s); "
        f"{args.repeats} runs after a warm-up ({args.bvh_repeats} for the BVH export alone)"
    )
    print(official_hardware(device))
    for note in skipped:
        print(f"skipped: {note}")
    print(
        f"{'stage (196 frames, 18 steps, cfg 4/5)':32s} {'min':>7s} {'median':>7s} {'max':>7s} {'official':>9s} "
        f"{'speed-up':>9s}"
    )
    for key, (lo, med, hi) in out.items():
        official = OFFICIAL.get(key.removesuffix(" bf16").removesuffix(" int8"))
        ratio = f"{official / med:8.2f}x" if official else ""
        print(f"{key:32s} {lo:7.3f} {med:7.3f} {hi:7.3f} {official if official else float('nan'):9.2f} {ratio:>9s}")
    if clip_s is not None:
        print(f"{'CLIP ViT-B/32 text tower, 1 prompt':40s} {clip_s:9.3f} {'(not in official figures)':>21s}")
    print(f"peak RSS {peak_mb:.0f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
