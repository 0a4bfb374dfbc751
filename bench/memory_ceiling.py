"""Memory ceiling (issue 29): the peak resident memory of each workflow by input length, the figures the
memory table in docs/scaling.md documents. Every case is the real command line in a fresh process, and its peak is that
process's own ``ru_maxrss`` (written by the process itself at its end), not the largest child so far.

The input is B7's long text (DAN templates, then BIPIA e-mails, then an AdvBench request), cut to about the
given number of tokens. Budgets are small: the batch is capped (64 rows on CPU, 16 with a backward pass), so
the peak depends on the input's length, not on how many evaluations a run spends. A case still running after
5 minutes is stopped and its peak so far reported. explain-refusal runs through its API without the trigger
search (its command line has no switch for it, and on long prompts the search alone outlasts the case); the
search's forwards have the map's shapes, its confirmations are generations.

Run: ``python -m bench.run memory_ceiling --out bench/results`` (``--quick``: 256 and 1,024 tokens only).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .common import environment, write_result

LENGTHS = (256, 1024, 4096)
SAFETY = ["--model", "gemma-270m-safety"]
# workflow -> its command line for a prompt file P, a JSONL file J and a work folder W
CASES: dict[str, Callable[[str, str, str], list[str]]] = {
    "explain (auto units, next token)": lambda p, j, w: ["explain", "--prompt-file", p, "--budget", "16",
                                                         "--json", f"{w}/e.json"],
    "explain, components (heads + mlps)": lambda p, j, w: ["explain", "--prompt-file", p, "--units", "heads+mlps",
                                                            "--budget", "16", "--json", f"{w}/c.json"],
    "explain-refusal API (reply, map, components map; no trigger search)": lambda p, j, w: _api(
        p, "explain_refusal(text, budget=16, max_new_tokens=16, triggers=False, faithfulness=False)"),
    "explain-refusal API, method gradient (sentences)": lambda p, j, w: _api(
        p, "explain_refusal(text, budget=9, max_new_tokens=16, method='gradient', units='sentences', "
           "triggers=False, faithfulness=False)"),
    "trace (reply of 16 tokens)": lambda p, j, w: ["trace", "--prompt-file", p, *SAFETY, "--budget", "16",
                                                   "--max-new-tokens", "16", "--json", f"{w}/t.json"],
    "audit (one item, --no-checks)": lambda p, j, w: ["audit", j, "--store", f"{w}/a.db", *SAFETY, "--no-checks",
                                                      "--budget", "16", "--max-new-tokens", "16"],
}


def _api(prompt_file: str, call: str) -> list[str]:
    """A case that calls the API (explain-refusal's command line has no switch for its trigger search, which
    takes longer than the case may run on long prompts; its forwards have the map's shapes)."""
    return ["--api", f"from diffusiongemma import explain_refusal\ntext = open({prompt_file!r}).read()\n{call}"]


def text_of(tokens: int) -> str:
    """B7's long text cut to about ``tokens`` tokens (1.24 a word on Gemma), ending with its AdvBench request."""
    from .long_inputs import harmful, long_text

    request = harmful()[0]
    words = long_text(tokens + 200).split()
    keep = max(1, int(tokens / 1.24) - len(request.split()))
    return " ".join(words[:keep]) + "\n\n" + request


def _count_tokens(text: str) -> int:
    from transformers import AutoTokenizer

    from diffusiongemma.models.default_gemma import ensure_default_tokenizer

    return len(AutoTokenizer.from_pretrained(ensure_default_tokenizer())(text)["input_ids"])


def run_case(args: list[str], timeout: float) -> dict[str, Any]:
    """One command in a fresh process: wall time, exit code, its own peak RSS, the end of its stderr."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=timeout)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:  # stopped: its peak so far (a lower bound) is still written
        proc.terminate()
        _, err = proc.communicate()
        status = f"stopped at {timeout:.0f} s (peak so far)"
    # its own peak, as the wrapper (_wrapped) writes it last on stderr; none if it was stopped
    peak = next((float(x.split()[-1]) for x in reversed(err.splitlines()) if x.startswith("[peak-rss-kb]")), None)
    return {"wall_s": time.perf_counter() - t0, "status": status, "returncode": proc.returncode,
            "peak_rss_gb": None if peak is None else peak / 2**20,
            "stderr_tail": [x for x in err.splitlines() if not x.startswith("[peak-rss-kb]")][-2:]}


def main(quick: bool, out: Path, command: str, seed: int = 0, only: str | None = None,
         timeout: float = 300.0) -> Path:
    lengths = LENGTHS[:2] if quick else LENGTHS
    work = Path(tempfile.mkdtemp())
    rows: list[dict[str, Any]] = []
    for tokens in lengths:
        text = text_of(tokens)
        prompt, log = work / f"p{tokens}.txt", work / f"p{tokens}.jsonl"
        prompt.write_text(text)
        log.write_text(json.dumps({"prompt": text}) + "\n")
        measured = _count_tokens(text)
        for name, argv in CASES.items():
            if only and only not in name:
                continue
            case_dir = work / f"{tokens}-{len(rows)}"
            case_dir.mkdir()
            row = {"case": name, "tokens": measured, "words": len(text.split()),
                   **run_case(_wrapped(argv(str(prompt), str(log), str(case_dir))), timeout)}
            print(f"[memory_ceiling] {tokens} tokens, {name}: {row['status']}, {row['wall_s']:.0f} s, "
                  f"{row['peak_rss_gb']} GB", flush=True)
            rows.append(row)
    payload = {"environment": environment(), "seed": seed, "rows": rows}
    return write_result("memory_ceiling", command, payload, table(rows), out)


def _wrapped(args: list[str]) -> list[str]:
    """The CLI's arguments behind ``-c``: run the console script (or, for ``["--api", CODE]``, the code), then
    print this process's own peak RSS."""
    if args[0] == "--api":
        return ["-c", "import resource, signal, sys, warnings\nwarnings.filterwarnings('ignore')\n"
                "signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\ntry:\n"
                + "".join(f"    {line}\n" for line in args[1].splitlines())
                + "finally:\n    sys.stderr.write(f\"[peak-rss-kb] {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n\")\n"]
    script = ("import resource, signal, sys\nfrom diffusiongemma import cli\nsys.argv = ['diffusiongemma', *sys.argv[1:]]\n"
              "signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
              "try:\n    cli.main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
              "sys.stderr.write(f\"[peak-rss-kb] {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n\")\n"
              "sys.exit(code)\n")
    return ["-c", script, *args]


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| workflow | tokens | words | s | peak RSS GB | outcome |", "|---|---|---|---|---|---|"]
    for r in rows:
        peak = "" if r["peak_rss_gb"] is None else f"{r['peak_rss_gb']:.2f}"
        outcome = r["status"] if r["status"] == "ok" else f"{r['status']}: {' '.join(r['stderr_tail'])[:200]}"
        lines.append(f"| {r['case']} | {r['tokens']} | {r['words']} | {r['wall_s']:.0f} | {peak} | {outcome} |")
    return "\n".join(lines)
