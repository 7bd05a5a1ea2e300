"""Build a complete dataset in the official layout (docs/data.md#folder-layout) from joint sequences and captions.

    python -m prepare.build_dataset my_clips/ --out dataset/MyData --dataset_name t2m [--src_fps 30]

Input folder: ``<name>.npy`` joint positions (T, 22, 3) for t2m / (T, 21, 3) for kit (Y up, metres for t2m) or
``<name>.bvh`` (this project's rig, read with ``visualization.bvh``; its frame time sets the source rate), each with ``<name>.txt`` captions: one per line, either plain
text (a whole-clip caption) or ``caption#start#end`` (seconds; a sub-range). Output (``--out``, written to a
temporary folder and moved into place only when everything succeeded; an existing ``--out`` is refused):

* ``new_joint_vecs/<id>.npy`` features from ``utils.motion.extract_features`` (official ``process_file``);
* ``new_joints/<id>.npy`` = ``recover_from_ric(features)``;
* mirrored copies ``M<id>`` (x → −x, left/right joints swapped, left/right words swapped in the captions);
* ``texts/<id>.txt`` lines ``caption#word/POS ...#start#end`` (spaCy ``en_core_web_sm`` when installed, else
  the fallback tagger of ``data.pos_tagging``);
* ``Mean.npy``/``Std.npy`` over all clips with the group-averaged std (docs/data.md#normalisation);
* ``train/val/test/train_val/all.txt``: a seeded split by clip (a clip and its mirror share a split).
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.checks import check_dataset
from data.feature_stats import compute_mean_std
from data.pos_tagging import tag_caption
from data.text import TextAnnotation, write_text_file
from utils.cli import run_cli
from utils.kit_mapping import smpl22_to_kit21
from utils.motion import check_joints, extract_features, mirror_joints, recover_from_ric
from utils.npy import load_npy
from utils.skeleton import DatasetSpec, get_dataset_spec

logger = logging.getLogger(__name__)

_SWAPS = {
    "left": "right",
    "right": "left",
    "leftward": "rightward",
    "rightward": "leftward",
    "leftwards": "rightwards",
    "rightwards": "leftwards",
    "clockwise": "counterclockwise",
    "counterclockwise": "clockwise",
    "anticlockwise": "clockwise",
}
_SWAP_RE = re.compile(r"\b(" + "|".join(sorted(_SWAPS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def swap_left_right(text: str) -> str:
    """Swap left/right words (and clockwise/counterclockwise), keeping capitalisation. Works on tokens too."""

    def repl(m: re.Match) -> str:
        word = m.group(0)
        out = _SWAPS[word.lower()]
        return out.capitalize() if word[0].isupper() else out

    return _SWAP_RE.sub(repl, text)


def mirror_annotation(ann: TextAnnotation) -> TextAnnotation:
    return TextAnnotation(
        swap_left_right(ann.caption), tuple(swap_left_right(t) for t in ann.tokens), ann.start, ann.end
    )


def read_captions(path: Path, use_spacy: bool = True) -> list[TextAnnotation]:
    """Caption file of the input folder: ``caption`` or ``caption#start#end`` per line -> tagged annotations."""
    annotations = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split("#")
        if len(parts) == 1:
            caption, start, end = parts[0], 0.0, 0.0
        elif len(parts) == 3:
            try:
                caption, start, end = parts[0], float(parts[1]), float(parts[2])
            except ValueError:
                raise ValueError(f"{path}:{n}: times must be numbers in 'caption#start#end', got {line!r}") from None
        else:
            raise ValueError(f"{path}:{n}: expected 'caption' or 'caption#start#end', got {line!r}")
        caption = caption.strip()
        if not caption:
            raise ValueError(f"{path}:{n}: empty caption")
        annotations.append(TextAnnotation(caption, tuple(tag_caption(caption, use_spacy)), start, end))
    if not annotations:
        raise ValueError(f"{path}: no captions")
    return annotations


def load_joints(path: Path, spec: DatasetSpec) -> tuple[np.ndarray, float | None]:
    """(T, J, 3) float32 from ``.npy`` or ``.bvh`` (global joint positions, Y up) and the file's own frame rate
    (BVH frame time; None for ``.npy``). BVH files must use this project's rig (``visualization.joints2bvh``)."""
    fps = None
    if path.suffix == ".bvh":
        try:
            from visualization.bvh import read_bvh
            from visualization.joints2bvh import bvh_to_joints
        except ImportError as exc:
            raise ValueError(
                f"{path}: BVH input needs visualization.bvh / visualization.joints2bvh ({exc}); "
                f"convert the clip to a (T, {spec.joints_num}, 3) .npy instead"
            ) from None
        motion = read_bvh(path)
        joints = np.asarray(bvh_to_joints(motion, spec), dtype=np.float32)
        fps = 1.0 / motion.frame_time
    else:
        joints = load_npy(path, "joint positions", ndim=3)
        if spec.name == "kit" and joints.ndim == 3 and joints.shape[1:] == (22, 3):
            joints = smpl22_to_kit21(joints)  # SMPL-22 metres -> KIT-21 millimetres (utils/kit_mapping.py)
    check_joints(joints, spec, name=str(path), min_frames=2)
    return joints, fps


def resample_joints(joints: np.ndarray, src_fps: float, fps: float) -> np.ndarray:
    """Linear resampling in time. (T, J, 3) at ``src_fps`` -> (T', J, 3) at ``fps``."""
    if abs(src_fps - fps) < 1e-9:
        return joints
    t = np.arange(0.0, (len(joints) - 1) / src_fps + 1e-9, 1.0 / fps) * src_fps
    i = np.minimum(np.floor(t).astype(int), len(joints) - 2)
    a = (t - i)[:, None, None]
    return (joints[i] * (1 - a) + joints[i + 1] * a).astype(np.float32)


@dataclass(frozen=True)
class SplitFractions:
    val: float = 0.1
    test: float = 0.2

    def assign(self, names: Sequence[str], seed: int) -> dict[str, list[str]]:
        """Seeded split by clip name: each non-empty fraction gets at least one clip when there are >= 3."""
        order = list(np.random.default_rng(seed).permutation(len(names)))
        n = len(names)
        n_test = max(1 if n >= 3 and self.test > 0 else 0, int(round(self.test * n)))
        n_val = max(1 if n >= 3 and self.val > 0 else 0, int(round(self.val * n)))
        test = sorted(names[i] for i in order[:n_test])
        val = sorted(names[i] for i in order[n_test : n_test + n_val])
        train = sorted(names[i] for i in order[n_test + n_val :])
        return {"train": train, "val": val, "test": test}


def _changes(
    joints: np.ndarray, recovered: np.ndarray, spec: DatasetSpec, frames_in: int, rate: float, frames_out: int
) -> dict[str, float]:
    """What processing changed in one clip: bone-length ratios target/input, root path scale, frames."""
    stats = {"frames_in": frames_in, "rate": rate, "frames_out": frames_out, "resampled": len(joints)}
    parents = [-1] * spec.joints_num
    for chain in spec.chains:
        for a, b in zip(chain[:-1], chain[1:]):
            parents[b] = a
    if spec.target_bone_lengths is not None:
        own = np.array(
            [
                np.median(np.linalg.norm(joints[:, j] - joints[:, parents[j]], axis=-1))
                for j in range(1, spec.joints_num)
            ]
        )
        ratio = spec.target_bone_lengths / np.maximum(own, 1e-9)
        stats.update(bone_min=float(ratio.min()), bone_max=float(ratio.max()))

    def path(root: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(root[:, [0, 2]], axis=0), axis=-1).sum())

    src_path = path(joints[: len(recovered), 0])
    stats["path_scale"] = path(recovered[:, 0]) / src_path if src_path > 1e-6 else 1.0
    return stats


def summarize(changes: list[dict[str, float]], spec: DatasetSpec) -> str:
    """The build's summary: retargeting (bone lengths, root path), resampling and dropped frames."""
    if not changes:
        return "no clips"
    lines = [f"summary of what processing changed in {len(changes)} clips:"]
    if "bone_min" in changes[0]:
        lo, hi = min(c["bone_min"] for c in changes), max(c["bone_max"] for c in changes)
        lines.append(
            f"  retargeted to the {spec.name} target skeleton: bone lengths x{lo:.2f}..x{hi:.2f} "
            f"({(lo - 1) * 100:+.0f} %..{(hi - 1) * 100:+.0f} %)"
        )
    else:
        lines.append(f"  bone lengths kept ({spec.name} has no target skeleton here)")
    scales = [c["path_scale"] for c in changes]
    lines.append(
        f"  root path length x{min(scales):.2f}..x{max(scales):.2f} (retargeting scales the root by the "
        "leg-length ratio)"
    )
    rates = sorted({c["rate"] for c in changes})
    if rates != [spec.fps]:
        lines.append(
            f"  resampled from {', '.join(f'{r:g}' for r in rates)} fps to {spec.fps:g} fps: "
            f"{sum(c['frames_in'] for c in changes)} -> {sum(c['resampled'] for c in changes)} frames"
        )
    lines.append(
        f"  {sum(c['resampled'] - c['frames_out'] for c in changes)} frame(s) dropped (features are "
        "velocities: the last frame of each clip has none)"
    )
    return "\n".join(lines)


def find_clips(src: Path) -> list[Path]:
    if not src.is_dir():
        raise FileNotFoundError(f"input folder {src} does not exist")
    clips = sorted(p for p in src.iterdir() if p.suffix in (".npy", ".bvh"))
    if not clips:
        raise ValueError(f"{src} holds no .npy or .bvh joint files")
    missing = [p.name for p in clips if not p.with_suffix(".txt").is_file()]
    if missing:
        raise ValueError(f"{len(missing)} clips have no caption file <name>.txt next to them: {missing[:5]}")
    names = [p.stem for p in clips]
    if len(set(names)) != len(names):
        raise ValueError(f"{src}: two inputs share a name (a .npy and a .bvh?); names must be unique")
    bad = [n for n in names if n.startswith("M") or "#" in n or "/" in n]
    if bad:
        raise ValueError(f"clip names must not start with 'M' (reserved for mirrored copies): {bad[:5]}")
    return clips


def build_dataset(
    src: str | Path,
    out: str | Path,
    spec: DatasetSpec,
    *,
    src_fps: float | None = None,
    mirror: bool = True,
    fractions: SplitFractions = SplitFractions(),
    seed: int = 0,
    use_spacy: bool = True,
    overwrite: bool = False,
) -> Path:
    """Build the dataset folder ``out``; nothing is written at ``out`` unless every clip succeeded."""
    src, out = Path(src).expanduser().resolve(), Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"output folder {out} exists and is not empty; choose another --out or pass --overwrite")
    clips = find_clips(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for sub in ("new_joint_vecs", "new_joints", "texts"):
            (tmp / sub).mkdir()
        features_all, changes = [], []
        for path in clips:
            raw, file_fps = load_joints(path, spec)
            rate = src_fps or file_fps or spec.fps
            joints = resample_joints(raw, rate, spec.fps)
            annotations = read_captions(path.with_suffix(".txt"), use_spacy)
            versions = [(path.stem, joints, annotations)]
            if mirror:
                versions.append(
                    ("M" + path.stem, mirror_joints(joints, spec), [mirror_annotation(a) for a in annotations])
                )
            for name, jts, anns in versions:
                features = extract_features(jts, spec).astype(np.float32)
                if not np.all(np.isfinite(features)):
                    raise ValueError(
                        f"{path}: feature extraction produced NaN/inf (degenerate pose: coincident hips/shoulders?)"
                    )
                np.save(tmp / "new_joint_vecs" / f"{name}.npy", features)
                np.save(
                    tmp / "new_joints" / f"{name}.npy", recover_from_ric(features, spec.joints_num).astype(np.float32)
                )
                write_text_file(tmp / "texts" / f"{name}.txt", anns)
                features_all.append(features)
                if name == path.stem:
                    changes.append(
                        _changes(
                            joints, recover_from_ric(features, spec.joints_num), spec, len(raw), rate, len(features)
                        )
                    )
            logger.info("%s: %d frames", path.name, len(joints))
        mean, std = compute_mean_std(features_all, spec)
        np.save(tmp / "Mean.npy", mean)
        np.save(tmp / "Std.npy", std)
        splits = fractions.assign([p.stem for p in clips], seed)
        if mirror:
            splits = {k: sorted(v + ["M" + n for n in v]) for k, v in splits.items()}
        splits["train_val"] = sorted(splits["train"] + splits["val"])
        splits["all"] = sorted(splits["train_val"] + splits["test"])
        for name, ids in splits.items():
            (tmp / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
        wanted = ["train", "train_val", "all"] + [
            k for k, f in (("val", fractions.val), ("test", fractions.test)) if f > 0
        ]
        errors = [p for p in check_dataset(tmp, spec, wanted) if p.severity == "error"]
        if errors:
            raise ValueError(
                f"the built dataset fails its own check ({len(errors)} error(s), e.g. "
                f"{str(errors[0]).replace(str(tmp), str(out))}); nothing written at {out} (more clips, "
                "or --val/--test fractions that leave every split non-empty)"
            )
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        logger.info("%s", summarize(changes, spec))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="folder of <name>.npy/.bvh joint files with <name>.txt captions")
    parser.add_argument("--out", required=True, help="dataset folder to create (e.g. dataset/MyData)")
    parser.add_argument("--dataset_name", default="t2m", help="t2m (22 joints, 20 fps) or kit (21 joints)")
    parser.add_argument("--src_fps", type=float, default=None, help="frame rate of the inputs (default: target)")
    parser.add_argument("--no_mirror", action="store_true", help="do not add mirrored M<id> copies")
    parser.add_argument("--val", type=float, default=0.1, help="fraction of clips in val.txt")
    parser.add_argument("--test", type=float, default=0.2, help="fraction of clips in test.txt")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--no_spacy", action="store_true", help="use the fallback POS tagger even if spaCy exists")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out after success")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = build_dataset(
        args.src,
        args.out,
        get_dataset_spec(args.dataset_name),
        src_fps=args.src_fps,
        mirror=not args.no_mirror,
        fractions=SplitFractions(args.val, args.test),
        seed=args.seed,
        use_spacy=not args.no_spacy,
        overwrite=args.overwrite,
    )
    logger.info(
        "dataset written to %s (check: python -m prepare.check_dataset %s --dataset_name %s)",
        out,
        out,
        args.dataset_name,
    )


if __name__ == "__main__":
    run_cli(main)
