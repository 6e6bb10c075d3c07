"""`gnothi serve`: start the chat app (Gradio) on 127.0.0.1."""

from __future__ import annotations

import os
import sys

from gnothi.ui.cli_common import add_model_args


def register(sub):
    p = sub.add_parser("serve", help="start the chat app in the browser (Gradio, 127.0.0.1:7860)")
    add_model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    p.add_argument("--db", default=None, help="conversation store (SQLite file; default under gnothi's cache dir)")
    p.add_argument("--no-preload", action="store_true", help="start at once; load the model on the first question")
    p.add_argument("--no-background", action="store_true",
                   help="first-use training (the hallucination detector) runs inside the turn instead of in the background")
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools.errors import InputError
    from gnothi.ui.app import build_app, launch

    if not 0 <= args.port <= 65535:
        raise InputError(f"Port {args.port} is out of range.", "Use a port from 1 to 65535, or 0 for any free port.")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the app and its model.", file=sys.stderr)
    # long first-use work runs in the background of this long-lived process (GNOTHI_BACKGROUND)
    os.environ["GNOTHI_BACKGROUND"] = "0" if args.no_background else os.environ.get("GNOTHI_BACKGROUND", "1")
    handle = None
    if not args.no_preload:
        from gnothi.ui.cli_common import handle_from_args

        print("loading the model …", file=sys.stderr)
        handle = handle_from_args(args)  # a wrong --model fails here with a clear message
    demo = build_app(model=handle if handle is not None else args.model, db_path=args.db, preload=not args.no_preload)
    print(f"gnothi chat on http://{args.host}:{args.port or '<free port>'}  (Ctrl+C to stop)", file=sys.stderr)
    try:
        launch(demo, host=args.host, port=args.port or None, block=True)
    except OSError as e:  # port taken, address not on this machine
        raise InputError(
            f"Could not listen on {args.host}:{args.port}: {str(e).splitlines()[0]}",
            "Pick another port (--port 7861, or --port 0 for any free one) or stop what is using it.",
        ) from None
    return 0
