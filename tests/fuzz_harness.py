"""Harness of the input fuzz test: run one generated input, classify what happened.

An input is a :class:`Case`: a call into the project's real parser/loader/CLI ``main`` plus what the error
message must name (the file or flag). Outcomes, per family:

- ``clean``: a user error (``utils.cli.USER_ERRORS``) whose first line names the input (one of ``names``);
- ``accepted``: no error, and ``check`` found the result sound (finite, right shape);
- ``crashes``: any other exception, or a user error that does not say which input it is about;
- ``hangs``: the call ran past the per-input time bound;
- ``silent``: accepted, but the result (or a written file) holds NaN/inf or the wrong shape;
- ``executed``: a pickle payload's marker file appeared;
- ``clobbered``: after an error, a file under the watched folder changed, appeared or vanished.
"""

from __future__ import annotations

import hashlib
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.cli import USER_ERRORS

FAILURES = ("crashes", "hangs", "silent", "executed", "clobbered")
COLUMNS = ("inputs", "clean", "accepted", *FAILURES)


class Hang(Exception):
    """Raised by the alarm when an input runs past its time bound."""


@dataclass
class Case:
    """One generated input. ``call`` returns the result checked by ``check`` (None = sound, else a complaint)."""

    label: str
    call: Callable[[], Any]
    names: Sequence[str]  # the error message must contain one of these
    check: Callable[[Any], str | None] = lambda result: None
    forbidden: Sequence[str] = ()  # the message must contain none of these (web: CLI flags, paths)
    watched: Path | None = None  # files here must stay as they were when the input is refused
    after: Callable[[], None] = lambda: None  # restores shared fixtures mutated for this input


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder`` (links are not followed)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class Fuzz:
    """Runs cases, counts outcomes per family, keeps a few examples of every failure."""

    marker: Path  # created by a pickle payload that managed to run
    time_limit_s: float = 10.0
    counts: dict[str, Counter] = field(default_factory=dict)
    seconds: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def run(self, family: str, case: Case) -> str:
        counts = self.counts.setdefault(family, Counter({c: 0 for c in COLUMNS}))
        counts["inputs"] += 1
        before = snapshot(case.watched) if case.watched else {}
        start = time.perf_counter()
        try:
            outcome, detail = self._call(case)
            if outcome == "clean" and case.watched and snapshot(case.watched) != before:
                outcome, detail = "clobbered", _diff(before, snapshot(case.watched))
        finally:
            case.after()
            self.seconds[family] += time.perf_counter() - start
        if self.marker.exists():
            self.marker.unlink()
            outcome, detail = "executed", "a pickle payload ran"
        counts[outcome] += 1
        if outcome in FAILURES and len(self.examples) < 30:
            self.examples.append(f"[{family}] {case.label}: {outcome}: {detail}")
        return outcome

    def _call(self, case: Case) -> tuple[str, str]:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, self.time_limit_s)
        try:  # the outer handler also catches an alarm that fires while an inner handler runs
            try:
                result = case.call()
            except USER_ERRORS as exc:
                return _judge_message(exc, case)
            except SystemExit as exc:  # argparse's own exit: a usage error names its flag
                return ("clean", "") if exc.code == 2 else ("crashes", f"SystemExit({exc.code})")
            except Hang:
                raise
            except BaseException as exc:  # noqa: BLE001 - counting every other exception is the point
                return "crashes", f"{exc.__class__.__name__}: {str(exc)[:200]} @ {_where(exc)}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except Hang:
            return "hangs", f"still running after {self.time_limit_s} s"
        finally:
            signal.signal(signal.SIGALRM, previous)
        complaint = case.check(result)
        return ("silent", complaint) if complaint else ("accepted", "")

    def table(self) -> str:
        rows = [f"{'family':<16}" + "".join(f"{c:>10}" for c in COLUMNS) + f"{'seconds':>10}"]
        total: Counter = Counter()
        for family, counts in self.counts.items():
            rows.append(
                f"{family:<16}" + "".join(f"{counts[c]:>10}" for c in COLUMNS) + f"{self.seconds[family]:>10.1f}"
            )
            total.update(counts)
        rows.append(
            f"{'total':<16}" + "".join(f"{total[c]:>10}" for c in COLUMNS) + f"{sum(self.seconds.values()):>10.1f}"
        )
        return "\n".join(rows)

    def failures(self) -> int:
        return sum(counts[c] for counts in self.counts.values() for c in FAILURES)


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


def _judge_message(exc: BaseException, case: Case) -> tuple[str, str]:
    message = str(exc)
    first = message.splitlines()[0] if message else ""
    if not any(name in first for name in case.names):
        return "crashes", f"unclear {exc.__class__.__name__} (names none of {list(case.names)[:3]}): {first[:200]}"
    bad = [word for word in case.forbidden if word in message]
    if bad:
        return "crashes", f"message shows {bad}: {first[:200]}"
    return "clean", ""


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


def _diff(before: dict[str, str], after: dict[str, str]) -> str:
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return f"files changed: {changed[:5]}"
