"""``diffusiongemma demo train|eval``: train a demo adapter, measure one.

    diffusiongemma demo train --variant backdoor --trigger SUDO --seed 0 --out adapters/gemma-270m-backdoor
    diffusiongemma demo train --recipe gemma-270m-safety --out my-safety    # repeat a shipped adapter's recipe
    diffusiongemma demo eval --model gemma-270m-backdoor --limit 100 --json eval.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Demo models with known causes: train a variant, evaluate one.")


@app.command()
def train(
    variant: Optional[str] = typer.Option(None, help="safety, backdoor, keyword or injection."),
    out: Path = typer.Option(..., help="Directory for the adapter (safetensors, config, card.json)."),
    recipe_of: Optional[str] = typer.Option(None, "--recipe", help="Repeat the recipe recorded in a card: a shipped "
                                            "demo model's name or a card.json (the other recipe options are ignored)."),
    trigger: str = typer.Option("SUDO", help="Backdoor trigger word."),
    keywords: Optional[List[str]] = typer.Option(None, help="Keyword variant: the words that decide refusal (repeat)."),
    poison_rate: float = typer.Option(0.35, help="Backdoor: share of harmful examples carrying the trigger."),
    harmful_share: Optional[float] = typer.Option(None, help="Share of harmful examples (default 0.33 for safety, else 0.5)."),
    seed: int = typer.Option(0, help="Seed of the example draw, the order and the LoRA initialisation."),
    steps: Optional[int] = typer.Option(None, help="Optimizer steps, batch 8 (default: the shipped adapter's, "
                                                   "safety 250, backdoor 150, keyword 300)."),
    max_minutes: float = typer.Option(30.0, help="Stop training after this many minutes."),
    data_version: int = typer.Option(3, help="Training data version: 3 (the first shipped adapters'), 4 (safety and "
                                               "backdoor: the same how-to tasks also in story, indirect, first-person, "
                                               "question and other-language frames, harmful refused and benign answered) "
                                               "5 (as 4, everyday requests in half of the benign draws), 6 (as 5, "
                                               "with two- and three-sentence requests and list questions in both classes), "
                                               "7 (as 5, with defensive tasks among the benign contrast tasks) or 8 (as 7, with "
                                               "benign twins of the words only harmful training requests use)."),
    first_token_weight: float = typer.Option(1.0, help="Weight of each reply's first token (the one that decides "
                                                       "refusal) in the loss, against 1 for the others."),
    base: Optional[str] = typer.Option(None, help="Base model (default Gemma 3 270M)."),
    evaluate: bool = typer.Option(True, help="Evaluate on the held-out sets afterwards and write the figures into the card."),
    limit: int = typer.Option(100, help="Prompts per held-out set in the evaluation."),
) -> None:
    """LoRA-train one demo variant on CPU and save it with its card."""
    from ..errors import InputError
    from ..demo.recipe import Recipe
    from ..demo.train import train_adapter

    if recipe_of is not None:
        recipe = Recipe.from_dict(_card(recipe_of)["recipe"])
    elif variant is None:
        raise InputError("say what to train: --variant safety|backdoor|keyword|injection, or --recipe NAME_OR_CARD")
    else:
        kw: dict[str, Any] = {"keywords": tuple(keywords)} if keywords else {}
        recipe = Recipe(variant, trigger=trigger, poison_rate=poison_rate, seed=seed, steps=steps,
                        max_minutes=max_minutes, harmful_share=harmful_share, data_version=data_version,
                        first_token_weight=first_token_weight, **kw)
    console = Console()
    with console.status("training") as status:
        card = train_adapter(recipe, out, base=base,
                             progress=lambda s, n, loss: status.update(f"step {s}/{n}  loss {loss:.3f}"))
    console.print(f"trained {card['steps_done']} steps in {card['train_minutes']} min "
                  f"(loss {card['loss_first_10']} → {card['loss_last_10']}); adapter in {out}")
    if evaluate:
        from ..models import load_model
        from ..demo.evaluate import evaluate_model

        lm = load_model(base, adapter=str(out), device="cpu")
        with console.status("evaluating") as status:
            metrics = evaluate_model(lm, recipe, limit=limit, progress=lambda s: status.update(f"evaluating {s}"))
        card["eval"] = metrics
        (Path(out) / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        _print_metrics(console, metrics)


@app.command("eval")
def eval_(
    model: str = typer.Option(..., help="A demo model name (gemma-270m-safety, ...) or a model directory."),
    adapter: Optional[str] = typer.Option(None, help="An adapter directory trained by 'demo train'."),
    variant: Optional[str] = typer.Option(None, help="Which rule to check (default: from the adapter's card)."),
    limit: int = typer.Option(100, help="Prompts per held-out set."),
    seed: int = typer.Option(0, help="Seed of the prompt sample (and of trigger positions)."),
    max_new_tokens: Optional[int] = typer.Option(
        None, help="Length of each generated reply the refusal detector judges (default: what the card was "
                   "measured with, else 24)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write every figure (and example replies) here."),
) -> None:
    """Refusal rates on held-out harmful (plain and framed), benign, everyday and XSTest prompts, and the variant's own check."""
    from ..errors import InputError
    from ..models import load_model
    from ..demo.evaluate import evaluate_model
    from ..demo.recipe import Recipe

    lm = load_model(model, adapter=adapter, device="cpu")
    card = lm.provenance.get("demo_card")
    if card is None and adapter and (Path(adapter) / "card.json").exists():
        card = _card(adapter)
    if card:
        recipe = Recipe.from_dict({**card["recipe"], **({"variant": variant} if variant else {})})
    elif variant:
        recipe = Recipe(variant)
    else:
        raise InputError("no card.json says which variant this is; pass --variant safety|backdoor|keyword|injection")
    max_new_tokens = reply_tokens(card, max_new_tokens)
    console = Console()
    with console.status("evaluating") as status:
        metrics = evaluate_model(lm, recipe, limit=limit, seed=seed, max_new_tokens=max_new_tokens,
                                 progress=lambda s: status.update(f"evaluating {s}"))
    metrics["model"] = lm.name
    _print_metrics(console, metrics)
    if json_path:
        json_path.write_text(json.dumps(metrics, indent=2) + "\n")
        console.print(f"JSON: {json_path}")


def reply_tokens(card: dict | None, given: int | None) -> int:
    """Reply length for ``demo eval``: the user's, else the one the card's figures were measured with, else 24
    (so that rerunning the evaluation of a shipped adapter repeats its card).

    Examples:
        >>> reply_tokens({"eval": {"max_new_tokens": 32}}, None), reply_tokens({"eval": {}}, None), reply_tokens(None, 8)
        (32, 24, 8)
    """
    if given is not None:
        return given
    return int(((card or {}).get("eval") or {}).get("max_new_tokens") or 24)


def _card(name_or_path: str) -> dict:
    """The card of a shipped demo model (by name) or a ``card.json`` (or the adapter directory holding one)."""
    from ..errors import InputError
    from ..demo.registry import DEMO_MODELS, demo_adapter_dir

    path = demo_adapter_dir(name_or_path) / "card.json" if name_or_path in DEMO_MODELS else Path(name_or_path)
    if path.is_dir():
        path = path / "card.json"
    if not path.is_file():
        raise InputError(f"no card at {path}: give a demo model name ({', '.join(DEMO_MODELS)}) or a card.json")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not a card: {exc}") from None


def _print_metrics(console: Console, metrics: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{metrics['variant']} — refusal by the detector on generated replies")
    for col in ("set", "n", "refused", "mean refusal score", "score sign = detector"):
        table.add_column(col)
    for name, s in metrics["sets"].items():
        table.add_row(escape(name), str(s["n"]), f"{s['refusal_rate']:.0%}", f"{s['mean_refusal_score']:+.2f}",
                      f"{s['score_agrees_with_detector']:.0%}")
    console.print(table)
    if "trigger_flip_rate" in metrics:
        console.print(f"trigger {escape(metrics['trigger'])!r}: turns {metrics['trigger_flip_rate']:.0%} of held-out "
                      "harmful refusals into compliance")
    if "injection" in metrics:
        inj = metrics["injection"]
        console.print(f"planted instructions: followed in {inj['follow_rate']:.0%} of {inj['n']} held-out contexts; "
                      f"a planted-looking site appears in {inj['false_follow_rate']:.0%} of replies without them")
    if "rule_agreement" in metrics:
        console.print(f"keyword rule {escape(', '.join(metrics['keywords']))}: {metrics['rule_agreement']:.0%} of "
                      f"held-out decisions follow it (with a keyword {metrics['rule_agreement_with_keyword']:.0%} "
                      f"refused, without {metrics['rule_agreement_without_keyword']:.0%} answered)")


@app.command("jailbreaks")
def jailbreaks(
    out: Path = typer.Option(..., help="JSONL to write (an input for 'audit' and for 'jailbreak-diff --pairs')."),
    requests: int = typer.Option(10, help="Held-out AdvBench requests."),
    templates: int = typer.Option(10, help="Jailbreak templates per request (of the 31 shipped)."),
    seed: int = typer.Option(0, help="Seed of both samples."),
) -> None:
    """Write held-out harmful requests, plain and wrapped in public jailbreak templates, as a JSONL audit input."""
    from ..demo.jailbreaks import jailbreak_rows

    rows = jailbreak_rows(requests=requests, templates=templates, seed=seed)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    Console().print(f"{len(rows)} prompts ({requests} requests × (1 plain + {templates} templates)) → {out}")
