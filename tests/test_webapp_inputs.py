"""Web demo boundaries: the janitor deletes only its own request folders; the page's handlers turn the issue-16
bad values and uploads into readable messages (page words, no CLI flags, no server paths) and keep serving."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tiny_runs import MASK_NAME, RES_NAME, make_tiny_runs

from data.synthetic import synthetic_joints
from models.pipeline import MoMaskPipeline
from utils.skeleton import get_dataset_spec
from visualization.bvh import format_bvh
from visualization.joints2bvh import joints_to_bvh
from visualization.webapp import REQUEST_MARKER, DemoService

SPEC = get_dataset_spec("t2m")
OLD = time.time() - 10 * 3600


def _age(path: Path) -> None:
    os.utime(path, (OLD, OLD), follow_symlinks=False)


def test_janitor_deletes_only_its_own_request_folders(tmp_path: Path) -> None:
    service = DemoService({"stub": SimpleNamespace(spec=SPEC)}, tmp_path / "work")
    work = service.workdir
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / REQUEST_MARKER).write_text("")
    (outside / "data.txt").write_text("keep me")
    ours = work / ("a" * 32)  # uuid-hex name + marker: a request folder
    ours.mkdir()
    (ours / REQUEST_MARKER).write_text("")
    decoys = {
        "x" * 32: None,  # 32 characters, not hex (the old rule deleted it)
        "b" * 32: "no marker",  # hex name, but not made by the server
        "c" * 31: REQUEST_MARKER,  # marker, wrong name length
        "d" * 32 + "e": REQUEST_MARKER,
    }
    for name, content in decoys.items():
        (work / name).mkdir()
        if content == REQUEST_MARKER:
            (work / name / REQUEST_MARKER).write_text("")
        elif content:
            (work / name / "file.txt").write_text(content)
    (work / ("f" * 32)).symlink_to(outside, target_is_directory=True)  # a link to elsewhere, with a marker there
    (work / ("0" * 32)).write_text("a file, not a folder")
    marker_dir = work / ("1" * 32)  # the marker is a folder, not the file the server writes
    (marker_dir / REQUEST_MARKER).mkdir(parents=True)
    young = work / ("2" * 32)
    young.mkdir()
    (young / REQUEST_MARKER).write_text("")
    for path in work.iterdir():
        if path != young:
            _age(path)
    removed = service.sweep()
    assert removed == [ours] and not ours.exists()
    assert sorted(p.name for p in work.iterdir()) == sorted([*decoys, "f" * 32, "0" * 32, "1" * 32, "2" * 32])
    assert (outside / "data.txt").read_text() == "keep me" and (outside / REQUEST_MARKER).exists()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _uploads() -> dict[str, bytes]:
    joints = synthetic_joints(SPEC, 40, np.random.default_rng(0))
    bvh = format_bvh(joints_to_bvh(joints, SPEC))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**10, 263)})
    npz = io.BytesIO()
    np.savez(npz, a=np.zeros(3))
    return {
        "empty.npy": b"",
        "archive.npy": npz.getvalue(),
        "huge.npy": header.getvalue() + b"\0" * 64,
        "zeros.npy": _npy(np.zeros((40, 22, 3), np.float32)),
        "complex.npy": _npy(joints.astype(np.complex64)),
        "big.npy": _npy(np.full((40, 22, 3), 1e30, np.float32)),
        "names.npy": _npy(np.array(["a", "b"])),
        "scalar.npy": _npy(np.float32(1)),
        "loop.bvh": bvh.replace("CHANNELS 3", "CHANNELS -3", 1).encode(),
        "abc.bvh": bvh.replace("OFFSET ", "OFFSET abc ", 1).encode(),
        "flat.bvh": _flat_bvh(joints),
        "binary.bvh": b"\xff\xfe\x00HIERARCHY",
    }


def _flat_bvh(joints: np.ndarray) -> bytes:
    from dataclasses import replace

    motion = joints_to_bvh(joints, SPEC)
    return format_bvh(replace(motion, parents=(-1,) + (0,) * (len(motion.names) - 1))).encode()


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> MoMaskPipeline:
    runs = make_tiny_runs(tmp_path_factory.mktemp("checkpoints"), "t2m")
    return MoMaskPipeline.from_checkpoints(runs, "t2m", MASK_NAME, RES_NAME, device="cpu")


def test_page_refuses_bad_values_and_uploads_readably_and_keeps_serving(pipe: MoMaskPipeline, tmp_path: Path) -> None:
    gr = pytest.importorskip("gradio")
    from visualization.webapp import make_handlers

    service = DemoService({"tiny": pipe}, tmp_path / "work", video_size=64)
    on_generate, on_edit = make_handlers(service)
    source = tmp_path / "walk.npy"
    np.save(source, np.zeros((80, 263), np.float32))
    good = ("a person walks", 40, False, 1, 18, 4, 5, 1)
    bad_generate = {
        "prompt": ("", *good[1:]),
        "length": (good[0], 1e308, *good[2:]),
        "seed": (*good[:3], "abc", *good[4:]),
        "steps": (*good[:4], float("nan"), *good[5:]),
        "guidance": (*good[:5], "9" * 5000, *good[6:]),
        "temperature": (*good[:7], -1),
    }
    messages = []
    for field, values in bad_generate.items():
        with pytest.raises(gr.Error) as info:
            on_generate("tiny", *values)
        messages.append((field, info.value.message))
    for start, end, field in (
        (0, 1e308, "end (s)"),
        (1e308, 0, "start (s)"),
        ("0,9" + "9" * 400, 1, "start (s)"),
        (-1, 2, "start (s)"),
        (3, 2, "edit span"),
    ):
        with pytest.raises(gr.Error) as info:
            on_edit("tiny", str(source), "a person jumps", start, end, 1, 18, 4, 2, 1)
        messages.append((field, info.value.message))
    for name, content in _uploads().items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(gr.Error) as info:
            on_edit("tiny", str(path), "a person jumps", 0.5, 1.0, 1, 18, 4, 2, 1)
        messages.append((name, info.value.message))
    for what, message in messages:
        assert what in message, (what, message)
        assert "--" not in message and str(tmp_path) not in message and "\n" not in message, (what, message)
        assert len(message) < 400, message
    assert [p for p in service.workdir.iterdir()] == []  # nothing written for refused requests
    video, gif, status, bvh, npy = on_generate("tiny", *good)  # and the page still serves
    assert Path(bvh).is_file() and status.startswith("40 frames")
