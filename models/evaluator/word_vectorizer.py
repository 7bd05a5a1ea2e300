"""GloVe word vectors + part-of-speech one-hots for the evaluator's text encoder (docs/evaluation.md#word-vectors).

Files (from the official ``glove.zip``, unzipped at the repository root as ``glove/``):
``our_vab_data.npy`` (N, 300) vectors, ``our_vab_words.pkl`` (list of N words), ``our_vab_idx.pkl``
(word -> row). Tokens are ``word/POS`` strings as in HumanML3D/KIT-ML text files.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from data.text import pad_tokens, split_token
from utils.npy import load_npy

# docs/evaluation.md#word-vectors: 15 POS classes, in this order.
POS_ENUMERATOR: dict[str, int] = {
    "VERB": 0,
    "NOUN": 1,
    "DET": 2,
    "ADP": 3,
    "NUM": 4,
    "AUX": 5,
    "PRON": 6,
    "ADJ": 7,
    "ADV": 8,
    "Loc_VIP": 9,
    "Body_VIP": 10,
    "Obj_VIP": 11,
    "Act_VIP": 12,
    "Desc_VIP": 13,
    "OTHER": 14,
}

# docs/evaluation.md#word-vectors: words whose POS class is replaced by a "very important" category; checked in this order.
VIP_WORDS: dict[str, frozenset[str]] = {
    "Loc_VIP": frozenset(
        {
            "left",
            "right",
            "clockwise",
            "counterclockwise",
            "anticlockwise",
            "forward",
            "back",
            "backward",
            "up",
            "down",
            "straight",
            "curve",
        }
    ),
    "Body_VIP": frozenset(
        {"arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee", "shoulder", "thigh"}
    ),
    "Obj_VIP": frozenset(
        {"stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball", "basketball"}
    ),
    "Act_VIP": frozenset(
        {
            "walk",
            "run",
            "swing",
            "pick",
            "bring",
            "kick",
            "put",
            "squat",
            "throw",
            "hop",
            "dance",
            "jump",
            "turn",
            "stumble",
            "stop",
            "sit",
            "lift",
            "lower",
            "raise",
            "wash",
            "stand",
            "kneel",
            "stroll",
            "rub",
            "bend",
            "balance",
            "flap",
            "jog",
            "shuffle",
            "lean",
            "rotate",
            "spin",
            "spread",
            "climb",
        }
    ),
    "Desc_VIP": frozenset(
        {
            "slowly",
            "carefully",
            "fast",
            "careful",
            "slow",
            "quickly",
            "happy",
            "angry",
            "sad",
            "happily",
            "angrily",
            "sadly",
        }
    ),
}

GLOVE_HINT = (
    "get glove.zip (linked from the MoMask/T2M READMEs) and unzip it at the repository root so that "
    "glove/ holds our_vab_data.npy, our_vab_words.pkl and our_vab_idx.pkl, or pass --glove_dir"
)


MAX_PICKLE_BYTES = 256 * 2**20


class _PlainUnpickler(pickle.Unpickler):
    """Admits only what pickle builds without importing anything (str, int, list, dict, ...): no class,
    function or module is ever looked up, so a crafted file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"it refers to {module[:60]}.{name[:60]}, which is not a plain Python value")


def load_plain_pickle(path: Path, expected: str) -> Any:
    """Unpickle a file that should hold plain builtin values only; anything else is a ``ValueError``."""
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:
        raise ValueError(f"{path}: {size} bytes is too large for {expected}")
    try:
        with open(path, "rb") as f:
            return _PlainUnpickler(f).load()
    except Exception as exc:  # noqa: BLE001 - the unpickler reports bad input with many types
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else exc.__class__.__name__
        raise ValueError(f"{path}: not a pickle of {expected} ({first}); re-extract it from glove.zip") from None


def _describe(value: Any) -> str:
    if isinstance(value, (list, dict)):
        items = list(value.items() if isinstance(value, dict) else value)[:1]
        return f"a {type(value).__name__} of {len(value)} item(s)" + (f", e.g. {str(items[0])[:40]!r}" if items else "")
    return f"a {type(value).__name__}"


def pos_onehot(pos: str) -> np.ndarray:
    """(15,) float32 one-hot of a POS tag; tags outside the enumerator map to OTHER."""
    out = np.zeros(len(POS_ENUMERATOR), dtype=np.float32)
    out[POS_ENUMERATOR.get(pos, POS_ENUMERATOR["OTHER"])] = 1.0
    return out


class WordVectorizer:
    """``vectorizer["word/POS"] -> (vec (300,) float32, pos_onehot (15,) float32)``."""

    def __init__(self, glove_dir: str | Path, prefix: str = "our_vab") -> None:
        glove_dir = Path(glove_dir).expanduser().resolve()
        paths = [glove_dir / f"{prefix}_{suffix}" for suffix in ("data.npy", "words.pkl", "idx.pkl")]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"GloVe file(s) missing: {missing}; {GLOVE_HINT}")
        vectors = load_npy(paths[0], "GloVe vectors", ndim=2)
        words = load_plain_pickle(paths[1], "a list of words")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError(f"{paths[1]}: expected a list of words (str), found {_describe(words)}")
        word2idx = load_plain_pickle(paths[2], "a dict word -> row")
        if not isinstance(word2idx, dict) or not all(
            isinstance(w, str) and isinstance(i, int) and not isinstance(i, bool) for w, i in word2idx.items()
        ):
            raise ValueError(f"{paths[2]}: expected a dict word (str) -> row (int), found {_describe(word2idx)}")
        rows = len(vectors)
        bad = [w for w in words if not 0 <= word2idx.get(w, -1) < rows]
        if bad:
            raise ValueError(
                f"{paths[2]}: {len(bad)} word(s) of {paths[1].name} have no row in {paths[0].name} "
                f"({rows} rows), e.g. {bad[0][:40]!r}: the three GloVe files do not belong together"
            )
        self.word2vec: dict[str, np.ndarray] = {w: vectors[word2idx[w]] for w in words}
        if "unk" not in self.word2vec:
            raise ValueError(f"{paths[1]} has no 'unk' entry (needed for out-of-vocabulary words)")
        self.dim = vectors.shape[1]

    def __len__(self) -> int:
        return len(self.word2vec)

    def __getitem__(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        word, pos = split_token(token)
        vec = self.word2vec.get(word)
        if vec is None:
            return self.word2vec["unk"], pos_onehot("OTHER")
        vip = next((cat for cat, members in VIP_WORDS.items() if word in members), None)
        return vec, pos_onehot(vip or pos)

    def build_sentence(self, tokens: list[str], max_text_len: int = 20) -> tuple[np.ndarray, np.ndarray, int]:
        """Token list -> (word_embs (L+2, 300), pos_onehot (L+2, 15), sent_len), L = ``max_text_len``.

        ``sos`` + tokens + ``eos``, padded with ``unk``; sentences longer than L keep their first L tokens.
        """
        padded, sent_len = pad_tokens(tokens, max_text_len)
        vecs, pos = zip(*(self[t] for t in padded))
        return np.stack(vecs), np.stack(pos), sent_len
