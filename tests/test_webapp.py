"""Web demo: request handlers without a browser (tiny untrained runs), and one headless-Chromium run of app.py.

The browser test is marked ``browser`` (excluded by default): ``python -m pytest tests/test_webapp.py -m browser``.
It needs requirements-demo.txt and Debian's chromium + chromium-driver, and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from tiny_runs import MASK_NAME, RES_NAME, make_tiny_runs

from models.pipeline import MoMaskPipeline, Sampling
from models.transformer.build import RunSampling
from visualization.bvh import parse_bvh, read_bvh
from visualization.webapp import REQUEST_MARKER, DemoService, is_request_folder, sampling_from_form

REPO = Path(__file__).resolve().parents[1]
MODEL = "tiny"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_runs(tmp_path_factory.mktemp("checkpoints"), "t2m")


@pytest.fixture(scope="module")
def pipe(runs: Path) -> MoMaskPipeline:
    return MoMaskPipeline.from_checkpoints(runs, "t2m", MASK_NAME, RES_NAME, device="cpu")


@pytest.fixture()
def service(pipe: MoMaskPipeline, tmp_path: Path) -> DemoService:
    return DemoService({MODEL: pipe}, tmp_path / "work", video_size=64)


def test_generate_writes_every_output(service: DemoService) -> None:
    r = service.generate(MODEL, "  a person walks forward ", 60, False, 3)
    video = "momask_len60.mp4" if shutil.which("ffmpeg") else "momask_len60.gif"  # GIF where ffmpeg is absent
    # The folder also holds the janitor's marker (the proof the server made it); the page offers only the outputs.
    assert r.folder.parent == service.workdir and sorted(p.name for p in r.folder.iterdir()) == [
        REQUEST_MARKER,
        "momask_len60.bvh",
        video,
        "momask_len60_features.npy",
        "momask_len60_joints.npy",
    ]
    assert is_request_folder(r.folder) and REQUEST_MARKER not in {
        p.name for p in (r.video, r.bvh, r.joints, r.features)
    }
    joints, features = np.load(r.joints), np.load(r.features)
    assert joints.shape == (60, 22, 3) and features.shape == (60, 263)
    assert read_bvh(r.bvh).rotations.shape[0] == 60
    assert r.video.read_bytes()[4:8] == b"ftyp" if video.endswith(".mp4") else r.video.read_bytes()[:6] == b"GIF89a"
    assert r.message.startswith("60 frames (3.0 s)") and "seed 3" in r.message


def test_requests_get_distinct_folders_and_seeds_repeat(service: DemoService) -> None:
    a = service.generate(MODEL, "a person jumps", 40, False, 7)
    b = service.generate(MODEL, "a person jumps", 40, False, 7)
    c = service.generate(MODEL, "a person jumps", 40, False, 8)
    assert len({a.folder, b.folder, c.folder}) == 3 and all(p.parent == a.folder for p in (a.bvh, a.joints, a.video))
    assert np.array_equal(np.load(a.joints), np.load(b.joints))
    assert not np.array_equal(np.load(a.joints), np.load(c.joints))


def test_estimated_length_and_advanced_settings(service: DemoService) -> None:
    r = service.generate(MODEL, "a person runs", 0, True, 1, sampling_from_form(5, 2.5, 1.0, 0.5))
    frames = np.load(r.joints).shape[0]
    assert 4 <= frames <= 196 and frames % 4 == 0 and "length estimated" in r.message
    assert sampling_from_form("5", 2.5, 1, 0.5) == Sampling(
        time_steps=5, cond_scale=2.5, res_cond_scale=1.0, temperature=0.5
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt="   "), "prompt: empty caption"),
        (dict(prompt="x" * 1001), "limit is 1000"),
        (dict(frames=1000), "length: length 1000 frames is out of range; use 4..196"),
        (dict(frames=2), "out of range"),
        (dict(frames=60.5), "not a whole number"),
        (dict(frames=None), "is not a number"),
        (dict(seed=-1), "seed: -1 is out of range"),
        (dict(label="other"), "not one this server was started with"),
    ],
)
def test_bad_generation_inputs_are_refused_clearly(service: DemoService, kwargs: dict, message: str) -> None:
    args = dict(label=MODEL, prompt="a person walks", frames=60, estimate=False, seed=1) | kwargs
    with pytest.raises(ValueError, match=message):
        service.generate(**args)
    assert list(service.workdir.iterdir()) == []  # nothing written for a refused request


@pytest.mark.parametrize(
    "form, message",
    [
        ((0, 4, 5, 1), "steps: 0 is out of range"),
        ((18, 4, 5, float("nan")), "temperature: nan is not a number"),
        ((18, 50, 5, 1), "guidance: 50 is out of range"),
        ((2.5, 4, 5, 1), "steps: 2.5 is not a whole number"),
    ],
)
def test_bad_advanced_settings(form: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sampling_from_form(*form)


def test_no_length_estimator_means_a_length_is_needed(runs: Path, pipe: MoMaskPipeline, tmp_path: Path) -> None:
    plain = MoMaskPipeline.from_checkpoints(
        runs, "t2m", MASK_NAME, device="cpu", use_length_estimator=False, text_encoder=pipe.text_encoder
    )
    service = DemoService({MODEL: plain}, tmp_path, video_size=64)
    with pytest.raises(ValueError, match="no length estimator: untick 'estimate length'"):
        service.generate(MODEL, "a person walks", 0, True, 1)


def test_edit_keeps_length_and_accepts_every_upload_kind(service: DemoService, tmp_path: Path) -> None:
    source = service.generate(MODEL, "a person walks", 80, False, 2)
    uploads = {"walk.npy": source.features, "walk_joints.npy": source.joints, "walk.bvh": source.bvh}
    for name, src in uploads.items():
        path = tmp_path / name
        shutil.copy(src, path)
        r = service.edit(MODEL, path, "a person jumps", 1.0, 2.0, 5)
        frames = 80 if name == "walk.npy" else 79  # joints -> features drops one frame
        assert np.load(r.features).shape == (frames, 263) and r.folder != source.folder  # every frame kept
        assert r.message.startswith(f"regenerated 1.00-2.00 s of {frames / 20:.2f} s")
    suffix = service.edit(MODEL, tmp_path / "walk.npy", "a person jumps", 2.0, 0, 5)  # end 0 = to the end
    assert suffix.message.startswith("regenerated 2.00-4.00 s")


def test_bad_uploads_and_spans_are_refused_clearly(service: DemoService, tmp_path: Path) -> None:
    (tmp_path / "notes.npy").write_text("not an array")
    np.save(tmp_path / "image.npy", np.zeros((32, 32)))
    np.save(tmp_path / "long.npy", np.zeros((400, 263), np.float32))
    np.save(tmp_path / "ok.npy", np.zeros((80, 263), np.float32))
    (tmp_path / "motion.txt").write_text("1 2 3")
    (tmp_path / "bad.bvh").write_text("HIERARCHY\nnonsense")
    cases = [
        ("notes.npy", 1, 2, r"uploaded file 'notes.npy': motion notes.npy: not a \.npy file"),
        ("image.npy", 1, 2, r"'image.npy'.*\(32, 32\)"),
        ("long.npy", 1, 2, "has 400 frames; the demo edits at most 196"),
        ("motion.txt", 1, 2, "unsupported extension '.txt'"),
        ("bad.bvh", 1, 2, "uploaded file 'bad.bvh'"),
        ("ok.npy", 3, 9, r"end \(s\): 9 is out of range; use 0\.\.4"),  # 80 frames are 4 s
        ("ok.npy", 0, 1e308, r"end \(s\): 1e\+308 is out of range"),
        ("ok.npy", "nan", 2, r"start \(s\): 'nan' is not a number"),
        ("ok.npy", 3, 3, "edit span: frames 60..60 are not a non-empty span inside the motion's 80 frames"),
        ("ok.npy", 2, 1, "edit span"),
        ("ok.npy", -1, 2, r"start \(s\): -1 is out of range"),
    ]
    for name, start, end, message in cases:
        with pytest.raises(ValueError, match=message):
            service.edit(MODEL, tmp_path / name, "a person jumps", start, end, 1)
    with pytest.raises(ValueError, match="upload a motion to edit"):
        service.edit(MODEL, None, "a person jumps", 1, 2, 1)
    assert list(service.workdir.iterdir()) == []
    assert str(tmp_path) not in _message(service, tmp_path / "notes.npy")  # no server paths in page messages


def _message(service: DemoService, path: Path) -> str:
    with pytest.raises(ValueError) as info:
        service.edit(MODEL, path, "a person jumps", 1, 2, 1)
    return str(info.value)


def test_janitor_removes_only_old_request_folders(service: DemoService) -> None:
    old = service.generate(MODEL, "a person walks", 20, False, 1).folder
    stamp = time.time() - service.max_age_s - 60
    os.utime(old, (stamp, stamp))
    keep = service.workdir / "notes"  # not a request folder: never touched
    keep.mkdir()
    os.utime(keep, (stamp, stamp))
    new = service.generate(MODEL, "a person walks", 20, False, 1).folder  # each request sweeps first
    assert not old.exists() and new.is_dir() and keep.is_dir()


def test_page_handlers_turn_bad_input_into_page_errors(service: DemoService) -> None:
    gr = pytest.importorskip("gradio")
    from visualization.webapp import build_app, make_handlers

    on_generate, on_edit = make_handlers(service)
    with pytest.raises(gr.Error, match="prompt: empty caption"):
        on_generate(MODEL, "", 60, False, 1, 18, 4, 5, 1)
    with pytest.raises(gr.Error, match="upload a motion"):
        on_edit(MODEL, None, "a person jumps", 1, 2, 1, 18, 4, 2, 1)
    video, gif, status, bvh, npy = on_generate(MODEL, "a person walks", 40, False, 1, 18, 4, 5, 1)
    assert video["visible"] == (shutil.which("ffmpeg") is not None) != gif["visible"]
    assert Path(bvh).suffix == ".bvh" and [Path(p).name for p in npy] == [
        "momask_len40_joints.npy",
        "momask_len40_features.npy",
    ]
    app = build_app(service, service.workdir)
    model_events = [d for d in app.fns.values() if d.fn.__name__ in ("on_generate", "on_edit")]
    assert len(model_events) == 3 and {"generate", "edit"} <= {d.api_name for d in model_events}  # + Enter key
    assert {(d.concurrency_id, d.concurrency_limit) for d in model_events} == {("model", 1)}  # one request at a time


def test_server_queues_requests_and_refuses_paths_not_uploaded(service: DemoService, tmp_path: Path) -> None:
    """The page's API on a loopback port: two queued requests get their own files; a file payload naming a server
    path (not an upload) is refused by gradio before the handler sees it."""
    pytest.importorskip("gradio")
    from gradio_client import Client, handle_file

    from prepare.screenshot_webapp import free_port
    from visualization.webapp import build_app, launch

    app = build_app(service, service.workdir)
    port = free_port()
    launch(app, port=port, workdir=service.workdir, block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        client = Client(url, verbose=False, download_files=str(tmp_path / "client"))
        jobs = [
            client.submit(MODEL, "a person walks", 40, False, seed, 18, 4, 5, 1, api_name="/generate")
            for seed in (1, 2)
        ]
        (_, _, _, bvh1, npy1), (_, _, _, bvh2, npy2) = [job.result(timeout=120) for job in jobs]
        assert bvh1 != bvh2 and not np.array_equal(np.load(npy1[0]), np.load(npy2[0]))
        assert len(list(service.workdir.iterdir())) == 2
        source = tmp_path / "walk.npy"
        np.save(source, np.load(npy1[1]))
        edited = client.predict(
            MODEL, handle_file(str(source)), "a person jumps", 0.5, 1.5, 3, 18, 4, 2, 1, api_name="/edit"
        )
        assert np.load(edited[4][1]).shape == (40, 263)
        body = {
            "data": [
                MODEL,
                {"path": str(source), "meta": {"_type": "gradio.FileData"}},
                "a person jumps",
                0.5,
                1.5,
                3,
                18,
                4,
                2,
                1,
            ]
        }
        request = urllib.request.Request(
            f"{url}gradio_api/call/edit", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            event = json.loads(r.read())["event_id"]
        with urllib.request.urlopen(f"{url}gradio_api/call/edit/{event}", timeout=60) as r:
            answer = r.read().decode()
        assert "event: error" in answer and "not uploaded by a user" in answer
        assert len(list(service.workdir.iterdir())) == 3  # the refused request wrote nothing
    finally:
        app.close()


def test_gif_in_the_page_when_ffmpeg_is_missing(service: DemoService, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gradio")
    from visualization import render
    from visualization.webapp import make_handlers

    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    video, gif, _, _, _ = make_handlers(service)[0](MODEL, "a person walks", 20, False, 1, 18, 4, 5, 1)
    assert not video["visible"] and gif["visible"] and Path(gif["value"]).read_bytes()[:6] == b"GIF89a"


def test_start_up_models(runs: Path) -> None:
    """What app.py offers: the run given by --name first (the page's default), then the demo model if present."""
    from visualization.webapp import DEMO_LABEL, load_pipelines

    demo_present = (MoMaskPipeline.DEMO_CHECKPOINTS / "t2m" / MoMaskPipeline.DEMO_NAMES[0] / "opt.txt").is_file()
    models = load_pipelines(checkpoints_dir=runs, name=MASK_NAME, res_name=RES_NAME, device="cpu")
    assert list(models) == [f"t2m/{MASK_NAME} + {RES_NAME}"] + ([DEMO_LABEL] if demo_present else [])
    assert models[f"t2m/{MASK_NAME} + {RES_NAME}"].res is not None
    if not demo_present:
        with pytest.raises(FileNotFoundError, match="embedded demo model is missing"):
            load_pipelines()
    with pytest.raises(FileNotFoundError, match="not_a_run"):
        load_pipelines(checkpoints_dir=runs, name="not_a_run")


def test_app_without_gradio_says_how_to_install(tmp_path: Path) -> None:
    """app.py run where gradio cannot be imported (a stub package that raises) exits with the install hint."""
    stub = tmp_path / "gradio"
    stub.mkdir()
    (stub / "__init__.py").write_text("raise ImportError('No module named gradio')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    out = subprocess.run([sys.executable, str(REPO / "app.py")], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "pip install -r requirements-demo.txt" in out.stderr


@pytest.mark.browser
def test_browser_generates_plays_and_downloads_bvh(runs: Path, tmp_path: Path, reference_dir: Path) -> None:
    """app.py on a free loopback port, driven by headless Debian Chromium: prompt (length given, clean-up off) and
    an uploaded rig BVH -> playing video + a BVH download that is the joints download retargeted onto the rig;
    then an uploaded .npy (3 s of a real HumanML3D motion) edited on the Edit tab."""
    pytest.importorskip("gradio")
    pytest.importorskip("selenium")
    from prepare.screenshot_webapp import CHROMEDRIVER, CHROMIUM, chromium, edit_in_page, generate_in_page, start_app
    from tests import rigs
    from utils.skeleton import get_dataset_spec
    from visualization.bvh import forward_kinematics, write_bvh
    from visualization.retarget import load_plan, retarget

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    work = tmp_path / "work"
    args = ["--checkpoints_dir", str(runs), "--name", MASK_NAME, "--res_name", RES_NAME, "--device", "cpu"]
    args += ["--workdir", str(work)]
    source = tmp_path / "walk.npy"
    np.save(source, np.load(reference_dir / "momask" / "000612_features.npy")[:60])
    rig = write_bvh(tmp_path / "mixamo_rig.bvh", rigs.mixamo_rig())
    with start_app(args) as url, chromium() as driver:
        state = generate_in_page(driver, url, "a person walks forward", 48, cleanup=False, rig=rig)
        edit_status = edit_in_page(driver, source, "a person jumps", 1, 2)
    assert edit_status.startswith("regenerated 1.00-2.00 s of 3.00 s")
    assert state["ready"] >= 2 and state["time_advanced"] and state["status"].startswith("48 frames")
    assert "cleaned up" not in state["status"]  # the box was unticked
    bvh = parse_bvh(state["bvh_text"], state["bvh_url"])
    assert bvh.num_frames == 48 and abs(bvh.frame_time - 0.05) < 1e-9
    (joints,) = work.glob("*/momask_len48_joints.npy")
    motion, _ = retarget(np.load(joints).astype(np.float64), load_plan(rig, get_dataset_spec("t2m")))
    assert bvh.names == motion.names  # the uploaded rig's joints, not the project's skeleton
    np.testing.assert_allclose(forward_kinematics(bvh)[0], forward_kinematics(motion)[0], atol=1e-4)
    assert set(state["hosts"]) <= {"127.0.0.1"}  # the page loaded nothing from elsewhere


def test_guidance_sliders_start_at_the_chosen_models_own(pipe: MoMaskPipeline, tmp_path: Path) -> None:
    """The page's two guidance sliders start at the first model's run setting (sampling.json) and follow the
    model dropdown; a run without one gets the official 4."""
    pytest.importorskip("gradio")
    from visualization.webapp import build_app

    tuned = copy.copy(pipe)
    tuned.run_sampling = RunSampling(margin=0, cond_scale=2.5)
    service = DemoService({"tuned": tuned, MODEL: pipe}, tmp_path / "work", video_size=64)
    app = build_app(service, service.workdir)
    sliders = [b for b in app.blocks.values() if getattr(b, "label", None) == "guidance (cond_scale)"]
    assert [s.value for s in sliders] == [2.5, 2.5]
    (follow,) = [d for d in app.fns.values() if {o._id for o in d.outputs} == {s._id for s in sliders}]
    assert [u["value"] for u in follow.fn(MODEL)] == [4.0, 4.0]
    assert [u["value"] for u in follow.fn("tuned")] == [2.5, 2.5]
