"""Does the demo masked transformer read its token context? (evaluation/token_context.py)

    python -m benchmarks.bench_token_context [--draws 20] [--seeds 5] [--seed 0]

For each demo clip with a whole-clip caption (not the mirrored copies), on its first 196 frames at most:

- top-1 accuracy on the clip's own base-layer codes with 5 %, 50 % and 100 % of positions hidden (``--draws``
  masks each; the conditional pass under the clip's first caption, no guidance), and the context gain
  (5 % − 100 %): a model that reads context gains a lot, one that predicts from text and position alone ~0;
- the share of base tokens equal to the previous one in the clip and in ``--seeds`` generations of its caption
  at its length (the run's own sampling settings, seeded with ``--seed``).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from data.text import read_text_file
from evaluation.token_context import context_accuracy, repeat_rate
from models.pipeline import MoMaskPipeline, Sampling

RATIOS = (0.05, 0.5, 1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=20, help="random masks per clip and hidden share")
    parser.add_argument("--seeds", type=int, default=5, help="generations per caption")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generations")
    args = parser.parse_args(argv)
    pipe = MoMaskPipeline.demo()
    model = pipe.transformers(Sampling())[0]
    root, frames, unit = MoMaskPipeline.DEMO_DATASET, pipe.spec.max_motion_length, pipe.spec.unit_length
    rows = []
    for path in sorted((root / "new_joint_vecs").glob("[0-9]*.npy")):
        whole = [a.caption for a in read_text_file(root / "texts" / f"{path.stem}.txt") if a.is_whole_clip]
        features = np.load(path)[:frames]
        n = features.shape[0] // unit
        if not whole or n < 2:
            continue
        tokens = pipe.encode_motion(features)[0, :n, 0]
        cond = pipe.encode_text(whole[:1])
        padding = torch.zeros(1, n, dtype=torch.bool, device=pipe.device)

        def logits(ids: torch.Tensor) -> torch.Tensor:
            return model(ids[None], cond, padding)[0]

        accs = [context_accuracy(logits, tokens, model.mask_id, r, args.draws) for r in RATIOS]
        generated = pipe.generate(whole[:1] * args.seeds, [n * unit] * args.seeds, seed=args.seed)
        gen_repeat = float(np.mean([repeat_rate(m.tokens[:, 0]) for m in generated]))
        rows.append((path.stem, whole[0], *accs, repeat_rate(tokens.cpu().numpy()), gen_repeat))
    print(f"demo masked transformer, {len(rows)} clips: accuracy on the clip's own codes by share hidden")
    print(f"{'clip':<7} {'caption':<40} {'5 %':>5} {'50 %':>5} {'100 %':>5} {'gain':>5}  repeat: clip  generated")
    for clip, caption, *acc, clip_rep, gen_rep in rows:
        print(
            f"{clip:<7} {caption[:40]:<40} {acc[0]:5.2f} {acc[1]:5.2f} {acc[2]:5.2f} {acc[0] - acc[2]:+5.2f}"
            f"        {clip_rep:4.2f}  {gen_rep:9.2f}"
        )
    mean = np.mean([r[2:] for r in rows], axis=0)
    print(
        f"{'mean':<48} {mean[0]:5.2f} {mean[1]:5.2f} {mean[2]:5.2f} {mean[0] - mean[2]:+5.2f}"
        f"        {mean[3]:4.2f}  {mean[4]:9.2f}"
    )


if __name__ == "__main__":
    main()
