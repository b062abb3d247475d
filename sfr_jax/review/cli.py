"""`sfr-jax review REPORTS_DIR`: serve the inspect reports of a folder for a person to review.

    sfr-jax review reports/ [--port 8765] [--host 0.0.0.0] [--classes my_classes.yaml]

Binds 127.0.0.1 (this machine only) unless --host is given; then every request needs the token printed
at start (open the printed URL once: it sets a cookie). Decisions go to REPORTS_DIR/<video>/review.json.
"""
from __future__ import annotations

import os
import secrets
import sys

from sfr_jax import cli
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.review import server as server_lib

LOCALHOST = "127.0.0.1"


def build_parser():
    ap = cli.parser("sfr-jax review", "review inspect reports: accept, reject, relabel, move and add events")
    ap.add_argument("reports", help="the --out folder of `sfr-jax inspect` (one sub-folder per video)")
    ap.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free one)")
    ap.add_argument("--host", default=None,
                    help=f"address to serve on (default {LOCALHOST}, this machine only); giving one requires "
                         "the token printed at start on every request")
    ap.add_argument("--classes", default=None,
                    help="your class file (.yaml/.csv): its codes can be chosen when relabelling or adding")
    return ap


def user_codes(path) -> tuple:
    if not path:
        return ()
    from sfr_jax.text.classes import load_class_set
    return tuple(load_class_set(path, check_length=False).codes)


@cli.verb("sfr-jax review")
def main(argv) -> int:
    args = build_parser().parse_args(argv)
    if not os.path.isdir(args.reports):
        raise MissingInput(f"reports folder {args.reports!r}: no such folder (the --out of `sfr-jax inspect`)")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: not a port number (0-65535)")
    token = secrets.token_urlsafe(24) if args.host is not None else None
    host = args.host if args.host is not None else LOCALHOST
    try:
        server = server_lib.make_server(args.reports, host, args.port, token, user_codes(args.classes))
    except OSError as error:
        raise InputError(f"--host {host} --port {args.port}: cannot serve there ({error.strerror or error})") from None
    port = server.server_address[1]
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    videos = server.RequestHandlerClass.reviews.videos()
    print(f"sfr-jax review: {len(videos)} video(s) in {os.path.abspath(args.reports)}", flush=True)
    print(f"sfr-jax review: open {url}" + ("  (the token is needed: keep the URL to yourself)" if token else ""),
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        print("sfr-jax review: stopped; every acknowledged decision is in review.json", file=sys.stderr)
    return 0
