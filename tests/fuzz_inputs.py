"""Generators of malformed inputs for the fuzz test (seeded): bytes of .npy/.bvh/pickle/text files and values.

Each generator mutates a *valid* input in a randomly chosen way (several ways composed sometimes), so the
inputs cover both near-valid files (one wrong header field, one wrong token) and garbage.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

NASTY_NUMBERS = [
    "-1",
    "0",
    "-5",
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "1e30",
    "abc",
    "",
    "9" * 5000,
    "1.5",
    "2**70",
    "0x10",
    "1_000",
    "[None]",
    "[[1]]",
    "None",
    "True",
    "\x00",
    "-0",
    "1e-400",
    "99999999999999999999",
]


class Payload:
    """A pickle that, if unpickled, creates ``marker`` (through os.system, open or exec)."""

    def __init__(self, marker: Path, how: str) -> None:
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "system":
            return os.system, (f"touch {self.marker}",)
        if self.how == "open":
            return builtins.open, (self.marker, "w")
        return builtins.exec, (f"open({self.marker!r}, 'w').close()",)


def payload_pickle(rng: np.random.Generator, marker: Path) -> bytes:
    how = ["system", "open", "exec"][int(rng.integers(3))]
    inner = Payload(marker, how)
    wrapped = [inner, {"unk": inner}, ["unk", inner]][int(rng.integers(3))]
    return pickle.dumps(wrapped, protocol=int(rng.integers(0, 6)))


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=arr.dtype.hasobject)
    return buf.getvalue()


def garbage_bytes(rng: np.random.Generator, marker: Path) -> bytes:
    """Something that is not the expected file at all."""
    kind = int(rng.integers(7))
    if kind == 0:
        return b""
    if kind == 1:
        return rng.bytes(int(rng.integers(1, 4000)))
    if kind == 2:
        return ("hello, this is a text file\n" * int(rng.integers(1, 50))).encode()
    if kind == 3:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("a.npy", npy_bytes(np.zeros(3)))
        return buf.getvalue()
    if kind == 4:
        return payload_pickle(rng, marker)
    if kind == 5:
        return b"\xff\xfe\x00" + rng.bytes(50)
    return b"\x93NUMPY" + rng.bytes(int(rng.integers(0, 300)))


def mutate_array(rng: np.random.Generator, base: np.ndarray, marker: Path) -> np.ndarray:
    """A numpy array derived from ``base`` with a wrong dtype, shape or values."""
    a = np.array(base, copy=True)
    kind = int(rng.integers(14))
    if kind == 0:
        a = a.astype(rng.choice(["float16", "float64", "int32", "int64", "uint8", "bool"]))
    elif kind == 1:
        a = a.astype(rng.choice(["complex64", "complex128", "m8[s]", "M8[D]"]))
    elif kind == 2:
        a = np.array([str(x) for x in a.ravel()[:50]])
    elif kind == 3:
        a = np.array(a.ravel()[0], dtype=a.dtype).reshape(())
    elif kind == 4:
        a = a.reshape(-1) if rng.random() < 0.5 else a[None]
    elif kind == 5:
        a = a[: int(rng.integers(0, 3))]
    elif kind == 6:
        a = a[..., : max(1, a.shape[-1] - int(rng.integers(1, 4)))]
    elif kind == 7:
        a = a.astype(np.float64)
        a.flat[int(rng.integers(a.size))] = rng.choice([np.nan, np.inf, -np.inf])
    elif kind == 8:
        a = np.full_like(a, rng.choice([1e30, -1e30, 1e300 if a.dtype == np.float64 else 3e38]))
    elif kind == 9:
        a = np.zeros_like(a)
    elif kind == 10:
        a = np.broadcast_to(a[:1], a.shape).copy()  # every frame the same (collapsed in time)
    elif kind == 11:
        a = a * np.float32(rng.choice([1e-12, 1e6, -1.0, 1e12]))
    elif kind == 12:
        a = np.array([Payload(marker, "open")] * 2, dtype=object)
    else:
        a = a + np.float32(rng.normal(0, 0.01))  # near-valid: a slightly perturbed motion
    return a


def mutate_npy(rng: np.random.Generator, base: np.ndarray, marker: Path) -> bytes:
    """Bytes of an .npy file derived from ``base``: a mutated array, a tampered header, or a truncated body."""
    kind = int(rng.integers(6))
    if kind <= 1:
        return npy_bytes(mutate_array(rng, base, marker))
    data = npy_bytes(np.asarray(base))
    if kind == 2:  # the header claims another shape / dtype / order
        header_end = data.index(b"\n") + 1
        header = data[:header_end].decode("latin1")
        field_value = str(tuple(base.shape))
        fake = rng.choice(
            [
                "(10000000000, 263)",
                "(-1, 263)",
                "()",
                "(0,)",
                "(2**70,)",
                "(1e3, 3)",
                "((1,), 2)",
                f"({base.shape[0] * 1000}, {base.shape[-1]})",
                "(5, 22, 3, 1)",
            ]
        )
        descr = str(rng.choice(["|O", "<U4", "<c8", "zz", "<m8[s]", "[('a', '<f4')]", "<f4", "(1, 2)"]))
        header = (
            header.replace(field_value, fake)
            if rng.random() < 0.6
            else header.replace(
                f"'descr': '{np.asarray(base).dtype.str}'",
                f"'descr': {descr!r}" if descr[0] != "[" else f"'descr': {descr}",
            )
        )
        if rng.random() < 0.2:
            header = header.replace("False", "True")
        return header.encode("latin1") + data[header_end:]
    if kind == 3:  # truncated or padded body
        cut = int(rng.integers(0, len(data)))
        return data[:cut] if rng.random() < 0.7 else data + rng.bytes(int(rng.integers(1, 64)))
    if kind == 4:  # version bytes / magic damaged
        b = bytearray(data)
        b[int(rng.integers(0, 10))] = int(rng.integers(256))
        return bytes(b)
    return garbage_bytes(rng, marker)


# ---- BVH --------------------------------------------------------------------------------------------------

BVH_TOKENS = [
    "-1",
    "-5",
    "999999999",
    "1e400",
    "nan",
    "inf",
    "abc",
    "{",
    "}",
    "ROOT",
    "JOINT",
    "End",
    "Site",
    "OFFSET",
    "CHANNELS",
    "MOTION",
    "Frames:",
    "Frame",
    "Time:",
    "0",
    "Xrotation",
    "Wrotation",
    "9" * 30,
    "HIERARCHY",
    "1e30",
]


def mutate_bvh(rng: np.random.Generator, text: str, reparent: Callable[[np.random.Generator], str]) -> bytes:
    """Bytes of a BVH file derived from the valid ``text`` (token edits, count edits, truncation, encodings,
    or a re-nested hierarchy with the right joint names from ``reparent``)."""
    kind = int(rng.integers(10))
    tokens = text.split(" ")
    if kind == 0:
        for _ in range(int(rng.integers(1, 4))):
            tokens[int(rng.integers(len(tokens)))] = str(rng.choice(BVH_TOKENS))
        return " ".join(tokens).encode()
    if kind == 1:
        lines = text.splitlines()
        chans = [i for i, line in enumerate(lines) if "CHANNELS" in line]
        i = chans[int(rng.integers(len(chans)))]
        parts = lines[i].split()
        wrong = ["-1", "-2", "-3", "-100", "7", "1000000", "3.5", "", "-0", str(int(parts[1]) + 1)]
        parts[1] = str(rng.choice(wrong))  # -2 once looped forever: CHANNELS -2 made the cursor stand still
        lines[i] = " ".join(parts)
        return "\n".join(lines).encode()
    if kind == 2:
        lines = text.splitlines()
        i = next(k for k, line in enumerate(lines) if line.startswith("Frames:"))
        lines[i] = "Frames: " + str(rng.choice(["0", "-1", "10000000000", "9" * 50, "abc", "1.5", "2"]))
        if rng.random() < 0.5:
            lines[i + 1] = "Frame Time: " + str(rng.choice(["0", "-0.05", "nan", "inf", "abc", ""]))
        return "\n".join(lines).encode()
    if kind == 3:
        return text[: int(rng.integers(0, len(text)))].encode()
    if kind == 4:
        start = int(rng.integers(len(tokens)))
        end = min(len(tokens), start + int(rng.integers(1, 40)))
        tokens = tokens[:start] + tokens[end:] if rng.random() < 0.5 else tokens[:end] + tokens[start:]
        return " ".join(tokens).encode()
    if kind == 5:
        b = bytearray(text.encode())
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(len(b)))] = int(rng.choice([0x00, 0xFF, 0xC3, 0x80]))
        return bytes(b)
    if kind == 6:
        return reparent(rng).encode()
    if kind == 7:
        depth = int(rng.integers(100, 5000))
        return (
            "HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 3 Zrotation Yrotation Xrotation\n"
            + "".join(f"JOINT j{i}\n{{\nOFFSET 0 0 1\nCHANNELS 0\n" for i in range(depth))
            + "}\n" * (depth + 1)
            + "MOTION\nFrames: 1\nFrame Time: 0.05\n0 0 0\n"
        ).encode()
    if kind == 8:
        lines = text.splitlines()
        row = len(lines) - 1 - int(rng.integers(0, 5))
        vals = lines[row].split()
        vals[int(rng.integers(len(vals)))] = str(rng.choice(["abc", "nan", "1e30", "1e400", "-inf", "1,5"]))
        lines[row] = " ".join(vals)
        return "\n".join(lines).encode()
    return garbage_bytes(rng, Path(os.devnull))


# ---- text files and values -----------------------------------------------------------------------------------


def prompt_file(rng: np.random.Generator) -> bytes:
    """A prompt file (``caption#frames`` lines) with some lines wrong."""
    captions = [
        "a person walks forward",
        "",
        "   ",
        "x" * int(rng.integers(900, 1200)),
        "a man jumps#twice",
        "\x00nul",
        "run --text",
        "sit" * 10,
    ]
    lengths = [
        "",
        "#NA",
        "#120",
        "#-1",
        "#0",
        "#3",
        "#197",
        "#" + "9" * 5000,
        "#1e3",
        "#abc",
        "#12.5",
        "# 40 ",
        "#40#",
        "##",
        "#1" * 3,
    ]
    lines = [str(rng.choice(captions)) + str(rng.choice(lengths)) for _ in range(int(rng.integers(0, 6)))]
    data = "\n".join(lines).encode()
    kind = int(rng.integers(6))
    if kind == 0:
        data += b"\n\xff\xfe broken"
    elif kind == 1:
        data = b"a person walks#40\n" * int(rng.integers(10_001, 12_000))
    elif kind == 2:
        data = b"a" * 1_000_001
    return data


def edit_section(rng: np.random.Generator) -> str:
    pieces = [
        "",
        "0",
        "1s",
        "2.5s",
        "9" * 5000 + "s",
        "1e308s",
        "1e308",
        "0.5",
        "1.5",
        "-1",
        "s",
        ".",
        "nan",
        "inf",
        "59",
        "9" * 400,
        "0.0001s",
        " 1s ",
        "3s",
        "1ss",
        "1.2.3",
    ]
    n = int(rng.integers(1, 4))
    return ",".join(str(rng.choice(pieces)) for _ in range(n))


def opt_text(rng: np.random.Generator, valid: str) -> bytes:
    """An opt.txt derived from ``valid``: some values replaced by nasty ones, lines dropped or mangled."""
    lines = valid.splitlines()
    body = [i for i, line in enumerate(lines) if ": " in line]
    for _ in range(int(rng.integers(1, 4))):
        i = body[int(rng.integers(len(body)))]
        key = lines[i].split(": ", 1)[0]
        value = str(rng.choice(NASTY_NUMBERS + ["x" * 5000, "a/b", "..", "[1, 2", "[1, None]", "[]", "[" * 300]))
        lines[i] = f"{key}: {value}"
    kind = int(rng.integers(6))
    if kind == 0:
        lines.insert(int(rng.integers(len(lines))), "this line has no separator")
    elif kind == 1:
        return "\n".join(lines).encode() + b"\n\xff\xfe\xfa"
    elif kind == 2:
        del lines[int(rng.integers(len(lines)))]
    return "\n".join(lines).encode()


FORM_VALUES = [
    None,
    "",
    "abc",
    "1e308",
    1e308,
    -1,
    0,
    1,
    2.5,
    float("nan"),
    float("inf"),
    "9" * 5000,
    True,
    [],
    {},
    2**70,
    " 3 ",
    -0.0,
    18,
    4.0,
    "4",
    1e-300,
    "0x10",
    object(),
]


def form_value(rng: np.random.Generator) -> object:
    return FORM_VALUES[int(rng.integers(len(FORM_VALUES)))]
