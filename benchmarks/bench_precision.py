"""Token agreement of the int8 precision mode with fp32 (models/transformer/precision.py), CPU.

Two measures, each on the released-size transformers (random weights, fixed random text vectors) and on the
embedded demo model (trained weights, its own captions):

* one-forward agreement: the share of positions where the int8 copy's guided logits (cond scale 4 masked,
  5 residual) have the same argmax as fp32, for the same inputs (masked transformer: ids with the cosine
  schedule's half masked; residual transformer: random lower-layer ids, every layer 1..Q-1);
* seeded-sample agreement: the share of equal ids between fp32 and int8 generations with the same seed
  (categorical masked sampling, 10 steps, Gumbel residual layers); an early flip changes the context of the
  later steps, so this is lower than the one-forward figure.

    python -m benchmarks.bench_precision                 # a few minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.bench_generate import released_pipeline
from benchmarks.timing import load_average
from models.pipeline import MoMaskPipeline, Sampling
from models.transformer.precision import int8_copy
from utils.device import resolve_device
from utils.precision import check_precision, describe_device


@torch.no_grad()
def forward_agreement(pipe: MoMaskPipeline, cond: torch.Tensor, n: int, generator: torch.Generator) -> tuple:
    """(masked, residual) share of positions whose int8 guided-logit argmax equals fp32's; cond (B, clip_dim)."""
    b = cond.shape[0]
    padding = torch.zeros(b, n, dtype=torch.bool)
    mask, res = pipe.mask, pipe.res
    ids = torch.randint(0, mask.num_tokens, (b, n), generator=generator)
    ids = torch.where(torch.rand(b, n, generator=generator) < 0.5, mask.mask_id, ids)
    ref = mask.forward_with_cond_scale(ids, cond, padding, 4.0).argmax(1)  # logits (B, K, n) -> (B, n)
    masked = (ref == int8_copy(mask).forward_with_cond_scale(ids, cond, padding, 4.0).argmax(1)).float().mean()
    quant, table = int8_copy(res), res.token_embeddings()  # (Q-1, K+1, C)
    history = torch.zeros(b, n, table.shape[-1])
    agree = []
    for layer in range(1, res.num_quantizers):
        history = history + table[layer - 1][torch.randint(0, res.num_tokens, (b, n), generator=generator)]
        ref = res.forward_with_cond_scale(history, layer, cond, padding, 5.0).argmax(1)
        agree.append((ref == quant.forward_with_cond_scale(history, layer, cond, padding, 5.0).argmax(1)).float())
    return float(masked), float(torch.stack(agree).mean())


def sample_agreement(pipe: MoMaskPipeline, cond: torch.Tensor, n: int, seed: int) -> tuple[float, float]:
    """(layer-0, all layers) share of equal ids between fp32 and int8 generations under the same seed."""
    tokens = torch.full((cond.shape[0],), n)
    ids = {}
    for precision in ("fp32", "int8"):
        sampling = Sampling(time_steps=10, cond_scale=4.0, res_cond_scale=5.0, precision=precision)
        ids[precision] = pipe.generate_codes(cond, tokens, sampling, torch.Generator().manual_seed(seed))
    equal = ids["fp32"] == ids["int8"]
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
    check_precision("int8", device)
    demo = MoMaskPipeline.demo()
    captions = demo.known_captions[:: max(1, len(demo.known_captions) // args.batch)][: args.batch]
    models = {
        "released sizes, random weights": (released_pipeline(device), None),
        "demo model (trained)": (demo, demo.encode_text(captions)),
    }
    print(
        f"device cpu: {describe_device(device)}; torch {torch.__version__}; "
        f"{load_average()}; int8 = per-channel dynamic quantisation of every linear"
    )
    print(f"{'model':32s} {'masked 1-fwd':>12s} {'residual 1-fwd':>14s} {'sample layer 0':>14s} {'sample all':>10s}")
    for name, (pipe, cond) in models.items():
        generator = torch.Generator().manual_seed(0)
        if cond is None:
            cond = torch.randn(args.batch, pipe.mask.config.clip_dim, generator=generator)
        n = pipe.max_tokens
        masked, residual = forward_agreement(pipe, cond, n, generator)
        samples = [sample_agreement(pipe, cond, n, seed) for seed in range(args.seeds)]
        base = sum(s[0] for s in samples) / len(samples)
        every = sum(s[1] for s in samples) / len(samples)
        print(f"{name:32s} {masked:12.3f} {residual:14.3f} {base:14.3f} {every:10.3f}")


if __name__ == "__main__":
    main()
