"""Tokenizers are read once per process (models/tokenizer_cache.py): later loads share the parsed tokenizer but not
its settings, and an edited tokenizer file is read anew."""

from __future__ import annotations

import json
import shutil

from diffusiongemma.models.tokenizer_cache import load_tokenizer


def test_a_second_load_shares_the_parse_but_not_the_settings(tiny_dir):
    a, b = load_tokenizer(tiny_dir), load_tokenizer(tiny_dir)
    assert a is not b and a.backend_tokenizer is b.backend_tokenizer
    b.padding_side, b.chat_template = "right", "{{ messages }}"
    assert a.padding_side == "left" and a.chat_template != "{{ messages }}"
    b(["hi", "hello there my friend"], padding=True, truncation=True, max_length=3)  # sets the shared Rust side
    assert a(["hi", "hello there my friend"])["input_ids"] == [[2, 2202], [2, 23391, 993, 1041, 4389]]


def test_an_edited_tokenizer_file_is_read_again(tiny_dir, tmp_path):
    mine = tmp_path / "model"
    shutil.copytree(tiny_dir, mine)
    first = load_tokenizer(mine)
    config = json.loads((mine / "tokenizer_config.json").read_text())
    config["model_max_length"] = 77
    (mine / "tokenizer_config.json").write_text(json.dumps(config))
    second = load_tokenizer(mine)
    assert second.backend_tokenizer is not first.backend_tokenizer and second.model_max_length == 77
    assert first.model_max_length != 77
