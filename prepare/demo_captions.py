"""The demo dataset's clips: which DeepMimic file, how it is extended, and hand-written captions.

Captions were written by looking at each converted clip (root path, turning direction, which hand/foot moves)
in the canonical HumanML3D frame; left/right refer to the performer's own side. Mirrored copies (``M<id>``)
get the left/right words swapped by ``prepare.build_dataset``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoClip:
    clip_id: str
    source: str                 # path under pybullet_data/data/motions
    cycles: int = 1             # loop count for cyclic clips
    hold_start: float = 0.0     # seconds of still pose added before / after
    hold_end: float = 0.0
    captions: tuple[str, ...] = ()
    is_walk: bool = False       # walking speed is checked by the tests


DEMO_CLIPS: tuple[DemoClip, ...] = (
    DemoClip("000000", "humanoid3d_walk.txt", cycles=3, is_walk=True, captions=(
        "a person walks forward",
        "someone walks straight ahead at a normal pace",
        "a man walks forward, drifting slightly to the left",
    )),
    DemoClip("000001", "walker/0walk_forward.txt", cycles=3, is_walk=True, captions=(
        "a person walks forward at a steady pace",
        "someone takes several steps forward",
        "a figure walks straight ahead with its arms swinging at its sides",
    )),
    DemoClip("000002", "walker/turn_left0.txt", cycles=3, is_walk=True, captions=(
        "a person walks forward while slowly turning to the left",
        "someone walks in a wide curve to the left",
        "a person walks and gradually turns left",
    )),
    DemoClip("000003", "walker/turn_left1.txt", cycles=2, is_walk=True, captions=(
        "a person walks and turns left",
        "someone walks forward and makes a left turn",
        "the person curves to their left while walking",
    )),
    DemoClip("000004", "walker/turn_right0.txt", cycles=2, is_walk=True, captions=(
        "a person walks in a tight circle to the right",
        "someone turns right while walking until they face the other way",
        "a person walks and turns around to the right",
    )),
    DemoClip("000005", "walker/turn_right1.txt", cycles=2, is_walk=True, captions=(
        "a person walks forward and turns right",
        "someone walks and makes a right turn",
        "the person curves to the right as they walk",
    )),
    DemoClip("000006", "humanoid3d_run.txt", cycles=4, captions=(
        "a person runs forward",
        "someone runs quickly in a straight line",
        "a person sprints ahead",
    )),
    DemoClip("000007", "humanoid3d_jump.txt", cycles=2, captions=(
        "a person jumps forward twice",
        "someone does two long jumps forward with both feet",
        "a person swings their arms and leaps forward, then does it again",
    )),
    DemoClip("000008", "humanoid3d_backflip.txt", cycles=2, captions=(
        "a person does two backflips in a row",
        "someone flips backwards twice",
        "a person jumps up and does a back flip, then another one",
    )),
    DemoClip("000009", "humanoid3d_cartwheel.txt", captions=(
        "a person does a cartwheel to their left",
        "someone performs a cartwheel moving to the left",
        "a person puts their hands on the floor and cartwheels sideways to the left",
    )),
    DemoClip("000010", "humanoid3d_crawl.txt", captions=(
        "a person crawls forward on hands and knees",
        "someone crawls on the floor",
        "a person is on all fours and crawls ahead",
    )),
    DemoClip("000011", "humanoid3d_dance_a.txt", cycles=2, captions=(
        "a person dances with their arms raised above their head",
        "someone dances while moving to the left",
        "a person performs a lively dance, swinging their arms",
    )),
    DemoClip("000012", "humanoid3d_dance_b.txt", captions=(
        "a person dances in place",
        "someone dances on the spot with arms raised high",
        "a person sways and dances without moving from the spot",
    )),
    DemoClip("000013", "humanoid3d_getup_facedown.txt", hold_end=0.5, captions=(
        "a person lying face down gets up",
        "someone pushes themselves up from the floor and stands",
        "a person gets up from lying on their stomach",
    )),
    DemoClip("000014", "humanoid3d_getup_faceup.txt", hold_end=0.5, captions=(
        "a person lying on their back gets up",
        "someone sits up and rises to their feet",
        "a person gets up from the ground",
    )),
    DemoClip("000015", "humanoid3d_kick.txt", hold_start=0.6, hold_end=0.6, captions=(
        "a person kicks high with their right leg",
        "someone does a high kick with the right foot",
        "a person stands still, turns and kicks with the right leg, then stands still again",
    )),
    DemoClip("000016", "humanoid3d_punch.txt", hold_start=0.3, hold_end=0.3, captions=(
        "a person steps forward and throws a punch",
        "someone punches forward",
        "a person steps ahead and punches",
    )),
    DemoClip("000017", "humanoid3d_roll.txt", cycles=2, captions=(
        "a person does a forward roll twice",
        "someone rolls forward on the ground two times",
        "a person dives forward into a roll, stands up and rolls again",
    )),
    DemoClip("000018", "humanoid3d_spin.txt", captions=(
        "a person spins around acrobatically",
        "someone does an acrobatic spin, kicking their legs up high",
        "a person twirls and swings their legs high",
    )),
    DemoClip("000019", "humanoid3d_spinkick.txt", cycles=2, captions=(
        "a person does a spinning kick twice",
        "someone spins and kicks high, two times",
        "a person performs two spin kicks",
    )),
)
