"""What a training run writes for people: its section of the model card and the training curves."""

from __future__ import annotations

from pathlib import Path

from haystack_hardneg.extras import require
from haystack_hardneg.files import atomic_save_figure, atomic_write_text
from haystack_hardneg.scoring.settings import CALIBRATION_PAIRS_FILE, RANKER_SETTINGS_FILE, VALIDATION_CANDIDATES_FILE
from haystack_hardneg.train.config import TEACHER_LOSSES


def append_model_card(model_dir: Path, report: dict) -> None:
    """Add what the training ``report`` says (base, data, head, loss and settings, validation, fusion weight) to
    the model card in ``model_dir`` (``README.md``), started when the model saved none."""
    config = report["config"]
    lines = [
        "",
        "## Fine-tuned with haystack-hardneg",
        "",
        f"- base model: `{config['base_model']}`",
        f"- data: {config['data_description'] or 'mined triplets'} ({report['train_rows']} training rows, "
        f"{report['validation_queries']} held-out validation queries)",
        f"- negative strategy: `{config['strategy']}`",
        f"- scoring head: `{report['head']}`",
        f"- loss: `{config['loss']}`; epochs {config['epochs']}; encoder lr {config['encoder_lr']}, "
        f"head lr {report['head_lr']}; batch size {config['batch_size']}; "
        f"precision {_precision(report)}; seed {config['seed']}",
    ]
    if (model_dir / CALIBRATION_PAIRS_FILE).is_file():
        lines.append(f"- kept for exports: `{VALIDATION_CANDIDATES_FILE}` (the held-out queries' candidates) and "
                     f"`{CALIBRATION_PAIRS_FILE}` (a sample of training pairs): texts of the training data; delete "
                     f"them before sharing the folder if those are private (an export then needs --candidates)")
    if config["loss"] in TEACHER_LOSSES:
        lines.append(f"- teacher: the mining ensemble's scores times {config['teacher_scale']}; label weight "
                     f"{config['label_weight']}")
    if report["validation"]:
        lines.append(f"- validation ({report['validation_on']}): " + ", ".join(
            f"{k.replace('validation_', '')} {v:.4f}" for k, v in report["validation"].items()))
    if report.get("fusion"):
        fusion = report["fusion"]
        lines.append(f"- on the same slice, nDCG@10: first stage {fusion['first_stage']['ndcg@10']:.4f}, re-ranker "
                     f"alone {fusion['reranker_alone']['ndcg@10']:.4f}, fused with the retriever score at alpha "
                     f"{fusion['best_alpha']} {fusion['best']['ndcg@10']:.4f} (the weight `CrossEncoderRanker` "
                     f"uses with `fusion_alpha=\"auto\"`, stored in `{RANKER_SETTINGS_FILE}`; chosen by the "
                     f"{'one-standard-error rule towards 0.5' if fusion['rule'] == 'one_se' else 'best score'}, "
                     f"best on the slice: alpha {fusion['argmax_alpha']})")
        if fusion.get("fallback"):
            lines.append(f"- **warning: the re-ranker did not beat its first stage on validation**: "
                         f"{fusion['fallback']}")
    card = model_dir / "README.md"
    existing = card.read_text(encoding="utf-8") if card.exists() else "# Cross-encoder\n"
    atomic_write_text(card, existing.rstrip() + "\n" + "\n".join(lines) + "\n")


def _precision(report: dict) -> str:
    """The precision the training ran in, and the one asked where the machine refused it."""
    asked, run = report["config"]["precision"], report.get("precision_run", report["config"]["precision"])
    return run if run == asked else f"{run} ({asked} asked, refused on the training machine)"


def plot_curves(history: list[dict], path: Path) -> None:
    """Training loss and validation nDCG@10 / MRR@10 by step, from the trainer's log ``history``, as a PNG."""
    matplotlib = require("matplotlib", "Charts")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    metrics = [(h["step"], h["eval_validation_ndcg@10"], h.get("eval_validation_mrr@10")) for h in history
               if "eval_validation_ndcg@10" in h]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if losses:
        left.plot(*zip(*losses), marker=".")
    left.set(title="training loss", xlabel="step", ylabel="loss")
    if metrics:
        steps, ndcg, mrr = zip(*metrics)
        right.plot(steps, ndcg, marker="o", label="nDCG@10")
        if all(m is not None for m in mrr):
            right.plot(steps, mrr, marker="s", label="MRR@10")
        right.legend()
    right.set(title="validation (held-out training queries)", xlabel="step", ylabel="score")
    figure.tight_layout()
    atomic_save_figure(figure, path, dpi=100)
    plt.close(figure)
