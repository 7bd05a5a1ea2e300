"""The demo dataset's clips: sources, how each is extended, hand-written captions, and captioned sub-ranges.

Captions were written by looking at each converted clip (root path, turning direction, which hand/foot moves)
in the canonical HumanML3D frame; left/right refer to the performer's own side. Mirrored copies (``M<id>``)
get the left/right words swapped by ``prepare.build_dataset``.

Every DeepMimic clip is extended to 196 feature frames (``prepare.deepmimic.extend``); its captions describe the
whole clip and, through :func:`sub_ranges`, sub-ranges of 40..188 frames (one per length, seeded offsets:
anywhere in a looped clip, at the start of a repetition in a repeated one, at the start in a held one), so the
models see every length the demo offers for every action. Climbing clips (``prepare.holosoma``) are windows of
real takes whose captions describe the whole window; their sub-ranges keep at least 80 % of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prepare.holosoma import ClimbClip

FPS = 20.0
SUB_LENGTHS = tuple(range(40, 196, 8))  # frames of the captioned sub-ranges (the whole clip is 196)
CLIMB_KEEP = 0.8  # climbing sub-ranges keep at least this fraction of their window


@dataclass(frozen=True)
class DemoClip:
    clip_id: str
    source: str  # path under pybullet_data/data/motions
    extend: str = "loop"  # prepare.deepmimic.extend mode: loop | straight | repeat | hold
    hold_start: float = 0.0  # seconds of still pose added before / after each repetition ("repeat")
    hold_end: float = 0.0
    captions: tuple[str, ...] = ()
    is_walk: bool = False  # walking speed is checked by the tests


def sub_ranges(
    clip_id: str, frames: int, action: int, mode: str, min_length: int = SUB_LENGTHS[0]
) -> list[tuple[int, int]]:
    """Seeded ``(start, end)`` feature-frame ranges, one per length of :data:`SUB_LENGTHS` (>= ``min_length``)
    that fits in ``frames``. ``mode``: ``loop``/``straight`` (any start), ``repeat`` (starts at multiples of ``action``),
    ``hold`` (start 0)."""
    rng = np.random.default_rng(int(clip_id))
    out = []
    for length in SUB_LENGTHS:
        if not min_length <= length <= frames:
            continue
        if mode == "hold":
            starts = [0]
        else:
            starts = list(range(0, frames - length + 1, action if mode == "repeat" else 1))
        start = starts[int(rng.integers(len(starts)))]
        out.append((start, start + length))
    return out


def caption_lines(captions: tuple[str, ...], ranges: list[tuple[int, int]]) -> str:
    """Input caption file for ``prepare.build_dataset``: whole-clip captions, then ``caption#start#end`` lines
    (seconds, 0.1 ms past the frame so ``int(t * 20)`` is that frame), captions taken in turn."""
    lines = [c + "\n" for c in captions]
    for k, (start, end) in enumerate(ranges):
        lines.append(f"{captions[k % len(captions)]}#{start / FPS + 1e-4:.4f}#{end / FPS + 1e-4:.4f}\n")
    return "".join(lines)


DEMO_CLIPS: tuple[DemoClip, ...] = (
    DemoClip(
        "000000",
        "humanoid3d_walk.txt",
        extend="straight",
        is_walk=True,
        captions=(
            "a person walks forward",
            "someone walks straight ahead at a normal pace",
            "a man walks forward, drifting slightly to the left",
        ),
    ),
    DemoClip(
        "000001",
        "walker/0walk_forward.txt",
        extend="straight",
        is_walk=True,
        captions=(
            "a person walks forward at a steady pace",
            "someone takes several steps forward",
            "a figure walks straight ahead with its arms swinging at its sides",
        ),
    ),
    DemoClip(
        "000002",
        "walker/turn_left0.txt",
        is_walk=True,
        captions=(
            "a person walks forward while slowly turning to the left",
            "someone walks in a wide curve to the left",
            "a person walks and gradually turns left",
        ),
    ),
    DemoClip(
        "000003",
        "walker/turn_left1.txt",
        is_walk=True,
        captions=(
            "a person walks and turns left",
            "someone walks forward and makes a left turn",
            "the person curves to their left while walking",
        ),
    ),
    DemoClip(
        "000004",
        "walker/turn_right0.txt",
        is_walk=True,
        captions=(
            "a person walks in a tight circle to the right",
            "someone keeps turning right while walking",
            "a person walks round and round to the right",
        ),
    ),
    DemoClip(
        "000005",
        "walker/turn_right1.txt",
        is_walk=True,
        captions=(
            "a person walks forward and turns right",
            "someone walks and makes a right turn",
            "the person curves to the right as they walk",
        ),
    ),
    DemoClip(
        "000006",
        "humanoid3d_run.txt",
        captions=(
            "a person runs forward",
            "someone runs quickly in a straight line",
            "a person sprints ahead",
        ),
    ),
    DemoClip(
        "000007",
        "humanoid3d_jump.txt",
        captions=(
            "a person jumps forward again and again",
            "someone does long jumps forward with both feet",
            "a person swings their arms and leaps forward, then does it again",
        ),
    ),
    DemoClip(
        "000008",
        "humanoid3d_backflip.txt",
        captions=(
            "a person does backflips in a row",
            "someone flips backwards again and again",
            "a person jumps up and does a back flip, then another one",
        ),
    ),
    DemoClip(
        "000009",
        "humanoid3d_cartwheel.txt",
        captions=(
            "a person does a cartwheel to their left",
            "someone performs a cartwheel moving to the left",
            "a person puts their hands on the floor and cartwheels sideways to the left",
        ),
    ),
    DemoClip(
        "000010",
        "humanoid3d_crawl.txt",
        extend="repeat",
        captions=(
            "a person crawls forward on hands and knees",
            "someone crawls on the floor",
            "a person is on all fours and crawls ahead",
        ),
    ),
    DemoClip(
        "000011",
        "humanoid3d_dance_a.txt",
        captions=(
            "a person dances with their arms raised above their head",
            "someone dances while moving to the left",
            "a person performs a lively dance, swinging their arms",
        ),
    ),
    DemoClip(
        "000012",
        "humanoid3d_dance_b.txt",
        captions=(
            "a person dances in place",
            "someone dances on the spot with arms raised high",
            "a person sways and dances without moving from the spot",
        ),
    ),
    DemoClip(
        "000013",
        "humanoid3d_getup_facedown.txt",
        extend="hold",
        captions=(
            "a person lying face down gets up",
            "someone pushes themselves up from the floor and stands",
            "a person gets up from lying on their stomach",
        ),
    ),
    DemoClip(
        "000014",
        "humanoid3d_getup_faceup.txt",
        extend="hold",
        captions=(
            "a person lying on their back gets up",
            "someone sits up and rises to their feet",
            "a person gets up from the ground",
        ),
    ),
    DemoClip(
        "000015",
        "humanoid3d_kick.txt",
        extend="repeat",
        hold_start=0.6,
        hold_end=0.6,
        captions=(
            "a person kicks high with their right leg",
            "someone does a high kick with the right foot",
            "a person stands still, kicks with the right leg, and stands still again before the next kick",
        ),
    ),
    DemoClip(
        "000016",
        "humanoid3d_punch.txt",
        extend="repeat",
        hold_start=0.3,
        hold_end=0.3,
        captions=(
            "a person steps forward and throws a punch",
            "someone punches forward",
            "a person steps ahead and punches",
        ),
    ),
    DemoClip(
        "000017",
        "humanoid3d_roll.txt",
        captions=(
            "a person does forward rolls",
            "someone rolls forward on the ground again and again",
            "a person dives forward into a roll, stands up and rolls again",
        ),
    ),
    DemoClip(
        "000018",
        "humanoid3d_spin.txt",
        captions=(
            "a person spins around acrobatically",
            "someone does an acrobatic spin, kicking their legs up high",
            "a person twirls and swings their legs high",
        ),
    ),
    DemoClip(
        "000019",
        "humanoid3d_spinkick.txt",
        captions=(
            "a person does spinning kicks",
            "someone spins and kicks high, again and again",
            "a person performs one spin kick after another",
        ),
    ),
)

# Windows of the holosoma climbing takes (frames at 20 fps; every take is cut into equal windows of < 197 frames).
CLIMB_CLIPS: tuple[ClimbClip, ...] = (
    ClimbClip(
        "000020",
        0,
        0,
        156,
        (
            "a person steps up onto a low box and climbs onto a higher box",
            "someone climbs up two boxes, one after the other",
            "a person steps onto a box, then uses their hands to climb onto a taller one",
        ),
    ),
    ClimbClip(
        "000021",
        0,
        156,
        312,
        (
            "a person crouching on a high box stands up, waits, and crouches down again",
            "someone stands up on top of a tall box and then squats back down",
            "a person rises from a crouch, stands still for a moment and crouches again",
        ),
    ),
    ClimbClip(
        "000022",
        0,
        312,
        467,
        (
            "a person climbs down from a box onto lower boxes and walks away",
            "someone steps down off the boxes and walks forward",
            "a person lowers themselves from a box, step by step, and walks off",
        ),
    ),
    ClimbClip(
        "000023",
        1,
        0,
        135,
        (
            "a person climbs up onto a high box, right foot first, and crouches on it",
            "someone climbs onto a tall box and crouches on top",
            "a person puts a foot up on a box and climbs on top of it",
        ),
    ),
    ClimbClip(
        "000024",
        1,
        135,
        270,
        (
            "a person crouching on a box stands up, then squats down again",
            "someone on top of a box rises, stands for a while and crouches",
            "a person stands up on a high box and squats back down",
        ),
    ),
    ClimbClip(
        "000025",
        1,
        270,
        404,
        (
            "a person steps down from a box, walks a few steps and stops",
            "someone climbs down to the floor, walks forward and stands still",
            "a person gets down off a box and walks away",
        ),
    ),
    ClimbClip(
        "000026",
        2,
        0,
        167,
        (
            "a person walks to a box, steps onto it and climbs onto a higher one",
            "someone walks up to some boxes and climbs them",
            "a person climbs onto a low box and then onto a tall box",
        ),
    ),
    ClimbClip(
        "000027",
        2,
        167,
        334,
        (
            "a person stands on a tall box, then crouches and climbs down onto a lower box",
            "someone waits on top of a high box and climbs down one level",
            "a person standing on a box squats and steps down onto a lower box",
        ),
    ),
    ClimbClip(
        "000028",
        2,
        334,
        502,
        (
            "a person steps down off a box, walks forward and then stands still",
            "someone steps down to the floor, takes a few steps and waits",
            "a person climbs down from a low box and stands on the floor",
        ),
    ),
    ClimbClip(
        "000029",
        3,
        0,
        134,
        (
            "a person walks up to a box, steps onto it and climbs onto a higher box",
            "someone walks forward and climbs up two boxes",
            "a person steps up onto a box and climbs a taller box next to it",
        ),
    ),
    ClimbClip(
        "000030",
        3,
        134,
        268,
        (
            "a person stands on a high box, then squats and starts to climb down",
            "someone standing on top of a tall box crouches down to climb off",
            "a person waits on a box and then squats down at its edge",
        ),
    ),
    ClimbClip(
        "000031",
        3,
        268,
        401,
        (
            "a person steps down from a box to the floor and walks forward",
            "someone climbs down off a low box and walks away",
            "a person steps down and walks a few steps forward",
        ),
    ),
    ClimbClip(
        "000032",
        4,
        0,
        192,
        (
            "a person bends down and crawls forward on hands and feet",
            "someone gets down on all fours and crawls ahead",
            "a person drops to their hands and feet and crawls forward",
        ),
    ),
    ClimbClip(
        "000033",
        4,
        192,
        384,
        (
            "a person crawls up a slope on hands and feet and stands up at the top",
            "someone climbs up a ramp on all fours and then stands",
            "a person crawls uphill and rises to their feet at the top",
        ),
    ),
)
