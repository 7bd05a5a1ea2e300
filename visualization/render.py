"""Stick-figure video of a joint sequence (docs/export.md#stick-figure-video), fast.

The picture is the official one: a 3D view (elev 120, azim -90, zoom 10/7.5) of a box with limits
x [-r/2, r/2], y [0, r], z [0, r]; a grey floor quad under the motion's XZ extent, the past root trajectory in
blue on the floor, the kinematic chains in the official colours, the caption wrapped as a suptitle, and the
camera following the root. Unlike the official code, matplotlib draws the static figure only ONCE per video
(caption, empty axes) and hands over its exact 3D projection; every frame is then projected with one matrix
product and drawn with Pillow (supersampled for anti-aliasing), and raw frames are piped to ffmpeg.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageColor, ImageDraw

from utils.checkpoint import atomic_write
from utils.motion import check_joints
from utils.skeleton import DatasetSpec

if TYPE_CHECKING:
    import argparse

    from visualization.convert import Motion

logger = logging.getLogger(__name__)

OFFICIAL_SIZE = 1000  # px: the official 10 x 10 in figure at 100 dpi
DEFAULT_SIZE = 512  # px: default output (even, so yuv420p needs no padding)
# x264 speed/size trade-off of our mp4s; the official writer (matplotlib's ffmpeg) gets x264's default "medium".
X264_PRESET = "ultrafast"
CHAIN_COLORS = ("red", "blue", "black", "red", "blue") + ("darkblue",) * 5 + ("darkred",) * 5
FLOOR_RGBA = (0.5, 0.5, 0.5, 0.5)
TRAJECTORY_COLOR = "blue"
VIEW_ELEV, VIEW_AZIM, VIEW_ZOOM = (
    120.0,
    -90.0,
    10.0 / 7.5,
)  # official ax.dist = 7.5 -> zoom 10/7.5 (docs/quirks.md#modern-dependencies, item 12)


def wrap_title(title: str) -> str:
    """Official caption wrapping: a line break after word 10, another after word 20 (for >10 / >20 words)."""
    words = title.split(" ")
    if len(words) > 20:
        return "\n".join([" ".join(words[:10]), " ".join(words[10:20]), " ".join(words[20:])])
    if len(words) > 10:
        return "\n".join([" ".join(words[:10]), " ".join(words[10:])])
    return title


@dataclass(frozen=True)
class Camera:
    """Fixed projection of one video: data (x, y, z) -> pixel (column, row) of a ``size`` x ``size`` image."""

    proj: np.ndarray  # (4, 4) matplotlib's 3D projection (data -> 2D axes data coordinates)
    to_pixels: np.ndarray  # (3, 3) affine: 2D axes data -> display pixels (origin bottom-left)
    size: int
    clip: tuple[int, int, int, int]  # axes box (x0, y0, x1, y1) in pixels: matplotlib clips the plot to it

    def project(self, points: np.ndarray) -> np.ndarray:
        """points (..., 3) -> pixel coordinates (..., 2), x to the right, y downwards."""
        homo = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1) @ self.proj.T
        xy = homo[..., :2] / homo[..., 3:4]
        disp = xy @ self.to_pixels[:2, :2].T + self.to_pixels[:2, 2]
        return np.stack([disp[..., 0], self.size - disp[..., 1]], axis=-1)


def official_view(radius: float, size: int, title: str) -> tuple[Camera, np.ndarray]:
    """The official figure without any motion: its camera and its static background image (size, size, 3) uint8.

    Matplotlib is used once here (3D axes attached with ``add_subplot``, grid and axis off) so that the projection
    is exactly the official one at any resolution.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 10), dpi=size / 10)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(111, projection="3d")
    ax.set_xlim3d([-radius / 2, radius / 2])
    ax.set_ylim3d([0, radius])
    ax.set_zlim3d([0, radius])
    ax.grid(False)
    ax.view_init(elev=VIEW_ELEV, azim=VIEW_AZIM)
    ax.set_box_aspect(None, zoom=VIEW_ZOOM)
    ax.set_axis_off()
    if title:
        fig.suptitle(wrap_title(title), fontsize=20)
    canvas.draw()
    background = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    x0, y0, x1, y1 = ax.bbox.extents
    clip = (int(np.floor(x0)), int(np.floor(size - y1)), int(np.ceil(x1)), int(np.ceil(size - y0)))
    camera = Camera(
        proj=np.asarray(ax.get_proj(), dtype=np.float64),
        to_pixels=np.asarray(ax.transData.get_affine().get_matrix(), dtype=np.float64),
        size=size,
        clip=clip,
    )
    return camera, background


@dataclass(frozen=True)
class Scene:
    """Per-frame geometry in the official plot's coordinates (floor at y = 0, each frame centred on its root)."""

    joints: np.ndarray  # (T, J, 3) floor-subtracted, root XZ moved to the origin per frame
    trajectory: np.ndarray  # (T, 2) root XZ of the floor-subtracted motion
    mins: np.ndarray  # (3,) global minimum over frames and joints
    maxs: np.ndarray  # (3,) global maximum


def build_scene(joints: np.ndarray) -> Scene:
    """joints (T, J, 3) -> :class:`Scene` (the official data preparation of ``plot_3d_motion``)."""
    data = np.array(joints, dtype=np.float64)
    mins, maxs = data.min(axis=(0, 1)), data.max(axis=(0, 1))
    data[..., 1] -= mins[1]
    trajectory = data[:, 0, [0, 2]].copy()
    data[..., 0] -= trajectory[:, None, 0]
    data[..., 2] -= trajectory[:, None, 1]
    return Scene(joints=data, trajectory=trajectory, mins=mins, maxs=maxs)


def _rgb(color: str) -> tuple[int, int, int]:
    return ImageColor.getrgb(color)[:3]


def _floor_rgb() -> tuple[int, int, int]:
    r, g, b, a = FLOOR_RGBA  # drawn over the white background
    return tuple(int(round(255 * (a * c + (1 - a)))) for c in (r, g, b))  # type: ignore[return-value]


def _polyline(draw: ImageDraw.ImageDraw, points: np.ndarray, color: tuple[int, int, int], width: float) -> None:
    """Thick polyline with round joins and caps. points (N, 2) pixels."""
    w = max(1, int(round(width)))
    pts = [tuple(p) for p in points.tolist()]
    draw.line(pts, fill=color, width=w, joint="curve" if w > 2 else None)
    if w > 2:
        r = w / 2.0
        for x, y in (pts[0], pts[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=color)


def _dirty_box(
    points: list[np.ndarray], pad: float, align: int, clip: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) covering all points plus ``pad``, clipped to ``clip``, aligned to ``align``.

    ``clip`` must itself be aligned so the box stays inside it.
    """
    allp = np.concatenate([p.reshape(-1, 2) for p in points], axis=0)
    lo = np.floor((allp.min(axis=0) - pad) / align).astype(int) * align
    hi = np.ceil((allp.max(axis=0) + pad) / align).astype(int) * align
    lo = np.clip(lo, clip[:2], np.asarray(clip[2:]) - align)  # never empty, never outside the image
    hi = np.clip(hi, clip[:2], clip[2:])
    return int(lo[0]), int(lo[1]), int(max(hi[0], lo[0] + align)), int(max(hi[1], lo[1] + align))


@dataclass(frozen=True)
class Region:
    """The part of one frame that differs from the static background: pixels (h, w, 3) uint8 at (x0, y0)."""

    x0: int
    y0: int
    pixels: np.ndarray


def paint_regions(
    joints: np.ndarray,
    chains: Sequence[Sequence[int]],
    *,
    title: str = "",
    radius: float = 4.0,
    size: int = DEFAULT_SIZE,
    supersample: int | None = None,
    frames: Sequence[int] | None = None,
) -> tuple[np.ndarray, Iterator[Region]]:
    """The static background (size, size, 3) uint8 and, per frame, the rectangle holding the moving content.

    Lines are drawn ``supersample`` times larger (default: 2 below 800 px, 1 from there, where aliasing is
    less visible and the cost would double) and box-filtered down (anti-aliasing); only the changed
    rectangle is drawn, filtered and returned. Rectangles have even offsets and sizes (for 4:2:0 video).
    joints (T, J, 3); ``frames`` selects frame indices (default all).
    """
    ss = max(1, int(supersample)) if supersample is not None else (2 if size < 800 else 1)
    big = size * ss
    camera, background = official_view(radius, big, title)
    scene = build_scene(joints)
    n = scene.joints.shape[0]
    px_per_pt = big / 10 / 72  # line widths are in points, as in matplotlib
    floor_rgb, traj_rgb = _floor_rgb(), _rgb(TRAJECTORY_COLOR)
    colors = [_rgb(c) for c in CHAIN_COLORS]
    chain_idx = [np.asarray(c, dtype=np.int64) for c in chains]
    widths = [(4.0 if i < 5 else 2.0) * px_per_pt for i in range(len(chain_idx))]
    # Everything projected up front, vectorised over frames.
    pix = camera.project(scene.joints)  # (T, J, 2)
    tx, tz, zero = scene.trajectory[:, 0], scene.trajectory[:, 1], np.zeros(n)
    (x0, _, z0), (x1, _, z1) = scene.mins, scene.maxs
    corners = np.stack(
        [  # floor quad (T, 4, 3): the motion's XZ extent shifted by the current root
            np.stack([x0 - tx, zero, z0 - tz], -1),
            np.stack([x0 - tx, zero, z1 - tz], -1),
            np.stack([x1 - tx, zero, z1 - tz], -1),
            np.stack([x1 - tx, zero, z0 - tz], -1),
        ],
        axis=1,
    )
    floor_pix = camera.project(corners)  # (T, 4, 2)
    traj3 = np.stack([tx, zero, tz], -1)
    big_bg = Image.fromarray(background)
    small_bg = np.asarray(big_bg.reduce(ss) if ss > 1 else big_bg)
    pad = max(widths + [px_per_pt]) + 2 * ss
    # The axes box, shrunk to multiples of 2*ss: pixels drawn outside it are never shown (matplotlib's clipping).
    a = 2 * ss
    clip = (-(-camera.clip[0] // a) * a, -(-camera.clip[1] // a) * a, camera.clip[2] // a * a, camera.clip[3] // a * a)

    def regions() -> Iterator[Region]:
        canvas = big_bg.copy()
        draw = ImageDraw.Draw(canvas)
        for t in range(n) if frames is None else frames:
            draw.polygon([tuple(p) for p in floor_pix[t].tolist()], fill=floor_rgb)
            drawn = [floor_pix[t], pix[t, np.concatenate(chain_idx)]]
            if t > 1:
                past = camera.project(traj3[:t] - traj3[t])
                _polyline(draw, past, traj_rgb, 1.0 * px_per_pt)
                drawn.append(past)
            for i, idx in enumerate(chain_idx):
                _polyline(draw, pix[t, idx], colors[i % len(colors)], widths[i])
            box = _dirty_box(drawn, pad, 2 * ss, clip)
            region = canvas.crop(box)
            canvas.paste(big_bg.crop(box), box[:2])  # undo this frame's drawing
            yield Region(box[0] // ss, box[1] // ss, np.asarray(region.reduce(ss) if ss > 1 else region))

    return small_bg, regions()


def draw_frames(
    joints: np.ndarray,
    chains: Sequence[Sequence[int]],
    *,
    title: str = "",
    radius: float = 4.0,
    size: int = DEFAULT_SIZE,
    supersample: int | None = None,
    frames: Sequence[int] | None = None,
) -> Iterator[np.ndarray]:
    """Yield full video frames (size, size, 3) uint8 of joints (T, J, 3): every frame, or only ``frames``."""
    background, regions = paint_regions(
        joints, chains, title=title, radius=radius, size=size, supersample=supersample, frames=frames
    )
    for r in regions:
        frame = background.copy()
        h, w = r.pixels.shape[:2]
        frame[r.y0 : r.y0 + h, r.x0 : r.x0 + w] = r.pixels
        yield frame


# BT.601 limited range (what players assume for untagged SD H.264 and what ffmpeg's rgb24 -> yuv420p uses).
_RGB_TO_YUV = np.array(
    [[0.256788, 0.504129, 0.097906], [-0.148223, -0.290993, 0.439216], [0.439216, -0.367788, -0.071427]],
    dtype=np.float32,
)
_YUV_BIAS = np.array([16.0, 128.0, 128.0], dtype=np.float32)


def rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rgb (H, W, 3) uint8 with even H, W -> planes Y (H, W), U (H/2, W/2), V (H/2, W/2) uint8 (BT.601, tv range).

    Chroma is computed from the 2x2 box-averaged RGB.
    """
    half = np.asarray(Image.fromarray(rgb).reduce(2), dtype=np.float32)
    y = rgb.astype(np.float32) @ _RGB_TO_YUV[0] + (_YUV_BIAS[0] + 0.5)
    uv = half @ _RGB_TO_YUV[1:].T + (_YUV_BIAS[1:] + 0.5)
    return y.astype(np.uint8), uv[..., 0].astype(np.uint8), uv[..., 1].astype(np.uint8)


def yuv420_frames(background: np.ndarray, regions: Iterator[Region]) -> Iterator[list[np.ndarray]]:
    """Planar yuv420p frames [Y, U, V]: the background is converted once, then only each changed rectangle."""
    bg = rgb_to_yuv420(background)
    for r in regions:
        planes = [p.copy() for p in bg]
        h, w = r.pixels.shape[:2]
        for k, part in enumerate(rgb_to_yuv420(r.pixels)):
            s = 1 if k == 0 else 2
            planes[k][r.y0 // s : (r.y0 + h) // s, r.x0 // s : (r.x0 + w) // s] = part
        yield planes


def _ffmpeg_command(path: Path, size: int, fps: float, preset: str) -> list[str]:
    return [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-s",
        f"{size}x{size}",
        "-r",
        f"{fps:g}",
        "-i",
        "-",
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-pix_fmt",
        "yuv420p",
        "-colorspace",
        "bt470bg",
        "-color_primaries",
        "bt470bg",
        "-color_trc",
        "smpte170m",
        "-color_range",
        "tv",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(path),
    ]


def write_mp4(
    yuv_frames: Iterator[list[np.ndarray]], path: Path, size: int, fps: float, preset: str = X264_PRESET
) -> None:
    """Pipe planar yuv420p frames of ``size`` x ``size`` into ffmpeg (H.264, x264 ``preset``) writing ``path``."""
    proc = subprocess.Popen(_ffmpeg_command(path, size, fps, preset), stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for planes in yuv_frames:
            for plane in planes:
                proc.stdin.write(memoryview(plane).cast("B"))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    finally:
        if not proc.stdin.closed:
            proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"ffmpeg failed writing {path} (exit {code}): {err.strip()}")


def write_gif(frames: Iterator[np.ndarray], path: Path, fps: float) -> None:
    """GIF with Pillow (no ffmpeg needed); one shared adaptive palette, no dithering."""
    images = [Image.fromarray(f) for f in frames]
    palette = images[len(images) // 2].quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    quantized = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    quantized[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=quantized[1:],
        duration=int(round(1000 / fps)),
        loop=0,
        optimize=False,
    )


def _check_motion(
    joints: np.ndarray, skeleton: DatasetSpec | Sequence[Sequence[int]] | None
) -> tuple[np.ndarray, tuple[tuple[int, ...], ...], DatasetSpec | None]:
    """Validated joints (T, J, 3) float64, the chains to draw, and the dataset (None for explicit chains)."""
    if skeleton is None or isinstance(skeleton, DatasetSpec):
        spec = check_joints(joints, skeleton, min_frames=2)
        return np.asarray(joints, dtype=np.float64), spec.chains, spec
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.shape[0] < 2 or not np.isfinite(arr).all():
        raise ValueError(f"joints: expected finite positions of shape (T >= 2, J, 3), got {arr.shape}")
    chains = tuple(tuple(int(j) for j in c) for c in skeleton)
    bad = [j for c in chains for j in c if not 0 <= j < arr.shape[1]]
    if bad:
        raise ValueError(f"chains reference joints {sorted(set(bad))} but the motion has {arr.shape[1]} joints")
    return arr, chains, None


def render_motion(
    joints: np.ndarray,
    path: str | os.PathLike[str],
    skeleton: DatasetSpec | Sequence[Sequence[int]] | None = None,
    title: str = "",
    fps: float | None = None,
    radius: float | None = None,
    *,
    size: int = DEFAULT_SIZE,
    supersample: int | None = None,
    preset: str = X264_PRESET,
) -> Path:
    """Render joints (T, J, 3) as a stick-figure video at ``path`` (.mp4 via ffmpeg, .gif via Pillow).

    skeleton: a DatasetSpec, explicit kinematic chains, or None (dataset inferred from J).
    fps/radius default to the dataset's (t2m: 20 fps, radius 4 m). ``size`` is the square frame in pixels
    (official: 1000); ``preset`` the x264 preset of an mp4. An .mp4 request falls back to a .gif next to it when ffmpeg is not on PATH; the path
    actually written is returned. The file appears atomically: on error no partial output is left behind.
    """
    joints, chains, spec = _check_motion(joints, skeleton)
    fps = float(fps if fps is not None else (spec.fps if spec else 20.0))
    radius = float(radius if radius is not None else (spec.plot_radius if spec else 4.0))
    if fps <= 0 or radius <= 0:
        raise ValueError(f"fps and radius must be positive, got fps={fps}, radius={radius}")
    if size < 16 or size % 2:
        raise ValueError(f"size must be an even number of pixels >= 16, got {size}")
    out = Path(path).expanduser()
    suffix = out.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"{out}: unsupported video extension {out.suffix!r}; use .mp4 or .gif")
    if suffix == ".mp4" and shutil.which("ffmpeg") is None:
        logger.warning("ffmpeg not found on PATH: writing a GIF instead of %s", out)
        out, suffix = out.with_suffix(".gif"), ".gif"
    with atomic_write(out) as tmp:
        if suffix == ".mp4":
            background, regions = paint_regions(
                joints, chains, title=title, radius=radius, size=size, supersample=supersample
            )
            write_mp4(yuv420_frames(background, regions), tmp, size, fps, preset)
        else:
            write_gif(
                draw_frames(joints, chains, title=title, radius=radius, size=size, supersample=supersample), tmp, fps
            )
    return out


def save_frame_png(
    joints: np.ndarray,
    frame: int,
    path: str | os.PathLike[str],
    skeleton: DatasetSpec | Sequence[Sequence[int]] | None = None,
    title: str = "",
    radius: float | None = None,
    *,
    size: int = DEFAULT_SIZE,
) -> Path:
    """One frame of :func:`render_motion` as a PNG (for looking at a motion without a video player)."""
    joints, chains, spec = _check_motion(joints, skeleton)
    if not 0 <= frame < joints.shape[0]:
        raise ValueError(f"frame {frame} out of range for a motion of {joints.shape[0]} frames")
    radius = float(radius if radius is not None else (spec.plot_radius if spec else 4.0))
    img = next(draw_frames(joints, chains, title=title, radius=radius, size=size, frames=[frame]))
    Image.fromarray(img).save(path)
    return Path(path)


def write_motion_video(motion: Motion, path: Path, args: argparse.Namespace) -> None:
    """visualization.convert writer: a Motion -> .mp4 / .gif (options ``--title``, ``--size``)."""
    if Path(path).suffix.lower() == ".mp4" and shutil.which("ffmpeg") is None:
        raise ValueError(f"{path}: writing .mp4 needs ffmpeg on PATH; install it or ask for a .gif")
    render_motion(
        motion.as_joints(),
        path,
        motion.spec,
        title=getattr(args, "title", None) or "",
        size=getattr(args, "size", None) or DEFAULT_SIZE,
    )
