"""Every example of issue 16 as a real CLI run: exit 2, one ``error:`` line naming the file or flag, no traceback,
and a pre-existing output file byte-for-byte unchanged.

Four run in the default suite (one per CLI family); the rest are ``slow`` (each is a subprocess start of torch):
``python -m pytest tests/test_bad_inputs_cli.py -m slow``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import MASK_NAME, VQ_NAME, make_tiny_runs

from data.synthetic import make_tiny_dataset, synthetic_joints
from utils.skeleton import get_dataset_spec
from visualization.bvh import format_bvh
from visualization.joints2bvh import joints_to_bvh

REPO = Path(__file__).resolve().parents[1]
SPEC = get_dataset_spec("t2m")


@pytest.fixture(scope="module")
def template_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_runs(tmp_path_factory.mktemp("runs"), "t2m")


def _motion_bvh(parents: tuple[int, ...] | None = None) -> str:
    motion = joints_to_bvh(synthetic_joints(SPEC, 20, np.random.default_rng(0)), SPEC)
    if parents is not None:
        from dataclasses import replace

        motion = replace(motion, parents=parents)
    return format_bvh(motion)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _huge_header() -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**10, 263)})
    return buf.getvalue() + b"\0" * 4096


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, joints=np.zeros((10, 22, 3)))
    return buf.getvalue()


JOINTS = synthetic_joints(SPEC, 30, np.random.default_rng(1))
# name -> (file content, output extension). Each is `python -m visualization.convert IN OUT`.
CONVERT = {
    "empty_npy": (b"", ".bvh"),
    "npz_as_npy": (_npz(), ".bvh"),
    "1e10_frames": (_huge_header(), ".npy"),
    "all_zero_joints": (_npy(np.zeros((30, 22, 3), np.float32)), ".bvh"),
    "collapsed_joints": (_npy(np.broadcast_to(JOINTS[:, :1], JOINTS.shape).copy()), ".bvh"),
    "1e30_values": (_npy(np.full((30, 22, 3), 1e30, np.float32)), ".npy"),
    "complex": (_npy(JOINTS.astype(np.complex64)), ".bvh"),
    "timedelta": (_npy(np.zeros((30, 22, 3), "m8[s]")), ".bvh"),
    "negative_channels_bvh": (_motion_bvh().replace("CHANNELS 3", "CHANNELS -3", 1).encode(), ".npy"),
    "minus_2_channels_bvh": (_motion_bvh().replace("CHANNELS 3", "CHANNELS -2", 1).encode(), ".npy"),
    "abc_in_bvh": (_motion_bvh().replace("OFFSET ", "OFFSET abc ", 2).encode(), ".npy"),
    "wrong_hierarchy_bvh": (_motion_bvh((-1,) + (0,) * 21).encode(), ".npy"),
}
DEFAULT = {"empty_npy", "negative_channels_bvh", "text_as_latest_tar", "garbage_glove_words"}


def _run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder``: a refused run must leave it exactly so."""
    return {str(p.relative_to(folder)): _hash(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_clean_refusal(proc: subprocess.CompletedProcess, names: tuple[str, ...]) -> None:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(errors) == 1 and len(errors[0]) < 1000, proc.stderr[-2000:]
    assert any(n in errors[0] for n in names), errors[0]


def _marks(name: str) -> list:
    return [] if name in DEFAULT else [pytest.mark.slow]


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in CONVERT])
def test_convert_refuses(name: str, tmp_path: Path) -> None:
    content, out_ext = CONVERT[name]
    src = tmp_path / (f"{name}.bvh" if name.endswith("_bvh") else f"{name}.npy")
    src.write_bytes(content)
    out = tmp_path / f"previous{out_ext}"
    out.write_bytes(b"an earlier result")
    before = _hash(out)
    proc = _run(["-m", "visualization.convert", str(src), str(out)], timeout=120)
    _assert_clean_refusal(proc, (src.name,))
    assert _hash(out) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, out.name])


def _no_model_args(run: Path, file: str) -> None:
    path = run / "model" / file
    state = torch.load(path, weights_only=True)
    state.pop("model_args")
    torch.save(state, path)


def _set_opt(path: Path, key: str, value: str) -> None:
    lines = [f"{key}: {value}" if line.startswith(f"{key}: ") else line for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")


def _save(path: Path, transform: Callable[[dict], dict]) -> None:
    torch.save(transform(torch.load(path, weights_only=True)), path)


# name -> (mutation of the copied run folders <root>/t2m/..., what the error line must name)
RUNS: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "text_as_latest_tar": (
        lambda t: (t / MASK_NAME / "model/latest.tar").write_text("not a checkpoint\n" * 20),
        ("latest.tar",),
    ),
    "random_bytes_as_latest_tar": (
        lambda t: (t / MASK_NAME / "model/latest.tar").write_bytes(os.urandom(3000)),
        ("latest.tar",),
    ),
    "model_entry_wrong_type": (
        lambda t: _save(t / MASK_NAME / "model/latest.tar", lambda s: {**s, "t2m_transformer": [1, 2, 3]}),
        ("latest.tar",),
    ),
    "model_args_wrong_values": (
        lambda t: _save(
            t / MASK_NAME / "model/latest.tar",
            lambda s: {**s, "model_args": {**s["model_args"], "num_heads": -2, "latent_dim": 10**12}},
        ),
        ("latest.tar",),
    ),
    "model_args_wrong_type": (
        lambda t: _save(t / MASK_NAME / "model/latest.tar", lambda s: {**s, "model_args": ["not", "a", "dict"]}),
        ("latest.tar",),
    ),
    "nb_code_1e9_in_model_args": (
        lambda t: _save(
            t / VQ_NAME / "model/net_best_fid.tar", lambda s: {**s, "model_args": {**s["model_args"], "nb_code": 10**9}}
        ),
        ("net_best_fid.tar",),
    ),
    "nb_code_1e400": (
        lambda t: (
            _no_model_args(t / MASK_NAME, "latest.tar"),
            _set_opt(t / VQ_NAME / "opt.txt", "nb_code", "1.0e400"),
        ),
        ("opt.txt",),
    ),
    "nb_code_negative": (
        lambda t: (_no_model_args(t / VQ_NAME, "net_best_fid.tar"), _set_opt(t / VQ_NAME / "opt.txt", "nb_code", "-4")),
        ("opt.txt",),
    ),
    "milestones_none": (lambda t: _set_opt(t / MASK_NAME / "opt.txt", "milestones", "[None]"), ("opt.txt",)),
    "huge_int_digits": (lambda t: _set_opt(t / MASK_NAME / "opt.txt", "latent_dim", "9" * 5000), ("opt.txt",)),
    "5000_char_vq_name": (lambda t: _set_opt(t / MASK_NAME / "opt.txt", "vq_name", "v" * 5000), ("opt.txt",)),
    "opt_txt_not_utf8": (lambda t: (t / MASK_NAME / "opt.txt").write_bytes(b"\xff\xfe\x00name: x\n"), ("opt.txt",)),
    "0d_vq_mean": (lambda t: np.save(t / VQ_NAME / "meta/mean.npy", np.float32(0)), ("mean.npy",)),
    "nan_in_vq_std": (lambda t: np.save(t / VQ_NAME / "meta/std.npy", np.full(263, np.nan, np.float32)), ("std.npy",)),
    "zero_vq_std": (lambda t: np.save(t / VQ_NAME / "meta/std.npy", np.zeros(263, np.float32)), ("std.npy",)),
    "inf_in_vq_mean": (
        lambda t: np.save(t / VQ_NAME / "meta/mean.npy", np.full(263, np.inf, np.float32)),
        ("mean.npy",),
    ),
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in RUNS])
def test_gen_t2m_refuses_broken_runs(name: str, template_runs: Path, tmp_path: Path) -> None:
    runs = tmp_path / "checkpoints"
    shutil.copytree(template_runs, runs)
    mutate, names = RUNS[name]
    mutate(runs / "t2m")
    out = tmp_path / "out"
    previous = out / "text2motion/joints/0/sample0_repeat0_len40.npy"
    previous.parent.mkdir(parents=True)
    np.save(previous, np.ones((40, 22, 3), np.float32))
    before = _hash(previous)
    proc = _run(
        [
            "gen_t2m.py",
            "--checkpoints_dir",
            str(runs),
            "--name",
            MASK_NAME,
            "--out_dir",
            str(out),
            "--text",
            "a person walks",
            "--motion_length",
            "40",
            "--device",
            "cpu",
            "--outputs",
            "npy",
        ]
    )
    _assert_clean_refusal(proc, names)
    assert _hash(previous) == before and sorted(p.name for p in out.rglob("*")) == sorted(
        ["text2motion", "joints", "0", previous.name]
    )


@pytest.mark.slow
@pytest.mark.parametrize("span", ["0," + "9" * 5000 + "s", "0,1e308s", "1e308,", "nan,2s"])
def test_edit_refuses_overflowing_spans(span: str, template_runs: Path, tmp_path: Path) -> None:
    source = tmp_path / "walk.npy"
    np.save(source, np.zeros((80, 263), np.float32))
    previous = tmp_path / "out" / "edit" / "previous.npy"
    previous.parent.mkdir(parents=True)
    np.save(previous, np.ones(3, np.float32))
    before = _snapshot(tmp_path)
    proc = _run(
        [
            "edit_t2m.py",
            "--checkpoints_dir",
            str(template_runs),
            "--name",
            MASK_NAME,
            "--source_motion",
            str(source),
            "--text",
            "a person jumps",
            "-msec",
            span,
            "--device",
            "cpu",
            "--out_dir",
            str(tmp_path / "out"),
        ]
    )
    _assert_clean_refusal(proc, ("--mask_edit_section",))
    assert _snapshot(tmp_path) == before


@pytest.mark.slow
def test_gen_refuses_a_5000_char_run_name(template_runs: Path, tmp_path: Path) -> None:
    proc = _run(
        [
            "gen_t2m.py",
            "--checkpoints_dir",
            str(template_runs),
            "--name",
            "n" * 5000,
            "--text",
            "a person",
            "--device",
            "cpu",
            "--out_dir",
            str(tmp_path / "out"),
        ]
    )
    _assert_clean_refusal(proc, ("--name",))
    assert not (tmp_path / "out").exists()


def _glove(folder: Path, words: bytes) -> Path:
    folder.mkdir()
    np.save(folder / "our_vab_data.npy", np.zeros((3, 300), np.float32))
    (folder / "our_vab_words.pkl").write_bytes(words)
    (folder / "our_vab_idx.pkl").write_bytes(pickle.dumps({"unk": 0, "sos": 1, "eos": 2}))
    return folder


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("garbage_glove_words", marks=_marks("garbage_glove_words")),
        pytest.param("payload_glove_words", marks=[pytest.mark.slow]),
    ],
)
def test_train_evaluator_refuses_bad_glove(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "PAYLOAD_RAN"
    words = os.urandom(500) if kind == "garbage_glove_words" else pickle.dumps([_Payload(marker), "unk"])
    glove = _glove(tmp_path / "glove", words)
    data = make_tiny_dataset(tmp_path / "data", "t2m", n_clips=4)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "notes.txt").write_text("an earlier run's notes")
    before = _snapshot(tmp_path)
    proc = _run(
        [
            "train_evaluator.py",
            "--data_root",
            str(data),
            "--glove_dir",
            str(glove),
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--device",
            "cpu",
        ]
    )
    _assert_clean_refusal(proc, ("our_vab_words.pkl",))
    assert not marker.exists() and _snapshot(tmp_path) == before


@pytest.mark.slow
def test_train_vq_refuses_string_arrays_in_the_dataset(tmp_path: Path) -> None:
    data = make_tiny_dataset(tmp_path / "data", "t2m", n_clips=4)
    np.save(data / "new_joint_vecs" / "000002.npy", np.array(["a", "b"]))
    before = _snapshot(tmp_path)
    proc = _run(
        [
            "train_vq.py",
            "--data_root",
            str(data),
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--name",
            "r",
            "--device",
            "cpu",
            "--max_epoch",
            "1",
        ]
    )
    _assert_clean_refusal(proc, ("000002.npy",))
    assert _snapshot(tmp_path) == before
