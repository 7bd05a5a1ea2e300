"""BVH text files: read, write, forward kinematics (docs/export.md#joints-to-bvh for the official layout).

A :class:`BvhMotion` holds the hierarchy (names, parents, rest offsets, channel lists, End Site offsets) and
the per-frame channel values split into Euler rotations (degrees, in each joint's own channel order) and
translations. Conventions, as in the official reader and Blender: a joint's local translation is its OFFSET,
except that position channels (normally only on the root) *replace* it; rotation channels listed as
``Zrotation Yrotation Xrotation`` mean ``R = Rz · Ry · Rx`` (order ``"zyx"``); global = parent global ∘ local.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.checkpoint import atomic_write
from utils.npy import check_output
from utils.quaternion import euler_to_quat, qmul, qrot

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")


@dataclass(frozen=True)
class BvhMotion:
    """A parsed BVH file. J joints (End Sites excluded), T frames."""

    names: tuple[str, ...]
    parents: tuple[int, ...]  # -1 for the root; parents[j] < j (depth-first file order)
    offsets: np.ndarray  # (J, 3) rest offsets from the parent joint
    channels: tuple[tuple[str, ...], ...]  # per joint, in file order, e.g. ("Zrotation", "Yrotation", "Xrotation")
    rotations: np.ndarray  # (T, J, 3) Euler angles in degrees, in rotation_order(j) order
    positions: np.ndarray  # (T, J, 3) local translations (offset, or position channels if any)
    frame_time: float  # seconds per frame
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)  # joint -> End Site offset (3,)

    def __post_init__(self) -> None:
        j = len(self.names)
        if len(self.parents) != j or len(self.channels) != j or self.offsets.shape != (j, 3):
            raise ValueError(
                f"BVH hierarchy is inconsistent: {j} names, {len(self.parents)} parents, "
                f"{len(self.channels)} channel lists, offsets {self.offsets.shape}"
            )
        if self.rotations.shape != self.positions.shape or self.rotations.shape[1:] != (j, 3):
            raise ValueError(
                f"BVH frames must be (T, {j}, 3): rotations {self.rotations.shape}, positions {self.positions.shape}"
            )
        if any(p >= i for i, p in enumerate(self.parents)) or self.parents[0] != -1:
            raise ValueError("BVH joints must be in depth-first order with the root first")
        if not self.frame_time > 0:
            raise ValueError(f"BVH frame time must be positive, got {self.frame_time}")

    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    def rotation_order(self, joint: int) -> str:
        """Euler order of a joint's rotation channels, e.g. ``"zyx"``; joints without them get ``"zyx"``."""
        order = "".join(c[0].lower() for c in self.channels[joint] if c in ROTATION_CHANNELS)
        return order if len(order) == 3 else "zyx"


# ----------------------------------------------------------------------------------------------------------------
# Reading

MAX_BVH_BYTES = 256 * 2**20
MAX_CHANNELS = 6  # per joint: at most three position and three rotation channels
_COUNT = re.compile(r"\d{1,9}")


def _number(tok: str, what: str) -> float:
    try:
        value = float(tok)
    except ValueError:
        raise ValueError(f"{what} must be a number, found {tok[:40]!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"{what} must be finite, found {tok[:40]!r}")
    return value


def _parse_hierarchy(
    tokens: list[str],
) -> tuple[list[str], list[int], np.ndarray, list[tuple[str, ...]], dict[int, np.ndarray]]:
    """Joints of the HIERARCHY tokens (after the keyword). Every step moves the cursor forward, so any input
    ends in at most ``len(tokens)`` steps; every structural mistake is a ``ValueError``."""
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    end_sites: dict[int, np.ndarray] = {}
    stack: list[int] = []  # open blocks: joint index, or -2 for an End Site
    pending: int | None = None  # the block the next "{" opens
    has_offset: set[int] = set()
    seen: set[str] = set()
    i = 0

    def take(k: int, what: str) -> list[str]:
        if i + k > len(tokens):
            raise ValueError(f"file ends inside {what}")
        return tokens[i : i + k]

    while i < len(tokens):
        tok = tokens[i]
        top = stack[-1] if stack else None
        if pending is not None and tok != "{":
            raise ValueError(
                f"expected '{{' after {'End Site' if pending == -2 else repr(names[pending])}, found {tok[:40]!r}"
            )
        if tok in ("ROOT", "JOINT"):
            if (tok == "ROOT") != (not names) or (tok == "JOINT" and (top is None or top < 0)):
                raise ValueError(f"{tok} is not allowed here (one ROOT first; JOINTs only inside a joint)")
            (name,) = take(2, f"{tok} line")[1:]
            if name in seen:
                raise ValueError(f"joint name {name[:40]!r} appears twice")
            seen.add(name)
            names.append(name)
            parents.append(-1 if top is None else top)
            offsets.append([0.0, 0.0, 0.0])
            channels.append(())
            pending = len(names) - 1
            i += 2
        elif tok == "End":
            if take(2, "End Site line")[1] != "Site" or top is None or top < 0:
                raise ValueError("'End' must read 'End Site' and sit inside a joint")
            pending = -2
            i += 2
        elif tok == "{":
            if pending is None:
                raise ValueError("'{' without a ROOT, JOINT or End Site before it")
            stack.append(pending)
            pending = None
            i += 1
        elif tok == "}":
            if top is None:
                raise ValueError("'}' without a matching '{'")
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            if top is None or top in has_offset:
                raise ValueError("OFFSET outside a joint, or twice in one joint")
            what = "End Site OFFSET" if top == -2 else f"OFFSET of joint {names[top]!r}"
            value = [_number(v, what) for v in take(4, what)[1:]]
            if top == -2:
                end_sites[stack[-2]] = np.array(value)
            else:
                offsets[top] = value
                has_offset.add(top)
            i += 4
        elif tok == "CHANNELS":
            if top is None or top < 0 or channels[top]:
                raise ValueError("CHANNELS outside a joint, or twice in one joint")
            count = take(2, "CHANNELS line")[1]
            if not _COUNT.fullmatch(count) or int(count) > MAX_CHANNELS:
                raise ValueError(
                    f"CHANNELS count of joint {names[top]!r} must be 0..{MAX_CHANNELS}, found {count[:40]!r}"
                )
            chans = tuple(take(2 + int(count), "CHANNELS line")[2:])
            unknown = [c for c in chans if c not in POSITION_CHANNELS + ROTATION_CHANNELS]
            if unknown:
                raise ValueError(f"joint {names[top]!r} has unknown channels {unknown[:6]}")
            if len(set(chans)) != len(chans):
                raise ValueError(f"joint {names[top]!r} repeats a channel: {list(chans)}")
            if sum(c in ROTATION_CHANNELS for c in chans) not in (0, 3):
                raise ValueError(
                    f"joint {names[top]!r} has channels {list(chans)}: rotations need all three axes or none"
                )
            channels[top] = chans
            i += 2 + int(count)
        else:
            raise ValueError(f"unexpected token {tok[:40]!r}")
    if not names or stack or pending is not None:
        raise ValueError("no joints, or unbalanced braces")
    return names, parents, np.array(offsets, dtype=np.float64), channels, end_sites


def parse_bvh(text: str, source: str = "<string>") -> BvhMotion:
    """Parse BVH text (any channel orders, any number of position channels, End Sites).

    Work and memory are bounded by the text's length (frame counts are checked against the values present);
    any malformed input raises a ``ValueError`` naming ``source``."""
    tokens = text.split()
    if not tokens or tokens[0] != "HIERARCHY":
        raise ValueError(f"{source}: not a BVH file (does not start with HIERARCHY)")
    if "MOTION" not in tokens:
        raise ValueError(f"{source}: not a BVH file (no MOTION section)")
    split = tokens.index("MOTION")
    try:
        names, parents, offsets_arr, channels, end_sites = _parse_hierarchy(tokens[1:split])
    except ValueError as exc:
        raise ValueError(f"{source}: malformed BVH hierarchy: {exc}") from None
    motion = tokens[split + 1 :]
    if motion[:1] != ["Frames:"] or motion[2:4] != ["Frame", "Time:"] or len(motion) < 5:
        raise ValueError(f"{source}: MOTION section must start with 'Frames: N' and 'Frame Time: seconds'")
    if not _COUNT.fullmatch(motion[1]):
        raise ValueError(f"{source}: 'Frames:' must be a whole number (at most 9 digits), found {motion[1][:40]!r}")
    num_frames = int(motion[1])
    try:
        frame_time = _number(motion[4], "Frame Time")
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    if frame_time <= 0:
        raise ValueError(f"{source}: Frame Time must be positive, found {motion[4]!r}")
    width = sum(len(c) for c in channels)
    if width == 0:
        raise ValueError(f"{source}: no joint has CHANNELS, so there is no motion to read")
    body = motion[5:]
    if len(body) != num_frames * width:
        raise ValueError(
            f"{source}: expected {num_frames} frames x {width} channels = {num_frames * width} values, "
            f"found {len(body)}"
        )
    try:
        values = np.array(body, dtype=np.float64).reshape(num_frames, width)
    except ValueError:
        bad = next(v for v in body if not _is_float(v))
        raise ValueError(f"{source}: frame values must be numbers, found {bad[:40]!r}") from None
    if not np.isfinite(values).all():
        raise ValueError(f"{source}: frame values contain NaN or infinity")
    rotations = np.zeros((num_frames, len(names), 3))
    positions = np.repeat(offsets_arr[None], num_frames, axis=0)
    col = 0
    for j, chans in enumerate(channels):
        rot_k = 0
        for c in chans:
            if c in POSITION_CHANNELS:
                positions[:, j, POSITION_CHANNELS.index(c)] = values[:, col]
            else:
                rotations[:, j, rot_k] = values[:, col]
                rot_k += 1
            col += 1
    return BvhMotion(
        tuple(names), tuple(parents), offsets_arr, tuple(channels), rotations, positions, frame_time, end_sites
    )


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_bvh(path: str | os.PathLike[str]) -> BvhMotion:
    """Read a BVH file (ASCII/UTF-8 text, at most :data:`MAX_BVH_BYTES`); see :func:`parse_bvh`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BVH file {path} not found")
    size = path.stat().st_size
    if size > MAX_BVH_BYTES:
        raise ValueError(f"BVH file {path} is {size} bytes; the limit is {MAX_BVH_BYTES}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"BVH file {path} is not text (byte {exc.start} is not ASCII/UTF-8)") from None
    return parse_bvh(text, source=str(path))


# ----------------------------------------------------------------------------------------------------------------
# Writing


def format_bvh(motion: BvhMotion, precision: int = 6) -> str:
    """BVH text in the official layout (tab indentation, ``%f`` numbers, End Sites as in the hierarchy)."""
    fmt = f"%.{precision}f"
    children: dict[int, list[int]] = {j: [] for j in range(len(motion.names))}
    for j, p in enumerate(motion.parents):
        if p >= 0:
            children[p].append(j)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        tab = "\t" * depth
        lines.append(f"{tab}{'ROOT' if depth == 0 else 'JOINT'} {motion.names[j]}")
        lines.append(f"{tab}{{")
        lines.append(f"{tab}\tOFFSET " + " ".join(fmt % v for v in motion.offsets[j]))
        chans = motion.channels[j]
        # QUIRK(reference): the official template's root CHANNELS line ends with a space; kept for byte-identity.
        trailing = " " if depth == 0 else ""
        lines.append(f"{tab}\tCHANNELS {len(chans)} {' '.join(chans)}{trailing}")
        for c in children[j]:
            emit(c, depth + 1)
        if j in motion.end_sites:
            lines.append(f"{tab}\tEnd Site")
            lines.append(f"{tab}\t{{")
            lines.append(f"{tab}\t\tOFFSET " + " ".join(fmt % v for v in motion.end_sites[j]))
            lines.append(f"{tab}\t}}")
        lines.append(f"{tab}}}")

    emit(0, 0)
    lines += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {motion.frame_time:f}"]
    columns = []
    for j, chans in enumerate(motion.channels):
        rot_k = 0
        for c in chans:
            if c in POSITION_CHANNELS:
                columns.append(motion.positions[:, j, POSITION_CHANNELS.index(c)])
            else:
                columns.append(motion.rotations[:, j, rot_k])
                rot_k += 1
    values = np.stack(columns, axis=1) if columns else np.zeros((motion.num_frames, 0))
    # QUIRK(reference): official frame lines end with a space too.
    row = (fmt + " ") * values.shape[1] + "\n"
    body = "".join(row % tuple(r) for r in values.tolist())
    return "\n".join(lines) + "\n" + body


def write_bvh(path: str | os.PathLike[str], motion: BvhMotion, precision: int = 6) -> Path:
    """Write ``motion`` to ``path`` atomically (a temporary file renamed into place); NaN/inf are refused
    before anything is written."""
    path = Path(path)
    for values in (motion.offsets, motion.rotations, motion.positions, *motion.end_sites.values()):
        check_output(values, path, "BVH")
    with atomic_write(path) as tmp:
        tmp.write_text(format_bvh(motion, precision))
    return path


# ----------------------------------------------------------------------------------------------------------------
# Kinematics


def continuous_euler(degrees: np.ndarray) -> np.ndarray:
    """Make Euler angle tracks (T, ..., 3) in degrees continuous over time (axis 0), same rotations.

    Every Tait-Bryan triple ``(a, b, c)`` has a twin ``(a + 180, 180 - b, c + 180)``. A frame switches to the
    other branch when the twin is closer to the previous frame (parity by cumulative sum, as ``qfix`` does for
    quaternion signs), then each channel is unwrapped by multiples of 360. Vectorised, no loop over frames.
    """
    a = np.asarray(degrees, dtype=np.float64)
    twin = np.stack([a[..., 0] + 180.0, 180.0 - a[..., 1], a[..., 2] + 180.0], axis=-1)
    wrap = lambda x: (x + 180.0) % 360.0 - 180.0  # noqa: E731
    stay = (wrap(a[1:] - a[:-1]) ** 2).sum(-1)
    switch = (wrap(twin[1:] - a[:-1]) ** 2).sum(-1)
    branch = np.concatenate([np.zeros_like(stay[:1], dtype=np.int64), np.cumsum(switch < stay, axis=0) % 2], axis=0)[
        ..., None
    ]
    chosen = np.where(branch == 1, twin, a)
    return np.unwrap(chosen, period=360.0, axis=0)


def local_quaternions(motion: BvhMotion) -> np.ndarray:
    """Local joint rotations as unit quaternions (w, x, y, z): (T, J, 4)."""
    radians = np.deg2rad(motion.rotations)
    out = np.empty(radians.shape[:2] + (4,))
    for order in sorted({motion.rotation_order(j) for j in range(len(motion.names))}):
        idx = [j for j in range(len(motion.names)) if motion.rotation_order(j) == order]
        out[:, idx] = euler_to_quat(radians[:, idx], order)
    return out


def forward_kinematics(motion: BvhMotion) -> tuple[np.ndarray, np.ndarray]:
    """Global joint positions (T, J, 3) and global rotations (T, J, 4) of every frame."""
    local = local_quaternions(motion)
    glob_q = np.empty_like(local)
    glob_p = np.empty_like(motion.positions)
    for j, p in enumerate(motion.parents):
        if p < 0:
            glob_q[:, j] = local[:, j]
            glob_p[:, j] = motion.positions[:, j]
        else:
            glob_q[:, j] = qmul(glob_q[:, p], local[:, j])
            glob_p[:, j] = glob_p[:, p] + qrot(glob_q[:, p], motion.positions[:, j])
    return glob_p, glob_q


def global_positions(motion: BvhMotion) -> np.ndarray:
    """Global joint positions (T, J, 3) in the file's units."""
    return forward_kinematics(motion)[0]
