"""``export``: a fine-tuned cross-encoder to ONNX Runtime or OpenVINO, checked against its fp32 scores; and the
``train --export`` flags. Flags generated from ``ExportConfig``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from haystack_hardneg.export.config import ExportConfig
from haystack_hardneg.export.job import describe, export_model
from haystack_hardneg.options import add_arguments, from_arguments

# ``train`` validates on its own candidates, which the model folder keeps: an export right after it checks on those.
TRAIN_SKIPS = ("model_dir", "backend", "candidates")


def add_export_parser(commands) -> None:
    export = commands.add_parser("export", help="export a cross-encoder to onnx / openvino (optionally int8), "
                                                "checked against its fp32 scores")
    export.add_argument("model_dir", help="the cross-encoder folder (e.g. OUT/model of `train`)")
    add_arguments(export, ExportConfig, skip=("model_dir",))
    export.add_argument("--json", action="store_true", help="print the export record as JSON")
    export.set_defaults(func=cmd_export)


def add_train_export_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("export after training (see `export --help`)")
    group.add_argument("--export", choices=["onnx", "openvino"], help="export the trained model to this backend")
    add_arguments(group, ExportConfig, skip=TRAIN_SKIPS)


def export_config_for_training(args: argparse.Namespace, model_dir: str) -> ExportConfig | None:
    """The export ``train --export`` asks for, checked before the training starts; it is checked on the
    validation candidates the training keeps with the model (``train --candidates`` is the training's own)."""
    if not args.export:
        return None
    return from_arguments(ExportConfig, args, model_dir=model_dir, backend=args.export, candidates=None)


def export_after_training(config: ExportConfig | None, model_dir: str) -> None:
    if config is not None:
        run_export(replace(config, model_dir=model_dir))


def run_export(config: ExportConfig, as_json: bool = False) -> dict:
    record = export_model(config, log=lambda message: print(message, flush=True))
    print(json.dumps(record, indent=2) if as_json else describe(record))
    return record


def cmd_export(args: argparse.Namespace) -> int:
    """Exit code 1 where the export failed its quality check: it is written and recorded, but not a default, and a
    script should not ship it."""
    record = run_export(from_arguments(ExportConfig, args, model_dir=args.model_dir), as_json=args.json)
    gate = record.get("gate")
    if gate and not gate["passed"]:
        print(f"haystack-hardneg export: {record['file_name']} failed its quality check (nDCG@10 loss "
              f"{gate['ndcg@10']['loss']:+.4f} above {gate['max_loss']}): written and recorded, not made a default; "
              f"try another backend or no quantisation, or raise --max-loss if that loss is acceptable.",
              file=sys.stderr)
        return 1
    return 0
