"""One error contract for every command (issue 29): a bad argument, file, model, adapter, store or device gives
one sentence that names the thing, exit code 2, no traceback, and nothing written. One table, every subcommand;
each case runs the real entry point (``diffusiongemma.cli.main``) in this process on the tiny model, and the
test compares the working folder before and after. ``--help`` of every command is in the table too."""

from __future__ import annotations

import json
import re

import pytest

from diffusiongemma import cli
from diffusiongemma.audit.store import AuditStore

M = ["--model", "{tiny}"]
# (command line, what the one sentence must say): {placeholders} are files of the fixture below
CASES = [
    # explain: prompt, options, model, adapter, device, files
    (["explain", ""], r"^error: the prompt is empty$"),
    (["explain", "hi", "--budget", "-1", *M], r"budget must be a whole number of evaluations ≥ 1, got -1"),
    (["explain", "hi", "--units", "paragraphz", *M], r"unknown unit kind 'paragraphz'; choose one of"),
    (["explain", "hi", "--method", "nope", *M], r"unknown method 'nope'; choose one of"),
    (["explain", "hi", "--model", "{tmp}/missing"], r"model path .*missing does not exist"),
    (["explain", "hi", "--model", "{corrupt_model}"], r"cannot read the model configuration in .*model"),
    (["explain", "hi", "--adapter", "{tmp}/missing", *M], r"adapter .*missing is not a PEFT adapter directory"),
    (["explain", "hi", "--adapter", "{corrupt_adapter}", *M], r"adapter .*adapter is damaged: its adapter_config.json is not readable JSON"),
    (["explain", "hi", "--device", "tpu9", *M], r"device 'tpu9' is not a device torch knows"),
    (["explain", "hi", "--dtype", "float7", *M], r"dtype 'float7' is not one of"),
    (["explain", "--prompt-file", "{tmp}/missing.txt", *M], r"cannot read the prompt file .*missing.txt"),
    (["explain", "hi", "--target-direction", "{bad_json}", *M], r"cannot read the direction file .*bad.json"),
    (["explain", "{long}", *M, "--json", "{tmp}/a.json"], r"longer than the model's context of 256 tokens"),
    (["explain", "hi", "--bogus-flag"], r"No such option: --bogus-flag"),
    (["explain", *M], r"give the prompt either as an argument or with --prompt-file"),
    (["explain", "hello there", "--target", "", *M], r"the target is empty"),
    (["explain", "hello there", "--units", "spans:500-600", *M], r"select no token"),
    (["explain", "hi", "--units", "features:0={tmp}/missing", *M], r"no SAE at .*missing"),
    (["explain", "hi", "--units", "features:0=x", "--feature-labels", "{bad_json}", *M], r"cannot read the feature labels .*bad.json"),
    # explain-refusal, trace
    (["explain-refusal", "", *M], r"the prompt is empty"),
    (["explain-refusal", "hi", "--budget", "0", *M, "--json", "{tmp}/a.json"], r"budget must be a whole number"),
    (["explain-refusal", "hi", "--max-new-tokens", "0", *M], r"max_new_tokens must be a whole number of tokens ≥ 1"),
    (["explain-refusal", "hi", "--direction", "{tmp}/missing.json", *M], r"cannot read the refusal direction .*missing.json"),
    (["explain-refusal", "hi", "--patch", "{bad_json}", *M], r"bad.json is not a readable safetensors patch"),
    (["explain-refusal", "hi", "--model", "gemma-270m-nope"], r"gemma-270m-nope does not exist"),
    (["trace", "", *M], r"the prompt is empty"),
    (["trace", "hi", "--max-new-tokens", "0", *M, "--html", "{tmp}/t.html"], r"max_new_tokens must be a whole number"),
    (["trace", "hi", "--method", "gradient", "--response", " x", *M], r"sampling method"),
    # explain-context
    (["explain-context", *M], r"give the user's turn either as an argument or with --chat"),
    (["explain-context", "What changed?", *M], r"nothing in the context to explain: give --doc files"),
    (["explain-context", "--chat", "{bad_json}", *M], r"bad.json is not JSON .*give a JSON list of messages"),
    (["explain-context", "q", "--doc", "{tmp}/missing.txt", *M], r"cannot read the document .*missing.txt"),
    (["explain-context", "q", "--doc", "{batch}", "--follows", "(", *M], r"--follows '\(' is not a regular expression"),
    (["explain-context", "q", "--doc", "{batch}", "--budget", "0", *M, "--json", "{tmp}/c.json"], r"budget must be a whole number"),
    # refusal-direction, jailbreak-diff
    (["refusal-direction", "--count", "0", "--out", "{tmp}/dir", *M], r"needs at least 8 harmful and 8 harmless"),
    (["refusal-direction", "--positions", "0", "--out", "{tmp}/dir", *M], r"positions must be a whole number of candidate positions ≥ 1"),
    (["refusal-direction", *M], r"Missing option '--out'"),
    (["jailbreak-diff", "--pairs", "{tmp}/missing.jsonl", *M], r"pairs file not found"),
    (["jailbreak-diff", "--pairs", "{bad_json}", "--out", "{tmp}/pairs", *M], r"bad.json holds no usable pair"),
    (["jailbreak-diff", "plain", "jailbroken", "--template", "T {{prompt}}", *M], r"exactly one of JAILBROKEN and --template"),
    # audit, audit-report: input, settings, store
    (["audit", "{tmp}/missing.jsonl", "--store", "{tmp}/a.db", *M], r"input file not found"),
    (["audit", "{batch}", "--store", "{tmp}/a.db", "--budget", "-1", *M], r"--budget must be a whole number"),
    (["audit", "{batch}", "--store", "{tmp}/a.db", "--units", "paragraphz", *M], r"unknown unit kind 'paragraphz'"),
    (["audit", "{batch}", "--store", "{tmp}/a.db", "--budget", "4", *M], r"--budget 4 is too small for method shapley"),
    (["audit", "{batch}", "--store", "{tmp}/a.db", "--format", "nope", *M], r"unknown input format 'nope'"),
    (["audit", "{batch}", "--store", "{not_db}", *M], r"notes.db is not an audit store"),
    (["audit", "{batch}", "--store", "{not_db}/d.db", *M], r"could not open the audit store .*d.db"),
    (["audit", "{batch}", "--store", "{locked_db}", *M], r"locked.db is being written by another audit"),
    (["audit", "{batch}", "--store", "{tmp}/a.db", "--backend", "spark", *M], r"unknown backend 'spark'"),
    (["audit", "{batch}", "--store", "{tmp}/a.db", "--model", "{tmp}/missing"], r"model path .*missing does not exist"),
    (["audit", "{batch}", *M], r"Missing option '--store'"),
    (["audit-report", "{not_db}", "--html", "{tmp}/r.html"], r"notes.db is not an audit store"),
    (["audit-report", "{tmp}/missing.db", "--html", "{tmp}/r.html"], r"audit store not found"),
    (["audit-report", "{tmp}/missing.db", "--fail-on", "harm>0"], r"cannot read the condition 'harm>0'"),
    (["audit", "{batch}", "--store", "{tmp}/a.db", "--fail-on", "errors=>1", *M], r"cannot read the condition 'errors=>1'"),
    # audit-diff, export, verify-bundle
    (["audit-diff", "{not_db}", "{not_db}"], r"notes.db is not an audit store"),
    (["audit-diff", "{tmp}/missing.db", "{not_db}", "--html", "{tmp}/d.html"], r"audit store not found"),
    (["export", "{not_db}", "--bundle", "{tmp}/ev"], r"notes.db is not an audit store"),
    (["export", "{not_db}", "--bundle", "{tmp}/ev", "--sign-key", "{bad_json}"], r"cannot read the signing key .*bad.json"),
    (["verify-bundle", "{tmp}"], r"is not an evidence bundle \(no manifest.json\)"),
    (["verify-bundle", "{tmp}", "--rerun", "-1"], r"--rerun must be 0 or more"),
    # verify-safety, harden
    (["verify-safety", "--budget", "-5", *M, "--json", "{tmp}/v.json"], r"budget must be a whole number of evaluations ≥ 1, got -5"),
    (["verify-safety", "--harmful", "{tmp}/missing.csv", *M], r"cannot read .*missing.csv"),
    (["verify-safety", "--harmful", "{bad_json}", *M], r"bad.json:1: not a JSON object with a 'prompt'"),
    (["verify-safety", "--store", "{not_db}", *M], r"notes.db is not an audit store .*choose another --store"),
    (["verify-safety", "--patch", "{tmp}/missing.safetensors", *M], r"patch file not found"),
    (["harden", "--requests", "0", *M], r"harden needs at least 2 attack requests"),
    (["harden", "--templates", "-1", *M], r"--templates must be a whole number of jailbreak templates ≥ 0"),
    (["harden", "--store", "{not_db}", *M], r"notes.db is not an audit store"),
    (["harden", "--patch-kind", "surgery", *M], r"unknown --patch-kind 'surgery'; choose one of steering, lora"),
    (["harden", "--hold-out", "jedi_mind_trick", *M], r"cannot hold out 'jedi_mind_trick': not an attack or family"),
    (["harden", "--fpr", "1.5", *M], r"--fpr must lie between 0 and 1"),
    (["harden", "--alpha", "2", *M], r"--alpha applies to --patch-kind steering only, not gated-lora"),
    (["harden", "--patch-kind", "lora", "--fpr", "0.1", *M], r"--fpr applies to the steering and gated-lora patches"),
    (["harden", "--patch-kind", "steering", "--lora-steps", "5", *M], r"--lora-steps applies to --patch-kind lora and"),
    # demo
    (["demo", "train", "--variant", "nope", "--out", "{tmp}/demo"], r"unknown demo variant 'nope'"),
    (["demo", "train", "--variant", "safety", "--data-version", "9", "--out", "{tmp}/demo"],
     r"unknown demo data_version 9; this version knows 1 to 8"),
    (["demo", "train", "--recipe", "{bad_json}", "--out", "{tmp}/demo"], r"bad.json is not a card"),
    (["demo", "train", "--recipe", "{tmp}/missing/card.json", "--out", "{tmp}/demo"], r"no card at"),
    (["demo", "train", "--out", "{tmp}/demo"], r"say what to train"),
    (["demo", "eval", "--adapter", "{tmp}/missing", *M], r"adapter .*missing is not a PEFT adapter directory"),
    (["demo", "jailbreaks", "--requests", "0", "--out", "{tmp}/jb.jsonl"], r"--requests must be a whole number of requests ≥ 1"),
    (["demo", "jailbreaks", "--templates", "-1", "--out", "{tmp}/jb.jsonl"], r"--templates must be a whole number of templates ≥ 0"),
]
COMMANDS = [["explain"], ["explain-refusal"], ["explain-context"], ["trace"], ["targets"], ["audit"], ["audit-report"],
            ["audit-diff"], ["export"], ["verify-bundle"], ["jailbreak-diff"],
            ["refusal-direction"], ["verify-safety"], ["harden"], ["demo", "train"], ["demo", "eval"], ["demo", "jailbreaks"],
            []]


@pytest.fixture
def world(tmp_path, tiny_dir):
    """The files the cases point at, and a store another audit holds."""
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "notes.db").write_text("my notes, not a database\n" * 40)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{oops")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{oops")
    (tmp_path / "batch.jsonl").write_text(json.dumps({"prompt": "hi"}) + "\n")
    holder = AuditStore(tmp_path / "locked.db")
    holder.lock()
    names = {"tiny": str(tiny_dir), "tmp": str(tmp_path), "bad_json": str(tmp_path / "bad.json"),
             "not_db": str(tmp_path / "notes.db"), "corrupt_model": str(tmp_path / "model"),
             "corrupt_adapter": str(tmp_path / "adapter"), "batch": str(tmp_path / "batch.jsonl"),
             "locked_db": str(tmp_path / "locked.db"), "long": "hi " * 400}
    yield names
    holder.close()


def _snapshot(folder) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize("argv, says", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_sentence_exit_2_and_nothing_written(world, tmp_path, run_cli, argv, says):
    argv = [a.format(**world) for a in argv]
    before = _snapshot(tmp_path)
    code, err, out = run_cli(argv)
    assert code == 2, err + out
    assert "Traceback" not in err + out
    errors = [x for x in err.splitlines() if x.startswith("error: ")]
    if errors:  # ours: one line, the last on stderr (after any "line N skipped" reports of a batch)
        assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
        message = errors[0]
    else:  # the command line parser's usage error: its box names the option
        assert "Usage:" in err, err
        message = " ".join(re.sub(r"[│╭╮╰╯─]", " ", err).split())
    assert re.search(says, message), message
    assert _snapshot(tmp_path) == before  # nothing written, nothing touched


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "main")
def test_help_of_every_command_prints_without_a_traceback(command, run_cli):
    code, err, out = run_cli([*command, "--help"])
    assert code == 0 and "Usage" in out and "Traceback" not in err + out, err + out


def test_every_subcommand_has_a_bad_input_case():
    from typer.main import get_command

    def names(group, prefix=()):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from names(cmd, prefix + (name,))
            elif name != "targets":  # takes no input
                yield " ".join(prefix + (name,))

    covered = {" ".join(a[:2]) if a[0] == "demo" else a[0] for a, _ in CASES}
    assert set(names(get_command(cli.app))) <= covered
    assert {" ".join(c) for c in COMMANDS if c} == set(names(get_command(cli.app))) | {"targets"}


_CEILING = r"^error: one prompt of \d+ tokens needs about .* GB for one forward pass, more than the 0.0 GB it may take here; .*DIFFUSIONGEMMA_MAX_MEMORY"


@pytest.mark.parametrize("argv, limit, says", [
    (["explain", "The cat sat on the mat", *M, "--json", "{tmp}/a.json"], "1KB", _CEILING),
    (["explain-refusal", "The cat sat on the mat", *M, "--json", "{tmp}/a.json"], "1KB", _CEILING),  # its reply
    (["trace", "The cat sat on the mat", *M, "--html", "{tmp}/t.html"], "1KB", _CEILING),
    (["explain", "The cat sat on the mat", *M, "--json", "{tmp}/a.json"], "lots",
     r"^error: DIFFUSIONGEMMA_MAX_MEMORY='lots' is not a memory size"),
], ids=["explain", "explain-refusal", "trace", "bad value"])
def test_a_request_above_the_memory_ceiling_is_refused(world, tmp_path, monkeypatch, run_cli, argv, limit, says):
    """DIFFUSIONGEMMA_MAX_MEMORY below what one forward needs: every model command refuses before the forward
    (the kernel would otherwise kill it), in one sentence, exit 2, nothing written; a bad value is named."""
    monkeypatch.setenv("DIFFUSIONGEMMA_MAX_MEMORY", limit)
    before = _snapshot(tmp_path)
    code, err, out = run_cli([a.format(**world) for a in argv])
    assert code == 2 and "Traceback" not in err + out, err + out
    assert re.search(says, err.strip().splitlines()[-1]), err
    assert _snapshot(tmp_path) == before
