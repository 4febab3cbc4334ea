"""Command-line interface: ``mlob-pp fit | compare | simulate``.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; they are imported only when their subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mlob_pp import __version__

_SUBCOMMANDS = {
    "fit": ("mlob_pp.cli.fit", "closed-form MLOB fit of a CSV or bundled data set (R-style table)"),
    "compare": (
        "mlob_pp.cli.compare",
        "MLOB, ML and MCMC side by side (table, results file, forest plot)",
    ),
    "simulate": (
        "mlob_pp.cli.simulate",
        "simulation study of the estimators (the MLOB talk's design)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="mlob-pp",
        description="Compare closed-form MLOB, ML and MCMC estimates of two-level models.",
    )

    parser.add_argument("--version", action="version", version=f"mlob_pp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in _SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            p.set_defaults(_missing=module)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"mlob-pp {args.command}: not available in this build", file=sys.stderr)
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
