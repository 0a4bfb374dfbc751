"""Paired comparison of B8 runs: on the contexts both methods ranked, how often only ours put the planted line
first, how often only the peer did, and the exact McNemar test of the difference. Runs of several draws pool by
(seed, context, its length in tokens and units), so runs of one draw with the methods run apart pair up, and runs of
other draws (another ``--only docs=``) do not mix.

``python -m bench.paired bench/results/injection-A.json bench/results/injection-B.json --budget 16 [--min-tokens 1000]``

Examples:
    >>> round(mcnemar(8, 1), 4), round(mcnemar(4, 1), 3), mcnemar(0, 0)
    (0.0391, 0.375, 1.0)
"""

from __future__ import annotations

import argparse
import json
from math import comb
from pathlib import Path
from typing import Any

__all__ = ["mcnemar", "paired_top1"]

OURS = "ours (default shapley)"


def mcnemar(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (a binomial test of ``only_a`` of
    ``only_a + only_b`` at ½)."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def paired_top1(runs: list[dict[str, Any]], budget: int, min_tokens: int = 0) -> dict[str, dict[str, Any]]:
    """For each peer in ``runs`` (B8 result payloads): contexts ranked by both, top-1 counts, discordant pairs, p.

    Examples:
        >>> rows = [{"context": c, "method": m, "budget": 16, "tokens": 900, "top1": t}
        ...         for c, m, t in [(0, OURS, True), (0, "peer", False), (1, OURS, True), (1, "peer", True)]]
        >>> paired_top1([{"seed": 0, "rows": rows}], 16)["peer"]["only_ours"]
        1
    """
    table: dict[tuple[int, int, int, int], dict[str, bool]] = {}
    for run in runs:
        for r in run["rows"]:
            if r.get("budget") == budget and r.get("tokens", 0) >= min_tokens and r.get("top1") is not None:
                key = (run["seed"], r["context"], r.get("tokens", 0), r.get("n", 0))
                table.setdefault(key, {})[r["method"]] = bool(r["top1"])
    peers = sorted({m for row in table.values() for m in row} - {OURS})
    out = {}
    for peer in peers:
        both = [row for row in table.values() if OURS in row and peer in row]
        a = sum(row[OURS] and not row[peer] for row in both)
        b = sum(row[peer] and not row[OURS] for row in both)
        out[peer] = {"contexts": len(both), "ours": sum(row[OURS] for row in both),
                     "peer": sum(row[peer] for row in both), "only_ours": a, "only_peer": b, "p": mcnemar(a, b)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--budget", type=int, required=True)
    parser.add_argument("--min-tokens", type=int, default=0)
    args = parser.parse_args()
    runs = [json.loads(f.read_text()) for f in args.files]
    for peer, s in paired_top1(runs, args.budget, args.min_tokens).items():
        print(f"{peer}: {s['contexts']} contexts; top-1 ours {s['ours']}, peer {s['peer']}; only ours "
              f"{s['only_ours']}, only peer {s['only_peer']}; exact McNemar p = {s['p']:.4f}")


if __name__ == "__main__":
    main()
