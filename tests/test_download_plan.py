"""The download plan lists everything the official models need, CLIP ViT-B/32 included, and where it goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from prepare import download


def test_dry_run_lists_every_file_the_official_models_need(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        download.main(
            [
                "--what",
                "all",
                "--dataset",
                "t2m",
                "--dry_run",
                "--dest",
                str(tmp_path),
                "--clip_dir",
                str(tmp_path / "clip"),
            ]
        )
        == 0
    )
    plan = capsys.readouterr().out
    for archive in ("glove.zip", "humanml3d_evaluator.zip", "humanml3d_models.zip"):
        assert f"would fetch {archive}" in plan
    clip = next(line for line in plan.splitlines() if "ViT-B-32.pt" in line)
    assert download.CLIP_URL in clip and f"-> {tmp_path / 'clip' / 'ViT-B-32.pt'}" in clip
    assert "--text_encoder_path" in clip and "tokenizer vocabulary" in clip
    assert "manual   dataset t2m" in plan and not list(tmp_path.iterdir())  # a plan writes nothing
    download.main(["--what", "models", "--dataset", "t2m", "--dry_run", "--dest", str(tmp_path)])
    default = next(line for line in capsys.readouterr().out.splitlines() if "ViT-B-32.pt" in line)
    assert str(Path("~/.cache/clip/ViT-B-32.pt").expanduser()) in default  # 'models' includes CLIP


def test_clip_fetch_is_verified_and_failures_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_fetch(url: str, out: Path, timeout: float) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"not the CLIP weights")
        return out

    monkeypatch.setattr(download, "fetch", fake_fetch)
    failures = download.clip_plan(tmp_path, force=False, dry_run=False, timeout=1)
    assert "does not match its SHA-256" in failures[0] and not (tmp_path / "ViT-B-32.pt").exists()
    monkeypatch.undo()
    monkeypatch.setattr(download, "CLIP_URL", "http://127.0.0.1:9/ViT-B-32.pt")
    failures = download.clip_plan(tmp_path, force=False, dry_run=False, timeout=2)
    assert failures[0].startswith("cannot fetch ViT-B-32.pt") and f"to {tmp_path / 'ViT-B-32.pt'}" in failures[0]
    (tmp_path / "ViT-B-32.pt").write_bytes(b"x")
    assert download.clip_plan(tmp_path, force=False, dry_run=True, timeout=1) == []  # present: ok, untouched
    assert (tmp_path / "ViT-B-32.pt").read_bytes() == b"x"
