"""``getok`` command line: one entry point, one sub-command group per part of the package.

Every sub-command module exposes ``register(subparsers)``, which adds its parsers and sets ``func``; heavy
libraries (torch, transformers) are imported inside the command functions, so ``getok --help`` is fast.
Packages installed beside getok add commands through the ``getok.commands`` entry-point group (the
experiments in ``getok_lab``: ``getok demo``, ``getok study``, ``getok bench``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import entry_points

from .._version import __version__
from ..errors import ConfigError, GetokError

#: Modules that add sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES = [
    "getok.vocab.cli",
    "getok.data_builders.cli",
    "getok.eval.cli",
    "getok.train.cli",
    "getok.rl.cli",
]

#: Entry-point group through which installed packages add sub-commands (``register(subparsers)``): the
#: experiments beside the library (``getok_lab``: ``demo``, ``study``, ``bench``) register here.
COMMAND_GROUP = "getok.commands"


def check_counts(args, *flags: str, minimum: int = 1) -> None:
    """Refuse count-like options below ``minimum`` before any work, naming the option.

    ``--scenes -5`` would otherwise build an empty dataset and exit 0, ``--limit 0`` would mean "all".
    Raised as a :class:`ConfigError`, so the CLI reports one line and exits 2 (argparse's own errors print a
    usage block). Options left unset (``None``) pass.

    >>> import argparse
    >>> check_counts(argparse.Namespace(scenes=-5), "--scenes")
    Traceback (most recent call last):
    ...
    getok.errors.ConfigError: --scenes must be >= 1, got -5
    """
    for flag in flags:
        v = getattr(args, flag.lstrip("-").replace("-", "_"))
        if v is not None and v < minimum:
            raise ConfigError(f"{flag} must be >= {minimum}, got {v}")


def build_parser(modules: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``getok`` parser with the sub-commands of ``modules`` (default: all of :data:`COMMAND_MODULES`)."""
    parser = argparse.ArgumentParser(
        prog="getok",
        description="Spatial tokens for vision-language models: build data, train, decode, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"getok {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES if modules is None else modules:
        importlib.import_module(mod).register(sub)
    if modules is None:
        for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
            ep.load()(sub)
    return parser


def main(argv: list[str] | None = None, modules: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 no command, 2 a getok error with its message on stderr).

    ``modules`` restricts the sub-commands (each sub-command module's own ``main`` runs just its commands).
    """
    parser = build_parser(modules)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the invocation, for commands that record how their results were made
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        rc = args.func(args)
    except GetokError as exc:
        print(f"getok: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
