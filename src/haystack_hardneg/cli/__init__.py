"""The ``haystack-hardneg`` command line: thin argument parsing over the same jobs the components call.

One module per group of commands: ``retrieval`` (index, query), ``prepare`` (documents and labels into a
BEIR folder), ``learning`` (mine, train; their flags are generated from ``MiningConfig`` and ``TrainingConfig``),
``serving`` (export), ``experiment`` (experiment, demo).
"""

from __future__ import annotations

import argparse
import sys

from haystack_hardneg.cli.experiment import add_demo_parser, add_experiment_parser
from haystack_hardneg.cli.learning import add_mine_parser, add_train_parser
from haystack_hardneg.cli.prepare import add_prepare_parser
from haystack_hardneg.cli.retrieval import add_index_parser, add_query_parser
from haystack_hardneg.cli.serving import add_export_parser
from haystack_hardneg.experiment.stages import ExperimentBusyError
from haystack_hardneg.extras import MissingExtraError
from haystack_hardneg.ingest.beir import DataError
from haystack_hardneg.options import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haystack-hardneg", description="Ensemble hard-negative mining and "
                                     "fine-tuned "
                                     "cross-encoder re-rankers for Haystack, on Qdrant.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (anywhere in the "
                                                             "command line)")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (add_index_parser, add_query_parser, add_prepare_parser, add_mine_parser, add_train_parser,
                add_export_parser, add_experiment_parser, add_demo_parser):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # taken wherever it stands, before or after the command
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    try:
        return int(args.func(args) or 0)
    except (ConfigError, DataError, OSError, ValueError, ExperimentBusyError, MissingExtraError) as error:
        # Bad input (config, data, a missing file, model or optional package): one line saying what and where,
        # exit code 2.
        if args.debug:
            raise
        print(f"haystack-hardneg {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted: everything embedded so far is in the cache; run the same command again to resume.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
