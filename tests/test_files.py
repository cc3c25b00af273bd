import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from haystack_hardneg.files import (
    UnsafePathError,
    atomic_directory,
    atomic_write_text,
    confined_path,
    jsonl_text,
    read_jsonl,
    readable_directory,
    recover_interrupted_swap,
)
from haystack_hardneg.rank.layout import read_scoring_head
from haystack_hardneg.rank.runtime import ExportedCrossEncoder


def test_jsonl_round_trips_texts_with_unicode_line_separators(tmp_path):
    records = [{"text": "first\u2028second\u2029third\x85fourth"}, {"text": "plain"}]
    atomic_write_text(tmp_path / "a.jsonl", jsonl_text(records))
    assert read_jsonl(tmp_path / "a.jsonl") == records
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]  # no temporary file left behind


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as staging:
        (staging / "weights").write_text("v1")
        (staging / "settings.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["settings.json", "weights"]

    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "weights").write_text("half")
            raise RuntimeError("interrupted")
    assert (target / "weights").read_text() == "v1"  # the failed save left the old version as it was

    with atomic_directory(target) as staging:
        (staging / "weights").write_text("v2")
    assert sorted(p.name for p in target.iterdir()) == ["weights"]  # nothing of v1 survives beside v2
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_swap_cut_between_its_renames_is_recovered(tmp_path):
    target = tmp_path / "index"
    with atomic_directory(target) as staging:
        (staging / "data").write_text("old")
    target.rename(tmp_path / ".index.previous")  # where a crash between the two renames leaves it
    # A reader finds the old version where it is and moves nothing (a writer may be between its renames).
    assert (readable_directory(target) / "data").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == [".index.previous"]
    recover_interrupted_swap(target)
    assert (target / "data").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["index"]


@pytest.mark.parametrize("relative", ["../x", "a/../../x", "/etc/passwd", "", "a\\..\\x", "a\0b"])
def test_a_path_leading_out_of_its_folder_is_refused(tmp_path, relative):
    with pytest.raises(UnsafePathError, match="state.json"):
        confined_path(tmp_path, relative, named_in="state.json")


def test_a_path_through_a_symbolic_link_is_refused_even_when_the_link_points_inside(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert confined_path(tmp_path, "real/a/b.json", named_in="x") == tmp_path / "real" / "a" / "b.json"
    with pytest.raises(UnsafePathError, match="symbolic link"):
        confined_path(tmp_path, "link/b.json", named_in="x")


def _dense_head(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"in_features": 4, "out_features": 1, "bias": True,
                                                    "activation_function": "torch.nn.modules.linear.Identity"}))
    save_file({"linear.weight": np.ones((1, 4), np.float32), "linear.bias": np.zeros(1, np.float32)},
              str(folder / "model.safetensors"))


@pytest.mark.parametrize("dense_path", ["2_Dense", "../outside/2_Dense"])
def test_a_model_folder_cannot_name_modules_outside_itself(tmp_path, dense_path):
    # A folder someone else made: its modules.json points the scoring layer at files of the attacker's choosing.
    model = tmp_path / "model"
    (model / "1_Pooling").mkdir(parents=True)
    (model / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    _dense_head(tmp_path / "model" / dense_path)
    (model / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": dense_path, "type": "sentence_transformers.models.Dense"}]))
    if dense_path == "2_Dense":
        assert read_scoring_head(model).pooling == "mean"  # the same files inside the folder are read
    else:
        with pytest.raises(UnsafePathError, match="modules.json"):
            read_scoring_head(model)


def test_an_export_file_name_cannot_leave_the_model_folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "evil.onnx").write_bytes(b"not read")
    with pytest.raises(UnsafePathError, match="leads outside"):
        ExportedCrossEncoder(tmp_path / "model", "onnx", file_name="../evil.onnx")
