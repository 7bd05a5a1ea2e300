""".npy files from users: the header is checked against the file before anything is allocated.

:func:`load_npy` is the one way the project reads an ``.npy`` it did not just write itself (motions, dataset
features, statistics, word vectors). It refuses, with one line naming the file: empty files, ``.npz`` archives
under a ``.npy`` name, other files, malformed headers, headers that claim more data than the file holds (a
"10^10 frames" header is refused before any memory is allocated), object/string/complex/timedelta/structured
dtypes, 0-d arrays, and NaN/inf (or absurdly large) values. :func:`check_output` is the matching guard for
arrays about to be written: a file is never replaced by NaN.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
MAX_HEADER_BYTES = 10_000
NUMERIC_KINDS = {"f": "float", "i": "integer", "u": "unsigned integer"}
DTYPE_KIND_NAMES = {
    "b": "boolean",
    "c": "complex",
    "m": "timedelta",
    "M": "datetime",
    "O": "Python object",
    "S": "byte string",
    "U": "string",
    "V": "raw/structured",
}


@dataclass(frozen=True)
class NpyHeader:
    """What an ``.npy`` header promises; ``nbytes`` is checked against the file size."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def read_npy_header(path: str | Path, what: str = "array") -> NpyHeader:
    """The validated header of ``path`` (nothing but the header is read).

    Raises ``ValueError`` naming ``path`` and ``what`` (e.g. "VQ std") for every kind of unusable file.
    """
    path = Path(path)
    where = f"{what} {path}"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
            if size == 0:
                raise ValueError(f"{where}: the file is empty (0 bytes); expected a .npy array saved with np.save")
            if head.startswith(ZIP_MAGIC):
                raise ValueError(f"{where}: is a zip (.npz) archive, not a .npy array; save one array with np.save")
            if head != NPY_MAGIC:
                raise ValueError(f"{where}: not a .npy file (no NumPy header); expected an array saved with np.save")
            f.seek(0)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
            else:
                raise ValueError(f"{where}: unsupported .npy format version {version}; re-save it with np.save")
            offset = f.tell()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # NumPy's header parser raises many types (ValueError, TokenError, ...)
        if isinstance(exc, ValueError) and str(exc).startswith(where):
            raise
        raise ValueError(f"{where}: malformed .npy header ({_first_line(exc)})") from None
    header = NpyHeader(tuple(int(n) for n in shape), np.dtype(dtype), bool(fortran), offset)
    _check_header(header, size, where)
    return header


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:200]


def _check_header(header: NpyHeader, size: int, where: str) -> None:
    dtype = header.dtype
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in NUMERIC_KINDS:
        kind = DTYPE_KIND_NAMES.get(dtype.kind, dtype.kind)
        raise ValueError(f"{where}: has dtype {dtype} ({kind}); expected a float or integer array")
    if not header.shape:
        raise ValueError(f"{where}: is a 0-d scalar; expected an array with at least one dimension")
    expected = header.data_offset + header.nbytes
    if expected != size:
        raise ValueError(
            f"{where}: header says shape {header.shape} {dtype} ({expected} bytes with the header) but "
            f"the file has {size} bytes: truncated or corrupt; re-create it"
        )


def load_npy(
    path: str | Path,
    what: str = "array",
    *,
    ndim: int | tuple[int, ...] | None = None,
    shape: tuple[int | None, ...] | None = None,
    finite: bool = True,
    max_abs: float | None = None,
    max_bytes: int | None = None,
    dtype: type = np.float32,
) -> np.ndarray:
    """A validated numeric array from a user's ``.npy`` file, as ``dtype`` (float32 by default).

    ``ndim``: allowed number(s) of dimensions; ``shape``: exact sizes, ``None`` = any (e.g. ``(None, 263)``);
    ``finite``: refuse NaN/inf (after the cast, so float64 1e300 -> float32 inf is refused); ``max_abs``:
    refuse larger magnitudes; ``max_bytes``: refuse bigger arrays before reading them.
    """
    path = Path(path)
    where = f"{what} {path}"
    if not path.is_file():
        raise FileNotFoundError(f"{where} not found")
    header = read_npy_header(path, what)
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if shape is not None and (
        len(shape) != len(header.shape) or any(s is not None and s != n for s, n in zip(shape, header.shape))
    ):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{where}: has shape {header.shape}; expected {want}")
    if dims is not None and len(header.shape) not in dims:
        raise ValueError(
            f"{where}: has {len(header.shape)} dimension(s) {header.shape}; expected {' or '.join(map(str, dims))}"
        )
    if max_bytes is not None and header.nbytes > max_bytes:
        raise ValueError(f"{where}: holds {header.nbytes} bytes of data; the limit is {max_bytes}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{where}: cannot read the array ({_first_line(exc)})") from None
    with np.errstate(over="ignore", invalid="ignore"):
        arr = arr.astype(dtype, copy=False)
    check_values(arr, where, finite=finite, max_abs=max_abs)
    return arr


def check_values(arr: np.ndarray, where: str, *, finite: bool = True, max_abs: float | None = None) -> None:
    """``ValueError`` naming ``where`` when ``arr`` has NaN/inf (``finite``) or entries above ``max_abs``."""
    if finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        raise ValueError(f"{where}: contains {bad} NaN or infinite value(s)")
    if max_abs is not None and arr.size and float(np.abs(arr).max()) > max_abs:
        raise ValueError(
            f"{where}: has values up to {float(np.abs(arr).max()):.3g}; expected magnitudes below {max_abs:g}"
        )


def check_output(arr: np.ndarray, path: str | os.PathLike[str], what: str = "output") -> np.ndarray:
    """Refuse to write NaN/inf to ``path`` (call before writing; the existing file stays untouched)."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise ValueError(f"not writing {what} {path}: dtype {arr.dtype} is not numeric")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(
            f"not writing {what} {path}: the result contains NaN or infinite values "
            "(the input motion or the model's statistics are degenerate)"
        )
    return arr
