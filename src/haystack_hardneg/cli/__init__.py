"""The ``haystack-hardneg`` command line: thin argument parsing over the same jobs the components call.

One module per group of commands: ``retrieval`` (index, query), ``prepare`` (documents and labels into a
BEIR folder), ``learning`` (mine, train; their flags are generated from ``MiningConfig`` and ``TrainingConfig``),
``serving`` (export), ``evaluation`` (evaluate, tune: the user's own pipeline), ``experiment`` (experiment, demo).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from haystack.core.errors import DeserializationError, PipelineRuntimeError

from haystack_hardneg.cli.evaluation import add_evaluate_parser, add_tune_parser
from haystack_hardneg.cli.experiment import add_demo_parser, add_experiment_parser
from haystack_hardneg.cli.learning import add_mine_parser, add_train_parser
from haystack_hardneg.cli.prepare import add_prepare_parser
from haystack_hardneg.cli.retrieval import add_index_parser, add_query_parser
from haystack_hardneg.cli.serving import add_export_parser
from haystack_hardneg.experiment.stages import ExperimentBusyError
from haystack_hardneg.extras import MissingExtraError
from haystack_hardneg.ingest.beir import DataError
from haystack_hardneg.options import ConfigError

BAD_INPUT = (ConfigError, DataError, OSError, ValueError, ExperimentBusyError, MissingExtraError, DeserializationError)


def _bad_input_cause(error: BaseException) -> BaseException | None:
    """The bad-input error behind ``error`` (its cause, or the cause's cause, ...), if any."""
    seen: set[int] = set()
    cause = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, BAD_INPUT):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _one_line(error: BaseException, args: argparse.Namespace) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, ConnectionError) and getattr(args, "url", None):
        text = f"cannot reach the Qdrant server at {args.url} ({text}): check --url and that the server runs"
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haystack-hardneg", description="Ensemble hard-negative mining and "
                                     "fine-tuned "
                                     "cross-encoder re-rankers for Haystack, on Qdrant.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (anywhere in the "
                                                             "command line)")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (add_index_parser, add_query_parser, add_prepare_parser, add_mine_parser, add_train_parser,
                add_export_parser, add_evaluate_parser, add_tune_parser, add_experiment_parser, add_demo_parser):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # taken wherever it stands, before or after the command
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    if not debug:
        # qdrant-client warns when it cannot ask a server its version; the command then fails with its own line
        # saying the server is unreachable, so the warning only doubles it.
        warnings.filterwarnings("ignore", message="Failed to obtain server version", category=UserWarning)
    try:
        return int(args.func(args) or 0)
    except BAD_INPUT as error:
        # Bad input (config, data, a missing file, model or optional package): one line saying what and where,
        # exit code 2.
        if args.debug:
            raise
        print(f"haystack-hardneg {args.command}: {_one_line(error, args)}", file=sys.stderr)
        return 2
    except PipelineRuntimeError as error:
        # Haystack wraps what a component raised; bad input inside a pipeline is bad input all the same.
        cause = _bad_input_cause(error)
        if args.debug or cause is None:
            raise
        print(f"haystack-hardneg {args.command}: {_one_line(cause, args)} (in the pipeline's "
              f"'{error.component_name}')", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted: everything embedded so far is in the cache; run the same command again to resume.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
