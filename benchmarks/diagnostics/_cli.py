"""What the refine-turn diagnostics share: their options and how they report (printed JSON, optionally a file)."""

from __future__ import annotations

import argparse
import json

from getok.io import atomic_write_json


def model_data_parser(doc: str, data_help: str) -> argparse.ArgumentParser:
    """A parser with ``--model``, ``--data`` (``data_help``) and ``--out``, described by ``doc``'s first line."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help=data_help)
    ap.add_argument("--out", help="write the result JSON here too")
    return ap


def report(result: dict, out: str | None) -> int:
    """Print ``result`` as JSON and write it to ``out`` when given (atomically: a temp file, then a rename)."""
    print(json.dumps(result, indent=1))
    if out:
        atomic_write_json(out, result)
    return 0
