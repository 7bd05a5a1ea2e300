"""Evaluator networks, loader and word vectorizer (models/evaluator)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from models.evaluator.modules import MotionEncoderBiGRUCo, MovementConvEncoder, TextEncoderBiGRUCo
from models.evaluator.word_vectorizer import POS_ENUMERATOR, WordVectorizer
from models.evaluator.wrapper import EvaluatorPaths, T2MEvaluator
from tests.evaluator_helpers import (
    WORDS,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    write_small_evaluator,
    write_tiny_glove,
)
from utils.checkpoint import CheckpointError, save_checkpoint
from utils.skeleton import get_dataset_spec

OFFICIAL_OPT = """------------ Options -------------
batch_size: 32
checkpoints_dir: ./checkpoints
dataset_name: {ds}
dim_movement_dec_hidden: 512
dim_movement_enc_hidden: 512
dim_movement_latent: 512
dim_text_hidden: 512
gpu_id: 0
is_train: True
max_text_len: 20
name: Comp_v6_KLD005
unit_length: 4
-------------- End ----------------
"""


def _write_official_evaluator(root, ds: str, seed: int) -> dict:
    """Official-format evaluator files with random weights: finest.tar holds only the three state dicts + epoch
    (no model_args), opt.txt in the reference layout, meta stats."""
    dim = get_dataset_spec(ds).dim_pose
    torch.manual_seed(seed)
    nets = {
        "movement_encoder": MovementConvEncoder(input_size=dim - 4, hidden_size=512, output_size=512),
        "text_encoder": TextEncoderBiGRUCo(word_size=300, pos_size=15, hidden_size=512, output_size=512),
        "motion_encoder": MotionEncoderBiGRUCo(input_size=512, hidden_size=1024, output_size=512),
    }
    paths = EvaluatorPaths.for_dataset(root, ds)
    save_checkpoint(paths.weights, {k: m.state_dict() for k, m in nets.items()} | {"epoch": 7, "opt_encoder": {}})
    paths.mean_file.parent.mkdir(parents=True)
    paths.opt_file.write_text(OFFICIAL_OPT.format(ds=ds))
    rng = np.random.default_rng(seed)
    np.save(paths.mean_file, rng.normal(size=dim).astype(np.float32))
    np.save(paths.std_file, rng.uniform(0.5, 2, size=dim).astype(np.float32))
    return nets


def _official_procedure(nets: dict, word, pos, sent_len, motions, m_lens):
    """Reference order of operations: sort by motion length (desc), sorted packing, texts reordered alike."""
    order = np.argsort(m_lens.numpy(), kind="stable")[::-1].copy()
    mov = nets["movement_encoder"](motions[order][..., :-4])
    me = nets["motion_encoder"]
    x = me.input_emb(mov)
    packed = pack_padded_sequence(x, (m_lens[order] // 4).tolist(), batch_first=True, enforce_sorted=True)
    _, last = me.gru(packed, me.hidden.repeat(1, len(order), 1))
    motion_emb = me.output_net(torch.cat([last[0], last[1]], -1))
    te = nets["text_encoder"]
    text_order = np.argsort(sent_len.numpy(), kind="stable")[::-1].copy()  # the collate sorts texts
    xt = te.input_emb(word[text_order] + te.pos_emb(pos[text_order]))
    packed = pack_padded_sequence(xt, sent_len[text_order].tolist(), batch_first=True, enforce_sorted=True)
    _, last = te.gru(packed, te.hidden.repeat(1, len(order), 1))
    text_emb = te.output_net(torch.cat([last[0], last[1]], -1))
    inv = np.argsort(text_order)
    return text_emb[inv][order], motion_emb, order


@pytest.mark.parametrize("ds", ["t2m", "kit"])
def test_official_format_checkpoint_loads_strictly_and_matches_reference_procedure(tmp_path, ds: str) -> None:
    nets = _write_official_evaluator(tmp_path, ds, seed=1)
    for m in nets.values():
        m.eval()
    evaluator = T2MEvaluator.from_checkpoints(tmp_path, ds, device="cpu")
    dim = get_dataset_spec(ds).dim_pose
    assert evaluator.movement_encoder.main[0].weight.shape == (512, dim - 4, 4)
    g = torch.Generator().manual_seed(0)
    m_lens = torch.tensor([64, 196, 40, 120])
    motions = torch.randn(4, 196, dim, generator=g)
    word, pos = torch.randn(4, 22, 300, generator=g), torch.zeros(4, 22, 15)
    pos[..., 14] = 1
    sent_len = torch.tensor([9, 22, 5, 12])
    text_emb, motion_emb = evaluator.get_co_embeddings(word, pos, sent_len, motions, m_lens)
    assert text_emb.shape == motion_emb.shape == (4, 512)
    with torch.no_grad():
        ref_text, ref_motion, order = _official_procedure(nets, word, pos, sent_len, motions, m_lens)
    # ours are in input order; the reference's are sorted by motion length
    torch.testing.assert_close(motion_emb[order], ref_motion, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(text_emb[order], ref_text, atol=1e-4, rtol=1e-4)


def test_kit_weights_refused_for_t2m(tmp_path) -> None:
    _write_official_evaluator(tmp_path, "kit", seed=2)
    t2m = EvaluatorPaths.for_dataset(tmp_path, "t2m")
    kit = EvaluatorPaths.for_dataset(tmp_path, "kit")
    for src, dst in ((kit.weights, t2m.weights), (kit.opt_file, t2m.opt_file)):
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    t2m.mean_file.parent.mkdir(parents=True)
    np.save(t2m.mean_file, np.zeros(263, np.float32))
    np.save(t2m.std_file, np.ones(263, np.float32))
    with pytest.raises(CheckpointError, match=r"movement_encoder.*main\.0\.weight"):
        T2MEvaluator.from_checkpoints(tmp_path, "t2m")


def test_missing_files_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        T2MEvaluator.from_checkpoints(tmp_path, "t2m")
    msg = str(info.value)
    assert str(tmp_path / "t2m" / "text_mot_match" / "model" / "finest.tar") in msg
    assert "Comp_v6_KLD005" in msg and "humanml3d_evaluator.zip" in msg


def test_our_format_round_trip_with_model_args(tmp_path) -> None:
    saved = write_small_evaluator(tmp_path, "kit", seed=4)
    loaded = T2MEvaluator.from_checkpoints(tmp_path, "kit")
    assert loaded.model_args == saved.model_args
    for a, b in zip(saved.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(loaded.mean, saved.mean)
    raw = torch.randn(2, 8, 251)
    torch.testing.assert_close(loaded.denormalize(loaded.normalize(raw)), raw, atol=1e-5, rtol=1e-5)


def test_packing_independent_of_batch_companions() -> None:
    """A sample's embedding must not depend on the other samples or on the batch order (unsorted lengths)."""
    torch.manual_seed(0)
    enc = MotionEncoderBiGRUCo(input_size=8, hidden_size=16, output_size=4).eval()
    text = TextEncoderBiGRUCo(word_size=6, pos_size=15, hidden_size=8, output_size=4).eval()
    x = torch.randn(5, 12, 8)
    lens = torch.tensor([3, 12, 7, 1, 9])
    w, p = torch.randn(5, 10, 6), torch.randn(5, 10, 15)
    tl = torch.tensor([4, 10, 2, 6, 9])
    with torch.no_grad():
        batch_m, batch_t = enc(x, lens), text(w, p, tl)
        for i in range(5):
            # alone, and with its padding truncated: the padded tail must be ignored
            torch.testing.assert_close(
                enc(x[i : i + 1, : lens[i]], lens[i : i + 1]), batch_m[i : i + 1], atol=1e-6, rtol=1e-5
            )
            torch.testing.assert_close(
                text(w[i : i + 1], p[i : i + 1], tl[i : i + 1]), batch_t[i : i + 1], atol=1e-6, rtol=1e-5
            )
        perm = torch.tensor([2, 4, 0, 3, 1])
        torch.testing.assert_close(enc(x[perm], lens[perm]), batch_m[perm], atol=1e-6, rtol=1e-5)
        garbage = x.clone()
        garbage[0, 3:] = 1e3
        torch.testing.assert_close(enc(garbage, lens)[0], batch_m[0], atol=1e-6, rtol=1e-5)


def test_movement_encoder_shapes() -> None:
    enc = MovementConvEncoder(input_size=259, hidden_size=32, output_size=16)
    assert enc(torch.randn(2, 196, 259)).shape == (2, 49, 16)


# ---- word vectorizer --------------------------------------------------------------------------------------------
@pytest.fixture()
def vectorizer(tmp_path) -> tuple[WordVectorizer, np.ndarray]:
    vectors = write_tiny_glove(tmp_path / "glove")
    return WordVectorizer(tmp_path / "glove"), vectors


def _pos(onehot: np.ndarray) -> str:
    (idx,) = np.flatnonzero(onehot)
    return next(k for k, v in POS_ENUMERATOR.items() if v == idx)


def test_vectorizer_lookup_rules(vectorizer) -> None:
    vec, vectors = vectorizer
    idx = {w: i for i, w in enumerate(WORDS)}
    v, p = vec["person/NOUN"]
    np.testing.assert_array_equal(v, vectors[idx["person"]])
    assert v.dtype == np.float32 and p.dtype == np.float32 and p.shape == (15,) and p.sum() == 1
    assert _pos(p) == "NOUN"
    assert _pos(vec["walk/VERB"][1]) == "Act_VIP"  # VIP list wins over the tagger's POS
    assert _pos(vec["left/ADJ"][1]) == "Loc_VIP"
    assert _pos(vec["hand/NOUN"][1]) == "Body_VIP"
    assert _pos(vec["chair/NOUN"][1]) == "Obj_VIP"
    assert _pos(vec["slowly/ADV"][1]) == "Desc_VIP"
    assert _pos(vec["the/PUNCT"][1]) == "OTHER"  # tag outside the enumerator
    v, p = vec["zebra/NOUN"]  # out of vocabulary -> unk / OTHER
    np.testing.assert_array_equal(v, vectors[idx["unk"]])
    assert _pos(p) == "OTHER"


def test_build_sentence_short_and_long(vectorizer) -> None:
    vec, vectors = vectorizer
    idx = {w: i for i, w in enumerate(WORDS)}
    tokens = ["a/DET", "person/NOUN", "walk/VERB", "forward/ADV"]
    w, p, n = vec.build_sentence(tokens)
    assert w.shape == (22, 300) and p.shape == (22, 15) and n == 6
    np.testing.assert_array_equal(w[0], vectors[idx["sos"]])
    np.testing.assert_array_equal(w[5], vectors[idx["eos"]])
    np.testing.assert_array_equal(w[6:], np.repeat(vectors[idx["unk"]][None], 16, axis=0))
    assert _pos(p[3]) == "Act_VIP" and _pos(p[0]) == "OTHER"
    long = ["person/NOUN"] * 25
    w, p, n = vec.build_sentence(long)
    assert n == 22 and w.shape == (22, 300)
    np.testing.assert_array_equal(w[21], vectors[idx["eos"]])


def test_vectorizer_missing_file_named(tmp_path) -> None:
    write_tiny_glove(tmp_path / "glove")
    (tmp_path / "glove" / "our_vab_idx.pkl").unlink()
    with pytest.raises(FileNotFoundError, match=r"our_vab_idx\.pkl.*glove\.zip"):
        WordVectorizer(tmp_path / "glove")
