"""Local web demo: type a prompt, watch the motion, download BVH / joints; edit an uploaded motion.

    python app.py                                   # embedded demo model on http://127.0.0.1:7860
    python app.py --name <mask run> --res_name <res run>   # + official checkpoints (a dropdown picks the model)

A thin layer over :class:`models.pipeline.MoMaskPipeline`. :class:`DemoService` holds the request logic in plain
Python (validation with the CLI's rules from ``data.prompts``, one fresh folder per request, the janitor) and is
tested without a browser; :func:`build_app` wires it to a gradio page. gradio is optional: only
:func:`build_app` and :func:`launch` import it (``pip install -r requirements-demo.txt``).
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from data.prompts import check_caption, check_length, parse_edit_frames
from models.control.optimise import Control, Progress
from models.pipeline import MoMaskPipeline, Motion, Sampling
from utils.cli import USER_ERRORS
from visualization.control_input import read_control
from visualization.convert import read_motion
from visualization.export import save_npy
from visualization.joints2bvh import save_bvh
from visualization.render import render_motion
from visualization.retarget import save_rig_bvh

if TYPE_CHECKING:
    import gradio

logger = logging.getLogger(__name__)

DEMO_LABEL = "demo (embedded model)"
VIDEO_SIZE = 480  # px; the page shows it at about this size
MAX_AGE_S = 3600.0  # request folders older than this are removed
MAX_UPLOAD_MB = 20
MAX_SEED = 2**31 - 1
EDIT_SAMPLING = Sampling(res_cond_scale=2.0)  # the official edit_t2m's residual guidance
# Bounds of the "advanced" controls (the CLI only checks the lower ones; a public page also needs upper ones).
LIMITS = {"steps": (1, 100), "guidance": (0.0, 20.0), "residual guidance": (0.0, 20.0), "temperature": (0.0, 5.0)}
ONE_AT_A_TIME = {"concurrency_limit": 1, "concurrency_id": "model"}  # every event that runs the shared model
INSTALL_HINT = "the web demo needs gradio: pip install -r requirements-demo.txt"


@dataclass(frozen=True)
class WebResult:
    """The files of one request, all inside ``folder`` (``<workdir>/<uuid hex>``)."""

    folder: Path
    video: Path  # .mp4, or .gif when ffmpeg is not on PATH
    bvh: Path
    joints: Path  # (T, J, 3) float32
    features: Path  # (T, D) float32, de-normalised (re-uploadable to the Edit tab)
    message: str


def _number(value: Any, name: str, lo: float, hi: float, integer: bool = False) -> float:
    """A form value as a finite number in [lo, hi] (integers when asked), else a ValueError naming the field."""
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name}: {shown} is not a number") from None
    if not math.isfinite(x) or (integer and x != int(x)):
        raise ValueError(f"{name}: {shown} is not a {'whole ' if integer else ''}number")
    if not lo <= x <= hi:
        raise ValueError(f"{name}: {shown} is out of range; use {lo:g}..{hi:g}")
    return int(x) if integer else x


def sampling_from_form(
    steps: Any, guidance: Any, res_guidance: Any, temperature: Any, base: Sampling = Sampling()
) -> Sampling:
    """The advanced settings as a :class:`Sampling` (top-k ratio etc. from ``base``), range-checked."""
    return replace(
        base,
        time_steps=_number(steps, "steps", *LIMITS["steps"], integer=True),
        cond_scale=_number(guidance, "guidance", *LIMITS["guidance"]),
        res_cond_scale=_number(res_guidance, "residual guidance", *LIMITS["residual guidance"]),
        temperature=_number(temperature, "temperature", *LIMITS["temperature"]),
    )


def check_seed(seed: Any) -> int:
    return _number(seed, "seed", 0, MAX_SEED, integer=True)


REQUEST_MARKER = ".momask-request"
_REQUEST_NAME = re.compile(r"[0-9a-f]{32}")


def is_request_folder(folder: Path) -> bool:
    """A folder this server made for a request: a uuid4-hex name, a real directory (not a link), with the
    marker file :meth:`DemoService._write` puts in it."""
    return (
        bool(_REQUEST_NAME.fullmatch(folder.name))
        and not folder.is_symlink()
        and folder.is_dir()
        and (folder / REQUEST_MARKER).is_file()
        and not (folder / REQUEST_MARKER).is_symlink()
    )


class DemoService:
    """Generation and editing requests over the pipelines the server was started with (label -> pipeline).

    Not thread-safe by itself: the page runs one request at a time (gradio queue, concurrency 1)."""

    def __init__(
        self,
        pipelines: Mapping[str, MoMaskPipeline],
        workdir: str | Path,
        *,
        max_age_s: float = MAX_AGE_S,
        video_size: int = VIDEO_SIZE,
    ) -> None:
        if not pipelines:
            raise ValueError("the web demo needs at least one model")
        self.pipelines = dict(pipelines)
        self.workdir = Path(workdir).expanduser().resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self.video_size = video_size

    @property
    def labels(self) -> list[str]:
        return list(self.pipelines)

    def pipeline(self, label: str) -> MoMaskPipeline:
        if label not in self.pipelines:
            raise ValueError(f"model {label!r} is not one this server was started with: {self.labels}")
        return self.pipelines[label]

    def sweep(self, now: float | None = None) -> list[Path]:
        """Remove request folders (see :func:`is_request_folder`) last modified more than ``max_age_s`` ago;
        returns those removed. Nothing else in the workdir is ever touched."""
        now = time.time() if now is None else now
        removed = []
        for folder in self.workdir.iterdir():
            try:
                old = is_request_folder(folder) and now - folder.stat().st_mtime > self.max_age_s
            except FileNotFoundError:  # removed meanwhile by another server sharing the workdir
                continue
            if old:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        if removed:
            logger.info("janitor: removed %d request folder(s) older than %.0f s", len(removed), self.max_age_s)
        return removed

    def frames_from_form(self, pipe: MoMaskPipeline, frames: Any, estimate: bool) -> int | None:
        """Requested frames, or None to estimate (only where the model has a length estimator)."""
        if estimate:
            if pipe.length_estimator is None:
                raise ValueError("this model has no length estimator: untick 'estimate length' and give frames")
            return None
        spec = pipe.spec
        n = _number(frames, "length", -math.inf, math.inf, integer=True)
        return check_length(n, spec.max_motion_length, spec.unit_length, "length")

    # ---- requests ----------------------------------------------------------------------------------------------
    def generate(
        self,
        label: str,
        prompt: str,
        frames: Any,
        estimate: bool,
        seed: Any,
        sampling: Sampling = Sampling(),
        cleanup: bool = True,
        control: str | Path | None = None,
        progress: Progress | None = None,
        rig: str | Path | None = None,
    ) -> WebResult:
        """One motion from a prompt, written to a fresh folder (``cleanup``: the physical clean-up of the joints,
        utils/cleanup.py). ``control``: an uploaded control file (keyframes .json, targets .npy, or a motion whose
        pelvis path to follow); ``progress`` sees the optimisation; ``rig``: the BVH is
        retargeted onto that uploaded rig."""
        self.sweep()
        pipe = self.pipeline(label)
        caption = check_caption(str(prompt or ""), "prompt")
        length = self.frames_from_form(pipe, frames, estimate)
        seed = check_seed(seed)
        ctl = self.read_control(pipe, control, length, progress) if control else None
        start = time.perf_counter()
        (motion,) = pipe.generate([caption], [length], seed=seed, sampling=sampling, cleanup=bool(cleanup), control=ctl)
        took = time.perf_counter() - start
        estimated = ", length estimated" if length is None else ""
        cleaned = ", cleaned up" if cleanup else ""
        note = (
            f"{motion.num_frames} frames ({motion.num_frames / pipe.spec.fps:.1f} s{estimated}) in {took:.1f} s, "
            f"seed {seed}{cleaned}"
        )
        if motion.control_error is not None:
            note += f"; controlled joints {100 * motion.control_error:.1f} cm from their targets on average"
        return self._write(pipe, motion, note + self._familiarity(pipe, caption), rig)

    def edit(
        self,
        label: str,
        upload: str | Path,
        prompt: str,
        start_s: Any,
        end_s: Any,
        seed: Any,
        sampling: Sampling = EDIT_SAMPLING,
    ) -> WebResult:
        """Regenerate [start_s, end_s) seconds of an uploaded motion (features/joints .npy or .bvh) from a prompt.

        ``upload`` is the file the web framework stored for this request; an empty/0 end means the motion's end."""
        self.sweep()
        pipe = self.pipeline(label)
        caption = check_caption(str(prompt or ""), "prompt")
        features = self.read_upload(pipe, upload)
        seed = check_seed(seed)
        spec, total = pipe.spec, features.shape[0]
        duration = total / spec.fps
        start = _number(start_s if start_s not in (None, "") else 0, "start (s)", 0, duration)
        end = _number(end_s if end_s not in (None, "") else 0, "end (s)", 0, duration)
        section = f"{start:.3f}s," + (f"{end:.3f}s" if end > 0 else "")
        try:
            spans = parse_edit_frames([section], total, spec.fps)
        except ValueError as exc:
            raise ValueError(str(exc).replace(f"--mask_edit_section {section!r}", "edit span")) from None
        t0 = time.perf_counter()
        motion = pipe.edit(features, caption, spans, seed=seed, sampling=sampling)
        ((s, e),) = spans
        note = (
            f"regenerated {s / spec.fps:.2f}-{e / spec.fps:.2f} s of {total / spec.fps:.2f} s (the rest is the "
            f"source's) "
            f"in {time.perf_counter() - t0:.1f} s, seed {seed}"
        )
        return self._write(pipe, motion, note + self._familiarity(pipe, caption))

    def read_control(
        self, pipe: MoMaskPipeline, upload: str | Path, length: int | None, progress: Progress | None
    ) -> Control:
        """An uploaded control file as a Control; errors name the user's file, not the server's path."""
        path = Path(upload)
        try:
            targets = read_control(path, pipe.spec, total_frames=length)
        except (ValueError, OSError) as exc:
            raise ValueError(f"control file {path.name!r}: {str(exc).replace(str(path), path.name)}") from None
        return Control(targets, progress=progress)

    def read_upload(self, pipe: MoMaskPipeline, upload: str | Path | None) -> np.ndarray:
        """Features (T, D) of an uploaded motion file of the model's dataset; readable errors naming the file."""
        if not upload:
            raise ValueError("upload a motion to edit: a features or joints .npy, or a .bvh written by this project")
        path = Path(upload)
        limit = pipe.spec.max_motion_length
        try:
            if path.stat().st_size > MAX_UPLOAD_MB * 2**20:
                raise ValueError(f"file is larger than {MAX_UPLOAD_MB} MB")
            features = read_motion(path, pipe.spec).as_features()
        except (ValueError, OSError) as exc:
            # Messages name the server's temporary path; show the user's file name instead.
            raise ValueError(f"uploaded file {path.name!r}: {str(exc).replace(str(path), path.name)}") from None
        if features.shape[0] > limit:
            raise ValueError(
                f"uploaded file {path.name!r} has {features.shape[0]} frames; the demo edits at most "
                f"{limit} ({limit / pipe.spec.fps:.1f} s): trim it first"
            )
        return features

    # ---- helpers -----------------------------------------------------------------------------------------------
    def _familiarity(self, pipe: MoMaskPipeline, caption: str) -> str:
        if pipe.warn_if_unfamiliar([caption]):
            return (
                "\nNote: this caption is unlike anything the demo model was trained on (it knows ~20 actions: "
                "walk, run, jump, kick, ...); the motion is a best effort."
            )
        return ""

    def _write(self, pipe: MoMaskPipeline, motion: Motion, message: str, rig: str | Path | None = None) -> WebResult:
        """Every output of one request into a new ``<workdir>/<uuid>`` folder (never shared between requests)."""
        if not (np.isfinite(motion.joints).all() and np.isfinite(motion.features).all()):
            raise ValueError(
                "the model produced NaN or infinite values for this request (its weights or statistics "
                "are broken); nothing was written"
            )
        folder = self.workdir / uuid.uuid4().hex
        folder.mkdir()
        (folder / REQUEST_MARKER).write_text("momask web demo request folder; removed by the janitor when old\n")
        spec = pipe.spec
        stem = f"momask_len{motion.num_frames}"
        offsets = "template" if spec.target_offsets is not None else "motion"
        if rig:  # an uploaded rig BVH: the download is retargeted onto it
            bvh = save_rig_bvh(motion.joints, folder / f"{stem}.bvh", spec, Path(rig))
        else:
            bvh = save_bvh(motion.joints, folder / f"{stem}.bvh", spec, offsets=offsets)
        joints = save_npy(folder / f"{stem}_joints.npy", motion.joints)
        features = save_npy(folder / f"{stem}_features.npy", motion.features)
        video = render_motion(motion.joints, folder / f"{stem}.mp4", spec, title=motion.caption, size=self.video_size)
        logger.info("request %s: %s", folder.name, message.splitlines()[0])
        return WebResult(folder, Path(video), Path(bvh), joints, features, message)


# ---- gradio page ----------------------------------------------------------------------------------------------
def import_gradio() -> ModuleType:
    try:
        import gradio
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return gradio


def _as_service(pipe: MoMaskPipeline | Mapping[str, MoMaskPipeline] | DemoService, workdir: str | Path) -> DemoService:
    if isinstance(pipe, DemoService):
        return pipe
    return DemoService(pipe if isinstance(pipe, Mapping) else {DEMO_LABEL: pipe}, workdir)


def make_handlers(service: DemoService) -> tuple[Callable, Callable]:
    """The page's two callbacks (generate, edit): form values -> output component updates; bad input -> gr.Error."""
    gr = import_gradio()

    def outputs(result: WebResult) -> tuple:
        is_mp4 = result.video.suffix == ".mp4"
        return (
            gr.update(value=str(result.video) if is_mp4 else None, visible=is_mp4),
            gr.update(value=None if is_mp4 else str(result.video), visible=not is_mp4),
            result.message,
            str(result.bvh),
            [str(result.joints), str(result.features)],
        )

    def run(request: Callable[[], WebResult]) -> tuple:
        try:
            return outputs(request())
        except USER_ERRORS as exc:  # the CLIs' user errors: shown on the page as the message
            raise gr.Error(str(exc), print_exception=False) from None

    def on_generate(
        label,
        prompt,
        frames,
        estimate,
        seed,
        steps,
        guidance,
        res_guidance,
        temperature,
        cleanup=True,
        control=None,
        rig=None,
        progress=gr.Progress(),
    ):
        def report(fraction: float, stage: str) -> None:
            progress(fraction, desc=f"optimising the control ({stage})")

        return run(
            lambda: service.generate(
                label,
                prompt,
                frames,
                estimate,
                seed,
                sampling_from_form(steps, guidance, res_guidance, temperature),
                cleanup=bool(cleanup),
                control=control,
                progress=report,
                rig=rig,
            )
        )

    def on_edit(label, upload, prompt, start_s, end_s, seed, steps, guidance, res_guidance, temperature):
        base = EDIT_SAMPLING
        return run(
            lambda: service.edit(
                label,
                upload,
                prompt,
                start_s,
                end_s,
                seed,
                sampling_from_form(steps, guidance, res_guidance, temperature, base),
            )
        )

    return on_generate, on_edit


def _advanced(gr: ModuleType, defaults: Sampling) -> list:
    with gr.Accordion("Advanced", open=False):
        return [
            gr.Slider(*LIMITS["steps"], value=defaults.time_steps, step=1, label="steps"),
            gr.Slider(*LIMITS["guidance"], value=defaults.cond_scale, step=0.5, label="guidance (cond_scale)"),
            gr.Slider(
                *LIMITS["residual guidance"],
                value=defaults.res_cond_scale,
                step=0.5,
                label="residual guidance (res_cond_scale)",
            ),
            gr.Slider(*LIMITS["temperature"], value=defaults.temperature, step=0.05, label="temperature"),
        ]


def _results(gr: ModuleType, prefix: str) -> list:
    video = gr.Video(label="motion", autoplay=True, loop=True, interactive=False, height=420, elem_id=f"{prefix}-video")
    gif = gr.Image(
        label="motion", type="filepath", interactive=False, visible=False, height=420, elem_id=f"{prefix}-gif"
    )
    status = gr.Textbox(label="status", interactive=False, lines=2, elem_id=f"{prefix}-status")
    bvh = gr.File(label="BVH", interactive=False, elem_id=f"{prefix}-bvh")
    npy = gr.File(
        label="joints (T, J, 3) and features (T, D) .npy",
        file_count="multiple",
        interactive=False,
        elem_id=f"{prefix}-npy",
    )
    return [video, gif, status, bvh, npy]


def build_app(pipe: MoMaskPipeline | Mapping[str, MoMaskPipeline] | DemoService, workdir: str | Path) -> gradio.Blocks:
    """The page: a Generate tab and an Edit tab over ``pipe`` (one pipeline, label -> pipeline, or a service).

    Requests are queued and run one at a time (the model is shared)."""
    gr = import_gradio()
    service = _as_service(pipe, workdir)
    on_generate, on_edit = make_handlers(service)
    first = service.pipeline(service.labels[0])  # the page's default model
    with gr.Blocks(
        title="MoMask text-to-motion", analytics_enabled=False, delete_cache=(600, int(service.max_age_s))
    ) as app:
        gr.Markdown(
            "## MoMask: text to 3D human motion\nDescribe a motion, watch it, download it as BVH or "
            "joint positions. The embedded demo model knows ~20 actions (walk, run, jump, kick, ...)."
        )
        model = gr.Dropdown(service.labels, value=service.labels[0], label="model", elem_id="model")
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column():
                    prompt = gr.Textbox(
                        label="prompt", placeholder="a person walks forward and waves", lines=2, elem_id="prompt"
                    )
                    with gr.Row():
                        frames = gr.Number(
                            120,
                            label=f"length (frames, {first.spec.fps:g} per second)",
                            precision=0,
                            minimum=first.spec.unit_length,
                            maximum=first.spec.max_motion_length,
                            elem_id="frames",
                        )
                        estimate = gr.Checkbox(True, label="estimate length", elem_id="estimate")
                        seed = gr.Number(10107, label="seed", precision=0, minimum=0, maximum=MAX_SEED)
                        cleanup = gr.Checkbox(True, label="clean up (feet, jitter)", elem_id="cleanup")
                    control = gr.File(
                        label="optional control: keyframes .json, targets .npy (NaN = free), or a motion "
                        "(.bvh/.npy) whose pelvis path to follow",
                        file_types=[".json", ".npy", ".bvh"],
                        type="filepath",
                        elem_id="gen-control",
                    )
                    advanced = _advanced(gr, first.resolve(Sampling()))
                    button = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                    gr.Examples(
                        [["a person walks forward"], ["a person jumps up"], ["a person runs in a circle"]],
                        inputs=[prompt],
                    )
                with gr.Column():
                    results = _results(gr, "gen")
            rig = gr.File(
                label="your rig (.bvh, optional): the BVH download is retargeted onto it",
                file_types=[".bvh"],
                type="filepath",
                elem_id="gen-rig",
            )
            inputs = [model, prompt, frames, estimate, seed, *advanced, cleanup, control, rig]
            button.click(on_generate, inputs, results, api_name="generate", **ONE_AT_A_TIME)
            prompt.submit(on_generate, inputs, results, api_name=False, **ONE_AT_A_TIME)
        with gr.Tab("Edit"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(
                        label="motion to edit (.npy features or joints, or .bvh)",
                        file_types=[".npy", ".bvh"],
                        type="filepath",
                        elem_id="edit-upload",
                    )
                    edit_prompt = gr.Textbox(label="prompt for the span", lines=2, elem_id="edit-prompt")
                    with gr.Row():
                        start_s = gr.Number(1.0, label="start (s)", minimum=0, elem_id="edit-start")
                        end_s = gr.Number(3.0, label="end (s, 0 = to the end)", minimum=0, elem_id="edit-end")
                        edit_seed = gr.Number(10107, label="seed", precision=0, minimum=0, maximum=MAX_SEED)
                    edit_advanced = _advanced(gr, first.resolve(EDIT_SAMPLING))
                    edit_button = gr.Button("Regenerate span", variant="primary", elem_id="edit-btn")
                with gr.Column():
                    edit_results = _results(gr, "edit")
            edit_button.click(
                on_edit,
                [model, upload, edit_prompt, start_s, end_s, edit_seed, *edit_advanced],
                edit_results,
                api_name="edit",
                **ONE_AT_A_TIME,
            )
        # the guidance sliders start at the chosen model's own (its run's sampling.json, else the official 4)
        model.change(
            lambda label: [gr.update(value=service.pipeline(label).resolve(Sampling()).cond_scale)] * 2,
            [model],
            [advanced[1], edit_advanced[1]],
            api_name=False,
        )
    app.queue(max_size=32)
    app.service = service  # for callers that want the workdir / janitor
    return app


def launch(
    app: gradio.Blocks, *, host: str = "127.0.0.1", port: int = 7860, workdir: str | Path, block: bool = True
) -> None:
    """Serve ``app`` (from :func:`build_app`); outputs under ``workdir`` are servable, nothing else of the disk."""
    app.launch(
        server_name=host,
        server_port=port,
        allowed_paths=[str(Path(workdir).resolve())],
        max_file_size=f"{MAX_UPLOAD_MB}mb",
        show_error=True,
        ssr_mode=False,
        quiet=False,
        prevent_thread_lock=not block,
        footer_links=[],
    )


def load_pipelines(
    *,
    checkpoints_dir: str | Path = "./checkpoints",
    dataset_name: str = "t2m",
    name: str = "",
    res_name: str = "",
    device: Any = "cpu",
) -> dict[str, MoMaskPipeline]:
    """What the server offers: the embedded demo model (when present) and the run named by ``name``.

    Without ``name`` the demo model is required (a clear FileNotFoundError otherwise)."""
    pipelines: dict[str, MoMaskPipeline] = {}
    if name:  # the run asked for comes first: it is the page's default
        label = f"{dataset_name}/{name}" + (f" + {res_name}" if res_name else "")
        pipelines[label] = MoMaskPipeline.from_checkpoints(checkpoints_dir, dataset_name, name, res_name, device=device)
    demo_present = (MoMaskPipeline.DEMO_CHECKPOINTS / "t2m" / MoMaskPipeline.DEMO_NAMES[0] / "opt.txt").is_file()
    if not name or demo_present:
        pipelines[DEMO_LABEL] = MoMaskPipeline.demo(device=device)
    return pipelines
