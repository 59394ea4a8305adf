"""The encoder's LoRA adapter (qa.encoders.adapted) and its training (bench/train_encoder.py).

Real files: the adapter shipped in qa/models/e5-policy, the converted model, peft.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.encoders import adapted

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def adapter_copy(tmp_path) -> Path:
    folder = tmp_path / "e5-policy"
    shutil.copytree(adapted.ADAPTER, folder)
    return folder


def test_the_shipped_adapter_matches_its_card():
    card = adapted.check()
    assert set(card["files"]) == {"adapter_config.json", "adapter_model.safetensors"}
    assert (adapted.ADAPTER / "adapter_model.safetensors").stat().st_size < 2_000_000  # a small trained part
    assert "CC BY-SA" in card["licence"] and card["command"].startswith("python bench/train_encoder.py")


@pytest.mark.parametrize("damage", ["truncate", "missing", "foreign card"])
def test_a_damaged_adapter_is_refused_with_the_way_out(adapter_copy, tmp_path, damage):
    weights = adapter_copy / "adapter_model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
        match = "does not match the sha256"
    elif damage == "missing":
        weights.unlink()
        match = "is missing"
    else:
        (adapter_copy / "card.json").write_text("[1, 2]", encoding="utf-8")
        match = "not readable"
    with pytest.raises(adapted.AdapterError, match=match) as info:
        adapted.build(tmp_path / "merged", adapter=adapter_copy)
    assert "bench/train_encoder.py" in str(info.value) and not (tmp_path / "merged").exists()


def test_the_merged_folder_embeds_like_the_adapter_on_the_base(tmp_path):
    """Merging folds the adapter into the weights: the same vectors as running base + adapter."""
    from peft import PeftModel
    from sentence_transformers import SentenceTransformer

    from qa.encoders.e5_convert import build_st_folder, default_target

    merged = SentenceTransformer(str(adapted.build()), device="cpu")
    base = SentenceTransformer(str(build_st_folder(default_target())), device="cpu")
    texts = ["query: 江北区有多少家科技型企业？", "passage: 全区科技型企业总量目前已达1311家。"]
    untuned = base.encode(texts)
    PeftModel.from_pretrained(base[0].auto_model, str(adapted.ADAPTER))
    np.testing.assert_allclose(merged.encode(texts), base.encode(texts), atol=1e-5)
    assert np.abs(merged.encode(texts) - untuned).max() > 1e-3


@pytest.mark.slow
def test_retraining_on_a_tiny_fixed_set_is_deterministic(tmp_path, tiny_xquad):
    sys.path.insert(0, str(ROOT / "bench"))
    import train_encoder

    xquad = tiny_xquad
    assert [p[0] for p in train_encoder.pairs(xquad, 0)] == ["江北区有多少家科技型企业？", "How many tech firms does Jiangbei have?",
                                                             "重庆培育了多少技术经纪人？", "How many technology brokers were trained?"]
    assert all(pos != neg and "1311家" in pos for _, pos, neg in train_encoder.pairs(xquad, 0)[:2])
    cards = []
    for run in ("a", "b"):
        assert train_encoder.main(["--xquad", str(xquad), "--out", str(tmp_path / run), "--batch", "2"]) == 0
        cards.append(json.loads((tmp_path / run / "card.json").read_text(encoding="utf-8")))
    assert cards[0]["files"] == cards[1]["files"]  # the same adapter, byte for byte
    assert cards[0]["pairs"] == 4 and cards[0]["loss_first_10"] > 0
    # peft keeps its target modules in a set, whose order changes from process to process
    targets = json.loads((tmp_path / "a" / "adapter_config.json").read_text(encoding="utf-8"))["target_modules"]
    assert targets == sorted(targets)


def test_a_retrained_adapter_is_compared_as_data_with_the_shipped_one(adapter_copy):
    sys.path.insert(0, str(ROOT / "bench"))
    import encoder_retrain
    from safetensors.numpy import load_file, save_file

    config_path = adapter_copy / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["target_modules"] = list(reversed(config["target_modules"]))  # another process's order
    config_path.write_text(json.dumps(config), encoding="utf-8")
    same = encoder_retrain.compare_files(adapted.ADAPTER, adapter_copy)
    assert same["configs_equal_as_data"] and same["max_abs_weight_difference"] == 0.0
    weights = load_file(str(adapter_copy / "adapter_model.safetensors"))
    name = sorted(weights)[0]
    weights[name] = weights[name] + np.float32(1e-3)
    save_file(weights, str(adapter_copy / "adapter_model.safetensors"))
    config["r"] = config["r"] * 2
    config_path.write_text(json.dumps(config), encoding="utf-8")
    moved = encoder_retrain.compare_files(adapted.ADAPTER, adapter_copy)
    assert not moved["byte_identical"] and moved["config_keys_that_differ"] == ["r"]
    assert moved["max_abs_weight_difference"] == pytest.approx(1e-3, rel=1e-2)
