"""Options dataclasses <-> command line <-> opt.txt (the official file format, docs/checkpoints.md#opttxt)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from options.base import OPT_FOOTER, OPT_HEADER, opt, read_opt_file
from options.common import CommonOptions


@dataclass
class _Demo(CommonOptions):
    milestones: list[int] = opt([150000, 250000], "LR milestones")
    lr: float = opt(2e-4, "learning rate")
    share_weight: bool = opt(False, "tie weights")
    vq_norm: str | None = opt(None, "norm")


def test_parse_defaults_and_flags() -> None:
    o = _Demo.parse(["--name", "run", "--milestones", "10", "20", "--share_weight", "--lr", "1e-3"])
    assert (o.name, o.milestones, o.share_weight, o.lr) == ("run", [10, 20], True, 1e-3)
    assert _Demo.parse([]).milestones == [150000, 250000]
    assert _Demo.parse(["--no-share_weight"]).share_weight is False


def test_opt_txt_round_trip(tmp_path: Path) -> None:
    o = _Demo.parse(["--name", "run", "--milestones", "7", "--lr", "1e-05", "--vq_norm", "None"])
    o.save(tmp_path / "opt.txt", is_train=True)
    lines = (tmp_path / "opt.txt").read_text().splitlines()
    assert lines[0] == OPT_HEADER and lines[-1] == OPT_FOOTER
    keys = [line.split(": ")[0] for line in lines[1:-1]]
    assert keys == sorted(keys) and "is_train" in keys
    back = _Demo.load(tmp_path / "opt.txt")
    assert back.to_dict() == {**o.to_dict(), "is_train": "True"}
    assert back.milestones == [7] and back.lr == 1e-5 and back.vq_norm is None


def test_official_opt_txt_is_read_and_unknown_keys_kept(fixture_dir: Path) -> None:
    path = fixture_dir / "checkpoints/t2m/t2m_nlayer2_nhead2_ld64_ff128_cdp0.1/opt.txt"
    o = _Demo.load(path)
    assert o.name == "t2m_nlayer2_nhead2_ld64_ff128_cdp0.1" and o.dataset_name == "t2m"
    raw = read_opt_file(path)
    assert o.extra["vq_name"] == raw["vq_name"] == "rvq_nq6_dc64_nc32_w64"
    assert o.extra["gpu_id"] == "-1"


def test_bad_values_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset_name 'humanml4'"):
        _Demo.parse(["--dataset_name", "humanml4"])
    (tmp_path / "opt.txt").write_text(f"{OPT_HEADER}\nlr: fast\n{OPT_FOOTER}\n")
    with pytest.raises(ValueError, match="option 'lr': expected a number, got 'fast'"):
        _Demo.load(tmp_path / "opt.txt")
    with pytest.raises(FileNotFoundError, match="opt.txt"):
        _Demo.load(tmp_path / "missing" / "opt.txt")


def _option_classes() -> list[type]:
    import importlib
    import inspect

    from options.base import Options

    modules = [
        importlib.import_module(f"options.{m}")
        for m in ("common", "vq", "transformer", "length_estimator", "eval", "sampling", "generate")
    ]
    return sorted(
        {
            c
            for m in modules
            for _, c in inspect.getmembers(m, inspect.isclass)
            if issubclass(c, Options) and c is not Options
        },
        key=lambda c: c.__name__,
    )


def test_every_option_is_declared_once_and_overridden_by_name() -> None:
    """A group's option is declared in one class; stages only change its default with override(), which keeps
    the group's help text."""
    for cls in _option_classes():
        own = cls.__dict__.get("__annotations__", {})
        for name in own:
            inherited = [b.__name__ for b in cls.__mro__[1:] if name in getattr(b, "__dataclass_fields__", {})]
            if inherited:
                assert cls.__dataclass_fields__[name].metadata.get("override"), (cls.__name__, name, inherited)
    from options.vq import VQOptions

    helps = {f.name: f.metadata["help"] for f in VQOptions._fields()}
    assert helps["batch_size"].startswith("global optimisation batch") and VQOptions().batch_size == 256


def test_override_of_an_undeclared_option_is_an_error() -> None:
    from options.base import override

    @dataclass
    class _Bad(CommonOptions):
        no_such_option: int = override(3)

    with pytest.raises(TypeError, match="no_such_option"):
        _Bad.parser()
