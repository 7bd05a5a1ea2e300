"""Release checkpoints: optimizer state stripped, weights identical, still loadable by the model loaders."""

from __future__ import annotations

from pathlib import Path

import torch
from tiny_runs import MASK_NAME, make_tiny_runs

from models.transformer.build import load_mask_transformer
from prepare.strip_checkpoint import main
from utils.checkpoint import load_checkpoint, save_checkpoint


def test_strip_keeps_weights_and_drops_training_state(tmp_path: Path) -> None:
    root = make_tiny_runs(tmp_path / "ck")
    path = root / "t2m" / MASK_NAME / "model" / "latest.tar"
    state = load_checkpoint(path)
    state.update(
        {
            "opt_t2m_transformer": {"state": {}, "param_groups": []},
            "scheduler": {"last_epoch": 3},
            "rng": {"torch": torch.get_rng_state()},
            "it_in_epoch": 2,
        }
    )
    save_checkpoint(path, state)
    main([str(path), "--out", str(tmp_path / "release.tar")])
    out = load_checkpoint(tmp_path / "release.tar")
    assert set(out) == {"t2m_transformer", "ep", "total_it", "model_args"}
    assert all(torch.equal(out["t2m_transformer"][k], v) for k, v in state["t2m_transformer"].items())
    main([str(path)])  # in place
    assert set(load_checkpoint(path)) == set(out)
    load_mask_transformer(root / "t2m" / MASK_NAME)
