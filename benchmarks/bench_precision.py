"""Token agreement of the reduced precision modes (int8, and bf16 where the CPU has it) with fp32, CPU.

Two measures per mode, each on the released-size transformers (random weights, fixed random text vectors) and
on the embedded demo model (trained weights, its own captions):

* one-forward agreement: the share of positions where the reduced mode's guided logits (cond scale 4 masked,
  5 residual) have the same argmax as fp32, for the same inputs (masked transformer: ids with the cosine
  schedule's half masked; residual transformer: random lower-layer ids, every layer 1..Q-1); int8 runs a
  dynamically quantised copy and bf16 the same model under CPU autocast (MoMaskPipeline.transformers/autocast);
* seeded-sample agreement: the share of equal ids between fp32 and reduced-mode generations with the same seed
  (categorical masked sampling, 10 steps, Gumbel residual layers); an early flip changes the context of the
  later steps, so this is lower than the one-forward figure.

Modes the CPU does not offer (bf16 without AVX512-BF16/AMX, utils/precision.py) are skipped with the reason.

    python -m benchmarks.bench_precision                 # a few minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.bench_generate import released_pipeline
from benchmarks.timing import load_average
from models.pipeline import MoMaskPipeline, Sampling
from utils.device import resolve_device
from utils.precision import check_precision, describe_device


@torch.no_grad()
def forward_agreement(
    pipe: MoMaskPipeline, cond: torch.Tensor, n: int, generator: torch.Generator, precision: str
) -> tuple[float, float]:
    """(masked, residual) share of positions whose guided-logit argmax in ``precision`` equals fp32's;
    cond (B, clip_dim)."""
    b = cond.shape[0]
    padding = torch.zeros(b, n, dtype=torch.bool)
    mask, res = pipe.mask, pipe.res
    ids = torch.randint(0, mask.num_tokens, (b, n), generator=generator)
    ids = torch.where(torch.rand(b, n, generator=generator) < 0.5, mask.mask_id, ids)
    ref = mask.forward_with_cond_scale(ids, cond, padding, 4.0).argmax(1)  # logits (B, K, n) -> (B, n)
    sampling = Sampling(precision=precision)
    (low_mask, low_res), context = pipe.transformers(sampling), pipe.autocast(sampling)  # int8 copies / bf16
    with context:
        masked = (ref == low_mask.forward_with_cond_scale(ids, cond, padding, 4.0).argmax(1)).float().mean()
    table = res.token_embeddings()  # (Q-1, K+1, C)
    history = torch.zeros(b, n, table.shape[-1])
    agree = []
    for layer in range(1, res.num_quantizers):
        history = history + table[layer - 1][torch.randint(0, res.num_tokens, (b, n), generator=generator)]
        ref = res.forward_with_cond_scale(history, layer, cond, padding, 5.0).argmax(1)
        with context:
            agree.append((ref == low_res.forward_with_cond_scale(history, layer, cond, padding, 5.0).argmax(1)).float())
    return float(masked), float(torch.stack(agree).mean())


def sample_agreement(pipe: MoMaskPipeline, cond: torch.Tensor, n: int, seed: int, precision: str) -> tuple:
    """(layer-0, all layers) share of equal ids between fp32 and ``precision`` generations under one seed."""
    tokens = torch.full((cond.shape[0],), n)
    ids = {}
    for mode in ("fp32", precision):
        sampling = Sampling(time_steps=10, cond_scale=4.0, res_cond_scale=5.0, precision=mode)
        ids[mode] = pipe.generate_codes(cond, tokens, sampling, torch.Generator().manual_seed(seed))
    equal = ids["fp32"] == ids[precision]
    return float(equal[..., 0].float().mean()), float(equal.float().mean())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32, help="prompts per measurement")
    p.add_argument("--seeds", type=int, default=3, help="seeded generations per model")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device("cpu")
    modes = []
    for precision in ("int8", "bf16"):
        try:
            check_precision(precision, device)
            modes.append(precision)
        except ValueError as e:
            print(f"skipped: {e}")
    demo = MoMaskPipeline.demo()
    captions = demo.known_captions[:: max(1, len(demo.known_captions) // args.batch)][: args.batch]
    models = {
        "released sizes, random weights": (released_pipeline(device), None),
        "demo model (trained)": (demo, demo.encode_text(captions)),
    }
    print(
        f"device cpu: {describe_device(device)}; torch {torch.__version__}; "
        f"{load_average()}; int8 = per-channel dynamic quantisation of every linear, bf16 = CPU autocast"
    )
    head = f"{'model':32s} {'mode':4s} {'masked 1-fwd':>12s} {'residual 1-fwd':>14s} {'sample layer 0':>14s}"
    print(f"{head} {'sample all':>10s}")
    for name, (pipe, cond) in models.items():
        if cond is None:
            cond = torch.randn(args.batch, pipe.mask.config.clip_dim, generator=torch.Generator().manual_seed(0))
        n = pipe.max_tokens
        for precision in modes:
            generator = torch.Generator().manual_seed(0)  # the same inputs for every mode
            masked, residual = forward_agreement(pipe, cond, n, generator, precision)
            samples = [sample_agreement(pipe, cond, n, seed, precision) for seed in range(args.seeds)]
            base = sum(s[0] for s in samples) / len(samples)
            every = sum(s[1] for s in samples) / len(samples)
            print(f"{name:32s} {precision:4s} {masked:12.3f} {residual:14.3f} {base:14.3f} {every:10.3f}")


if __name__ == "__main__":
    main()
