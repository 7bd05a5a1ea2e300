"""Why generation decodes with a margin (docs/sampling.md#decoding-margin): the VQ's reconstruction error by
frame position on the demo clips of full length (196 frames), first and last frames against the middle.

    python -m benchmarks.bench_decoding_margin

Error per frame: mean over joints of the root-relative joint position error plus the root height error (m),
averaged over the clips; the root's horizontal path is left out (it integrates velocities, so its error grows
along the clip whatever the decoder does at the ends).
"""

from __future__ import annotations

import numpy as np
import torch

from models.pipeline import MoMaskPipeline
from utils.motion import recover_from_ric


def edge_errors(pipe: MoMaskPipeline, features: list[np.ndarray]) -> np.ndarray:
    """Per clip (T, D) of exactly ``max_motion_length`` frames -> (clips, T) reconstruction error, m."""
    out = []
    for f in features:
        n = f.shape[0] // pipe.spec.unit_length
        ((_, rec),) = pipe.decode(pipe.encode_motion(f), torch.tensor([n]))
        ref = recover_from_ric(torch.as_tensor(f), pipe.spec.joints_num).numpy()
        local = np.linalg.norm((rec - rec[:, :1]) - (ref - ref[:, :1]), axis=-1).mean(-1)
        out.append(local + np.abs(rec[:, 0, 1] - ref[:, 0, 1]))
    return np.stack(out)


def main() -> None:
    pipe = MoMaskPipeline.demo()
    frames = pipe.spec.max_motion_length
    clips = sorted((MoMaskPipeline.DEMO_DATASET / "new_joint_vecs").glob("*.npy"))
    features = [f[:frames] for f in (np.load(p) for p in clips) if f.shape[0] >= frames]
    e = 100 * edge_errors(pipe, features)
    print(f"demo VQ, {len(features)} clips of {frames} frames: reconstruction error by frame (cm)")
    print("  first 4 frames:", " ".join(f"{v:.1f}" for v in e[:, :4].mean(0)))
    print(f"  middle (frames 8..{frames - 9}): {e[:, 8:-8].mean():.1f}")
    print("  last 4 frames: ", " ".join(f"{v:.1f}" for v in e[:, -4:].mean(0)))
    margin = pipe.run_sampling.margin
    print(f"  the demo run decodes with a margin of {margin} tokens ({4 * margin} frames) at each end")


if __name__ == "__main__":
    main()
