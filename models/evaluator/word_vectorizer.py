"""GloVe word vectors + part-of-speech one-hots for the evaluator's text encoder (spec §5.2).

Files (from the official ``glove.zip``, unzipped at the repository root as ``glove/``):
``our_vab_data.npy`` (N, 300) vectors, ``our_vab_words.pkl`` (list of N words), ``our_vab_idx.pkl``
(word -> row). Tokens are ``word/POS`` strings as in HumanML3D/KIT-ML text files.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from data.text import pad_tokens, split_token

# Spec §5.2: 15 POS classes, in this order.
POS_ENUMERATOR: dict[str, int] = {
    "VERB": 0, "NOUN": 1, "DET": 2, "ADP": 3, "NUM": 4, "AUX": 5, "PRON": 6, "ADJ": 7, "ADV": 8,
    "Loc_VIP": 9, "Body_VIP": 10, "Obj_VIP": 11, "Act_VIP": 12, "Desc_VIP": 13, "OTHER": 14,
}

# Spec §5.2: words whose POS class is replaced by a "very important" category; checked in this order.
VIP_WORDS: dict[str, frozenset[str]] = {
    "Loc_VIP": frozenset({"left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward", "back",
                          "backward", "up", "down", "straight", "curve"}),
    "Body_VIP": frozenset({"arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee",
                           "shoulder", "thigh"}),
    "Obj_VIP": frozenset({"stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball",
                          "basketball"}),
    "Act_VIP": frozenset({"walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop", "dance",
                          "jump", "turn", "stumble", "stop", "sit", "lift", "lower", "raise", "wash", "stand",
                          "kneel", "stroll", "rub", "bend", "balance", "flap", "jog", "shuffle", "lean", "rotate",
                          "spin", "spread", "climb"}),
    "Desc_VIP": frozenset({"slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry", "sad",
                           "happily", "angrily", "sadly"}),
}

GLOVE_HINT = ("get glove.zip (linked from the MoMask/T2M READMEs) and unzip it at the repository root so that "
              "glove/ holds our_vab_data.npy, our_vab_words.pkl and our_vab_idx.pkl, or pass --glove_dir")


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
        vectors = np.load(paths[0]).astype(np.float32)
        with open(paths[1], "rb") as f:
            words = pickle.load(f)
        with open(paths[2], "rb") as f:
            word2idx = pickle.load(f)
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
