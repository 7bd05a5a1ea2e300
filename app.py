"""Local web demo: type a prompt, watch the motion, download BVH (needs: pip install -r requirements-demo.txt).

    python app.py                                          # embedded demo model, http://127.0.0.1:7860
    python app.py --name t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns \
        --res_name tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw   # downloaded checkpoints (+ the demo model if present)
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

from utils.cli import run_cli
from utils.device import resolve_device
from utils.log import setup_logging
from visualization.webapp import MAX_AGE_S, DemoService, build_app, import_gradio, launch, load_pipelines

logger = logging.getLogger("app")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="MoMask local web demo (text -> motion, editing, BVH download).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--checkpoints_dir", default="./checkpoints", help="root of the official checkpoint layout")
    p.add_argument("--dataset_name", default="t2m", choices=("t2m", "kit"), help="dataset of --name")
    p.add_argument("--name", default="", help="masked-transformer run folder; empty = only the embedded demo model")
    p.add_argument("--res_name", default="", help="residual-transformer run folder paired with --name")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument(
        "--workdir",
        default=str(Path(tempfile.gettempdir()) / "momask-webapp"),
        help="where each request's files are written (one folder per request)",
    )
    p.add_argument(
        "--max_age_minutes", type=float, default=MAX_AGE_S / 60, help="request folders older than this are deleted"
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging()
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: use 1..65535")
    if args.max_age_minutes <= 0:
        raise ValueError(f"--max_age_minutes {args.max_age_minutes}: must be positive")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local demo
    try:
        import_gradio()
    except ImportError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s: anyone who can reach this address can use the demo", args.host)
    pipelines = load_pipelines(
        checkpoints_dir=args.checkpoints_dir,
        dataset_name=args.dataset_name,
        name=args.name,
        res_name=args.res_name,
        device=resolve_device(args.device),
    )
    service = DemoService(pipelines, args.workdir, max_age_s=args.max_age_minutes * 60)
    app = build_app(service, service.workdir)
    launch(app, host=args.host, port=args.port, workdir=service.workdir)


if __name__ == "__main__":
    run_cli(main)
