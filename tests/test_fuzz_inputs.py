"""Fuzz test of every input boundary: ~1,200 seeded malformed inputs through the real parsers, loaders and CLI
``main`` functions, in process (see tests/fuzz_harness.py for the outcome classes).

Families: motion .npy (visualization.convert main, to .npy and .bvh), .bvh (convert main), prompt files and edit
spans, opt.txt values, checkpoints (VQ, masked transformer, length estimator), VQ meta mean/std, dataset folders,
GloVe files (with pickle payloads), web form values and uploads (DemoService, the page's request logic).
Fails on any crash, hang, silent NaN, executed payload or changed pre-existing file; prints the counts table:
``python -m pytest tests/test_fuzz_inputs.py -q -s``. That it can fail is shown by tests/test_fuzz_validators.py
(slow): one validator per family taken away, the same inputs give crashes, hangs, silent NaN or executed payloads.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fuzz_harness import Case, Fuzz
from fuzz_inputs import (
    Payload,
    edit_section,
    form_value,
    garbage_bytes,
    mutate_bvh,
    mutate_npy,
    opt_text,
    payload_pickle,
    prompt_file,
)
from tiny_runs import MASK_NAME, VQ_NAME, make_tiny_runs

from data.checks import check_dataset, ensure_dataset_ok
from data.layout import DatasetPaths
from data.motion_dataset import load_split_motions
from data.prompts import parse_edit_sections, parse_prompt_file
from data.synthetic import make_tiny_dataset, synthetic_joints
from models.evaluator.word_vectorizer import WordVectorizer
from models.length_estimator import build_length_estimator
from models.transformer.build import RunSampling, VQFacts, load_mask_transformer, load_run_sampling
from models.vq.build import load_rvqvae, load_vq_meta
from options.transformer import MaskTransformerOptions
from options.vq import VQOptions
from utils.checkpoint import load_checkpoint
from utils.motion import extract_features
from utils.skeleton import get_dataset_spec
from visualization import convert
from visualization.bvh import BvhMotion, format_bvh, read_bvh
from visualization.joints2bvh import joints_to_bvh
from visualization.webapp import DemoService, sampling_from_form

SEED = 16
SPEC = get_dataset_spec("t2m")
COUNTS = {
    "motion .npy": 220,
    "motion .bvh": 160,
    "prompts/spans": 160,
    "opt.txt": 120,
    "checkpoint": 130,
    "VQ meta": 80,
    "sampling.json": 60,
    "dataset folder": 80,
    "GloVe": 100,
    "web form": 150,
}
WEB_FIELDS = (
    "prompt",
    "length",
    "seed",
    "steps",
    "guidance",
    "temperature",
    "start (s)",
    "end (s)",
    "upload",
    "model",
    "edit span",
    "estimate length",
)


class Accepted(Exception):
    """Raised by the stub pipeline: the web request passed every check and reached the model."""


@dataclass
class World:
    """Valid templates every generator mutates, and the folder each input gets."""

    root: Path
    marker: Path
    joints: np.ndarray  # (40, 22, 3)
    features: np.ndarray  # (39, 263)
    bvh_motion: BvhMotion
    runs: Path  # tiny runs: <runs>/t2m/{rvq_tiny, mtrans_tiny, length_estimator}
    dataset: Path
    glove: Path

    def case_dir(self, family: str, i: int) -> Path:
        folder = self.root / "cases" / f"{family.split()[0].replace('.', '').replace('/', '')}{i}"
        folder.mkdir(parents=True)
        return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(SEED)
    joints = synthetic_joints(SPEC, 40, rng)
    glove = root / "glove"
    glove.mkdir()
    words = ["unk", "sos", "eos", "walk", "a", "person"]
    np.save(glove / "our_vab_data.npy", rng.normal(size=(len(words), 300)).astype(np.float32))
    (glove / "our_vab_words.pkl").write_bytes(pickle.dumps(words))
    (glove / "our_vab_idx.pkl").write_bytes(pickle.dumps({w: i for i, w in enumerate(words)}))
    return World(
        root,
        root / "PAYLOAD_RAN",
        joints,
        np.asarray(extract_features(joints, SPEC), np.float32),
        joints_to_bvh(joints, SPEC),
        make_tiny_runs(root / "runs", "t2m"),
        make_tiny_dataset(root / "data", "t2m", n_clips=3, seed=SEED),
        glove,
    )


def _finite(*arrays: object) -> str | None:
    for a in arrays:
        values = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        if values.dtype.kind not in "fiu" or not np.isfinite(values).all():
            return f"accepted a result with dtype {values.dtype} or NaN/inf"
    return None


def _numeric_file(path: Path) -> str | None:
    """A complaint when ``path`` is an .npy that no loader may accept (unreadable, non-numeric or 0-d)."""
    if path.suffix != ".npy":
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any failure means the file was garbage
        return f"accepted {path.name}, which np.load cannot read ({exc.__class__.__name__})"
    if arr.dtype.kind not in "fiu" or arr.ndim == 0:
        return f"accepted {path.name}, a {arr.ndim}-d {arr.dtype} array"
    return None


def _module_finite(result: object) -> str | None:
    model = result[0] if isinstance(result, tuple) else result
    return _finite(*[p for p in model.state_dict().values() if p.is_floating_point()])


# ---- families ----------------------------------------------------------------------------------------------
def case_motion_npy(w: World, rng: np.random.Generator, i: int) -> Case:
    folder = w.case_dir("npy", i)
    src = folder / "in.npy"
    src.write_bytes(mutate_npy(rng, w.joints if rng.random() < 0.5 else w.features, w.marker))
    out = folder / ("out.npy" if i % 2 else "out.bvh")
    out.write_bytes(b"previous result")

    def check(_: object) -> str | None:
        if out.suffix == ".npy":
            return _finite(np.load(out))
        try:
            return _finite(read_bvh(out).rotations)
        except ValueError as exc:  # NaN written into the BVH: our own reader refuses it
            return f"wrote a BVH that cannot be read back: {str(exc)[:120]}"

    return Case(
        f"{src.name} -> {out.name}",
        lambda: convert.main([str(src), str(out)]),
        [src.name, out.name],
        check,
        watched=folder,
    )


def _reparented(w: World, rng: np.random.Generator) -> str:
    m = w.bvh_motion
    parents = list(m.parents)
    if rng.random() < 0.5:
        parents = [-1] + [0] * (len(parents) - 1)  # every joint on the root: right names, wrong tree
    else:
        j = int(rng.integers(2, len(parents)))
        parents[j] = int(rng.integers(0, j))
    return format_bvh(replace(m, parents=tuple(parents)))


def case_motion_bvh(w: World, rng: np.random.Generator, i: int) -> Case:
    folder = w.case_dir("bvh", i)
    src = folder / "in.bvh"
    src.write_bytes(mutate_bvh(rng, format_bvh(w.bvh_motion), lambda r: _reparented(w, r)))
    out = folder / "out.npy"
    out.write_bytes(b"previous result")
    return Case(
        f"bvh {i}",
        lambda: convert.main([str(src), str(out)]),
        [src.name, out.name],
        lambda _: _finite(np.load(out)),
        watched=folder,
    )


def case_prompts(w: World, rng: np.random.Generator, i: int) -> Case:
    if i % 2:
        sections = [edit_section(rng) for _ in range(int(rng.integers(1, 3)))]

        def spans_ok(spans: list[tuple[int, int]]) -> str | None:
            return None if all(0 <= s < e <= 20 for s, e in spans) else f"spans {spans} outside 20 tokens"

        return Case(
            f"spans {[s[:20] for s in sections]}",
            lambda: parse_edit_sections(sections, 80, 20.0),
            ["--mask_edit_section"],
            spans_ok,
        )
    path = w.case_dir("prompt", i) / "prompts.txt"
    path.write_bytes(prompt_file(rng))

    def prompts_ok(prompts: list) -> str | None:
        bad = [
            p
            for p in prompts
            if not p.text or len(p.text) > 1000 or (p.frames is not None and not 4 <= p.frames <= 196)
        ]
        return f"accepted {bad[:1]}" if bad else None

    return Case(f"prompt file {i}", lambda: parse_prompt_file(path), [path.name], prompts_ok, watched=path.parent)


def case_opt(w: World, rng: np.random.Generator, i: int) -> Case:
    cls = (VQOptions, MaskTransformerOptions)[i % 2]
    run = VQ_NAME if cls is VQOptions else MASK_NAME
    path = w.case_dir("opt", i) / "opt.txt"
    path.write_bytes(opt_text(rng, (w.runs / "t2m" / run / "opt.txt").read_text()))
    call = (lambda: cls.load(path)) if i % 4 != 2 else (lambda: VQFacts.from_opt_file(path))
    return Case(f"{cls.__name__} opt.txt {i}", call, [str(path)], watched=path.parent)


def _mutated_state(rng: np.random.Generator, state: dict, key: str, w: World) -> bytes | dict:
    """A checkpoint dict with one wrong entry, or the bytes of a broken file."""
    kind = int(rng.integers(9))
    state = {k: (dict(v) if isinstance(v, dict) else v) for k, v in state.items()}
    sd = state[key]
    name = list(sd)[int(rng.integers(len(sd)))]
    if kind == 0:
        state[key] = [list, "weights", 3, None, {}, {1: torch.zeros(1)}, {name: "x"}][int(rng.integers(7))]
    elif kind == 1:
        t = sd[name].clone().float()
        t.view(-1)[int(rng.integers(t.numel()))] = float(rng.choice([np.nan, np.inf]))
        sd[name] = t
    elif kind == 2:
        sd.pop(name) if rng.random() < 0.5 else sd.update({"extra.weight": torch.zeros(2)})
    elif kind == 3:
        sd[name] = torch.zeros(tuple(s + 1 for s in sd[name].shape) or (2,))
    elif kind in (4, 5) and "model_args" in state:
        args = dict(state["model_args"])
        arg = list(args)[int(rng.integers(len(args)))]
        args[arg] = [-1, 0, 10**12, float("inf"), float("nan"), "abc", [None], None, True, 2**70, 1.5][
            int(rng.integers(11))
        ]
        if rng.random() < 0.2:
            args = ["not", "a", "dict"] if rng.random() < 0.5 else {**args, "unknown_arg": 1}
        state["model_args"] = args
    elif kind == 6:
        state.pop("model_args", None)
    elif kind == 7:
        return garbage_bytes(rng, w.marker)
    else:
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        return data[: int(rng.integers(0, len(data)))]
    return state


_STATES: dict[Path, dict] = {}


def _template_state(path: Path, template: Path) -> dict:
    """A fresh copy of a template checkpoint's dict (read once per template)."""
    if template not in _STATES:
        _STATES[template] = torch.load(template, weights_only=True)
    return {
        k: (
            {n: t.clone() for n, t in v.items()}
            if isinstance(v, dict) and k != "model_args"
            else (dict(v) if isinstance(v, dict) else v)
        )
        for k, v in _STATES[template].items()
    }


def case_checkpoint(w: World, rng: np.random.Generator, i: int) -> Case:
    folder = w.case_dir("checkpoint", i)
    for name in (VQ_NAME, MASK_NAME, "length_estimator")[: (i % 3) + 1]:  # the run loaded and those it reads
        shutil.copytree(w.runs / "t2m" / name, folder / "t2m" / name)
    run, file, key, load = [
        (VQ_NAME, "net_best_fid.tar", "vq_model", lambda p: load_rvqvae(p.parent.parent)),
        (
            MASK_NAME,
            "latest.tar",
            "t2m_transformer",
            lambda p: load_mask_transformer(p.parent.parent, vq_dir=folder / "t2m" / VQ_NAME),
        ),
        ("length_estimator", "finest.tar", "estimator", lambda p: build_length_estimator(load_checkpoint(p), str(p))),
    ][i % 3]
    path = folder / "t2m" / run / "model" / file
    mutated = _mutated_state(rng, _template_state(path, w.runs / "t2m" / run / "model" / file), key, w)
    if isinstance(mutated, bytes):
        path.write_bytes(mutated)
    elif rng.random() < 0.1:
        torch.save({**mutated, "payload": Payload(w.marker, "system")}, path)
    else:
        torch.save(mutated, path)
    return Case(f"{run}/{file} {i}", lambda: load(path), [folder.name], _module_finite, watched=folder)


def case_vq_meta(w: World, rng: np.random.Generator, i: int) -> Case:
    folder = w.case_dir("meta", i)
    run = folder / VQ_NAME
    shutil.copytree(w.runs / "t2m" / VQ_NAME / "meta", run / "meta")
    target = run / "meta" / ("std.npy" if i % 2 else "mean.npy")
    base = np.load(target)
    kind = int(rng.integers(3))
    target.write_bytes(mutate_npy(rng, base, w.marker) if kind else np.zeros(0).tobytes())
    if kind == 2:
        np.save(target, np.where(rng.random(base.shape) < 0.1, rng.choice([0.0, -1.0, np.nan]), base))

    def sound(result: tuple) -> str | None:
        mean, std = result
        return _finite(mean, std) or (
            None
            if mean.shape == std.shape == (263,) and (std > 0).all()
            else f"accepted stats {mean.shape} {std.shape}"
        )

    return Case(
        f"{target.name} {i}", lambda: load_vq_meta(run), [str(target), str(run / "meta")], sound, watched=folder
    )


def case_sampling_json(w: World, rng: np.random.Generator, i: int) -> Case:
    """A masked-transformer run's sampling.json (its decoding margin and guidance): broken files and wrong
    values."""
    folder = w.case_dir("sampling", i)
    target = folder / "sampling.json"
    kind = int(rng.integers(4))
    if kind == 0:
        target.write_bytes(garbage_bytes(rng, w.marker))
    else:
        key = ["margin", "cond_scale"][int(rng.integers(2))]
        value = [-1, 0, 3, 49, 50, 1.5, "3", None, True, 10**30, [3], {"k": 1}, float("nan"), float("inf")][
            int(rng.integers(14))
        ]
        doc: object = {key: value}
        if kind == 2:
            doc = {key: value, ["temperature", "Margin", ""][int(rng.integers(3))]: 2}
        elif kind == 3:
            doc = [[value], value, "margin", {}][int(rng.integers(4))]
        text = json.dumps(doc)
        target.write_text(text[: int(rng.integers(1, len(text) + 1))] if rng.random() < 0.2 else text)

    def sound(run: object) -> str | None:
        ok = isinstance(run, RunSampling) and type(run.margin) is int and 0 <= run.margin <= 49
        ok = ok and type(run.cond_scale) is float and 0 <= run.cond_scale <= 100
        return None if ok else f"accepted {run!r}"

    return Case(f"sampling.json {i}", lambda: load_run_sampling(folder), [str(target)], sound, watched=folder)


def case_dataset(w: World, rng: np.random.Generator, i: int) -> Case:
    root = w.dataset
    files = sorted(p for p in root.rglob("*") if p.is_file())
    target = files[int(rng.integers(len(files)))]
    original = target.read_bytes()
    if target.suffix == ".npy":
        target.write_bytes(mutate_npy(rng, np.load(target), w.marker))
    else:
        lines = original.decode().splitlines() or [""]
        k = int(rng.integers(len(lines)))
        lines[k] = str(
            rng.choice(
                [
                    "",
                    "x#y",
                    "a#b/NOUN#inf#1",
                    "a#b/NOUN#1e400#2",
                    "a#b#-1#0",
                    "000001\x00",
                    "nope",
                    "a" * 5000,
                    "a#b/NOUN#nan#nan",
                ]
            )
        )
        target.write_bytes("\n".join(lines).encode() + (b"\xff" if rng.random() < 0.2 else b""))

    def call() -> list:
        problems = check_dataset(root, SPEC, check_values=True)  # reports, never raises
        assert isinstance(problems, list)
        ensure_dataset_ok(root, SPEC)
        DatasetPaths(root).load_mean_std()
        return load_split_motions(DatasetPaths(root), "train", SPEC, 1)[1]

    return Case(
        f"dataset {target.name} {i}",
        call,
        [target.name, str(root)],
        lambda m: _finite(*m) or _numeric_file(target),
        watched=root,
        after=lambda: target.write_bytes(original),
    )


def case_glove(w: World, rng: np.random.Generator, i: int) -> Case:
    folder = w.case_dir("glove", i)
    shutil.copytree(w.glove, folder, dirs_exist_ok=True)
    target = folder / ["our_vab_words.pkl", "our_vab_idx.pkl", "our_vab_data.npy"][i % 3]
    if target.suffix == ".npy":
        target.write_bytes(mutate_npy(rng, np.load(target), w.marker))
    else:
        wrong = [
            payload_pickle(rng, w.marker),
            garbage_bytes(rng, w.marker),
            pickle.dumps({"unk": 0}),
            pickle.dumps([1, 2]),
            pickle.dumps({"unk": "0"}),
            pickle.dumps({"unk": True}),
            pickle.dumps({"unk": 10**6}),
            pickle.dumps({1: 0}),
            pickle.dumps(["walk"]),
            pickle.dumps({"unk": np.int64(0)}),
            pickle.dumps(("unk",)),
            pickle.dumps([["unk"]]),
        ]
        target.write_bytes(wrong[int(rng.integers(len(wrong)))])
    return Case(
        f"{target.name} {i}",
        lambda: WordVectorizer(folder),
        [target.name, "our_vab"],
        lambda v: _finite(v["walk/VERB"][0]),
        watched=folder,
    )


def case_web(w: World, rng: np.random.Generator, i: int) -> Case:
    folder = w.case_dir("web", i)

    def refuse(*args: object, **kwargs: object) -> None:
        raise Accepted()

    stub = SimpleNamespace(
        spec=SPEC,
        length_estimator=None if rng.random() < 0.5 else object(),
        generate=refuse,
        edit=refuse,
        warn_if_unfamiliar=lambda captions: [],
    )
    service = DemoService({"tiny": stub}, folder / "work")
    label = ["tiny", "other", "", None][int(rng.integers(4)) if rng.random() < 0.2 else 0]
    prompt = ["a person walks", "", "  ", "a" * 2000, "\x00", 5][int(rng.integers(6)) if rng.random() < 0.4 else 0]
    form = [form_value(rng) if rng.random() < 0.3 else d for d in (18, 4.0, 5.0, 1.0)]
    if i % 2:
        upload = folder / ["upload.npy", "upload.bvh", "upload.txt", "upload"][int(rng.integers(4))]
        if upload.suffix == ".bvh":
            upload.write_bytes(mutate_bvh(rng, format_bvh(w.bvh_motion), lambda r: _reparented(w, r)))
        else:
            upload.write_bytes(mutate_npy(rng, w.features if rng.random() < 0.7 else w.joints, w.marker))
        start, end = (form_value(rng) if rng.random() < 0.5 else d for d in (0.5, 1.0))

        def request() -> None:
            service.edit(
                label,
                upload,
                prompt,
                start,
                end,
                form_value(rng) if rng.random() < 0.2 else 1,
                sampling_from_form(*form),
            )
    else:
        frames, estimate = (form_value(rng) if rng.random() < 0.5 else 60), bool(rng.random() < 0.3)

        def request() -> None:
            service.generate(
                label, prompt, frames, estimate, form_value(rng) if rng.random() < 0.2 else 1, sampling_from_form(*form)
            )

    def call() -> None:
        try:
            request()
        except Accepted:
            return None

    return Case(
        f"web {'edit' if i % 2 else 'generate'} {i}", call, WEB_FIELDS, forbidden=["--", str(folder)], watched=folder
    )


FAMILIES = {
    "motion .npy": case_motion_npy,
    "motion .bvh": case_motion_bvh,
    "prompts/spans": case_prompts,
    "opt.txt": case_opt,
    "checkpoint": case_checkpoint,
    "VQ meta": case_vq_meta,
    "sampling.json": case_sampling_json,
    "dataset folder": case_dataset,
    "GloVe": case_glove,
    "web form": case_web,
}


def run_fuzz(world: World, counts: dict[str, int] = COUNTS, time_limit_s: float = 10.0) -> Fuzz:
    """The first ``counts[family]`` seeded inputs of each family through the harness."""
    shutil.rmtree(world.root / "cases", ignore_errors=True)  # each run makes its own input folders
    fuzz = Fuzz(marker=world.marker, time_limit_s=time_limit_s)
    for k, (family, n) in enumerate(counts.items()):
        rng = np.random.default_rng([SEED, k])
        for i in range(n):
            fuzz.run(family, FAMILIES[family](world, rng, i))
    return fuzz


def test_fuzz_every_input_boundary(world: World, one_thread: None) -> None:
    fuzz = run_fuzz(world)
    table = fuzz.table()
    print("\n" + table)
    total = sum(c["inputs"] for c in fuzz.counts.values())
    assert total >= 1000
    assert fuzz.failures() == 0, table + "\n" + "\n".join(fuzz.examples)
    for family, c in fuzz.counts.items():  # each family really exercises its validators
        assert c["clean"] >= c["inputs"] // 3, f"{family}: only {c['clean']} of {c['inputs']} inputs were refused"
