"""``gateway detectors train``: train a shipped model, write its weights and its card.

Reproducible: fixed seeds, a fixed split of the project's examples, and a weights file whose
bytes (and so its revision) depend only on the data and the settings. With ``--from-reviews``
the reviewers' labels on a context's (or one rule's) exchanges join the training side, and the
card lists the judgments used; model judgments only with ``--include-model``, and counted apart.
"""

from __future__ import annotations

import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli.common import ConfigOption, config_or_exit, fail, run_with_db
from gateway.detectors import card, datasets, linear, recipes
from gateway.detectors.train import Encode, measure
from gateway.review.states import ReviewerKind

MODELS_DIR = Path(__file__).resolve().parents[1] / "detectors" / "models"
PURPOSES = {
    "injection": "Prompt injection and jailbreak attempts in a user's (or a tool's) text, "
    "in any of the languages the multilingual sentence encoder reads; the label `injection`.",
    "human_likeness": "An assistant reply presenting itself as a person: feelings, a body, "
    "a life story, friendship or love for the user, first-hand human experience; "
    "the label `human_likeness`.",
    "tool_injection": "An instruction planted in a tool's result (a fetched e-mail or page) for "
    "the assistant to follow, scored per sentence (the highest); the label `injection`.",
}


def _reviewed(
    config_path: Path | None, specs: list[str], kinds: tuple[str, ...]
) -> list[datasets.Example]:
    from gateway.db.session import Sessions
    from gateway.evaluation.feedback import judged_findings, labelled_examples

    async def work(sessions: Sessions) -> list[datasets.Example]:
        examples = []
        for spec in specs:
            context, _, rule = spec.partition(":")
            judged = await judged_findings(sessions, context, rule, kinds=kinds)
            for text, label, provenance in labelled_examples(judged):
                examples.append(datasets.Example(text, label, "review", provenance=provenance))
        return examples

    return run_with_db(config_or_exit(config_path), work)


def _reviews_line(extra: list[datasets.Example]) -> str:
    kinds = [e.provenance.get("reviewer_kinds", []) for e in extra]
    human = sum(1 for k in kinds if ReviewerKind.HUMAN in k)
    model = sum(1 for k in kinds if ReviewerKind.MODEL in k)
    return f"from reviews: {len(extra)} examples ({human} with human, {model} with model judgments)"


def _cost(model: linear.LinearModel) -> str:
    """CPU time of scoring one 500-character text (thread time, so a busy machine does not
    inflate it): p50 and p99, with its sentence embedding new and then cached."""
    base = "Please ignore the noise in this signal and summarise the report for our team. " * 8
    fresh: list[float] = []
    cached: list[float] = []
    for i in range(200):
        text = f"{i} {base}"[:500]
        for timings in (fresh, cached):
            start = time.thread_time()
            model.score([text])
            timings.append(1000 * (time.thread_time() - start))

    def cut(timings: list[float]) -> str:
        p99 = statistics.quantiles(timings, n=100)[98]
        return f"p50 {statistics.median(timings):.2f} ms, p99 {p99:.2f} ms"

    if not model.needs_encoder:
        return cut(fresh)
    return f"{cut(fresh)} with a new embedding; {cut(cached)} with the embedding cached"


def _features(recipe: recipes.Recipe) -> str:
    f = recipe.features
    text = (
        f"character {f.char_range[0]}-{f.char_range[1]}-grams inside words "
        f"(up to {f.char_terms:,} terms) "
        f"and word {f.word_range[0]}-{f.word_range[1]}-grams (up to {f.word_terms:,}), TF-IDF, "
        "NFKC-normalised and casefolded"
    )
    if f.sentence_scale:
        text += (
            f", with the 512-d multilingual USE v3 sentence embedding (weight {f.sentence_scale})"
        )
    text += f"; regularisation C={f.c:g}"
    weights = [f"{name} rows count {w:g} times" for name, w in f.source_weights]
    if f.hard_negative_weight != 1:
        weights.append(f"neuralchemy's benign rows {f.hard_negative_weight:g} times")
    if weights:
        text += "; " + ", ".join(weights) + " (classes balanced)"
    return text


def _write(built: recipes.Built, out: Path, meta: dict[str, Any], heldout: list[Path]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    raw = linear.dump_bytes(built.trained.data)
    path = out / f"{built.recipe.name}.json.gz"
    path.write_bytes(raw)
    model = linear.load_linear(path, encode=built.trained.model._encode)
    for extra in heldout:
        rows = datasets.read_jsonl(extra)
        built.heldout[extra.name] = measure(model, rows, built.threshold)
        typer.echo(f"  held out {extra.name}: " + card_line(built.heldout[extra.name]))
    meta.update(
        revision=model.info.revision,
        file=path.name,
        size=len(raw),
        cost=_cost(model),
        max_difference=built.trained.max_difference,
    )
    (out / f"{built.recipe.name}.md").write_text(
        card.render(meta, built.figures, built.heldout), encoding="utf-8"
    )
    return path


def card_line(result: dict[str, Any]) -> str:
    from gateway.detectors.train import describe

    return describe(result)


def _threshold_rule(limits: dict[str, float]) -> str:
    parts = [f"at most {100 * limits['all']:g}% of all benign validation rows"]
    parts += [f"{100 * v:g}% of the {k} benign rows" for k, v in limits.items() if k != "all"]
    return (
        "The lowest threshold (the highest recall) that stops "
        + ", and ".join(parts)
        + f", and at most {100 * limits['all']:g}% of each validation dataset's benign rows "
        "(when it has at least 100); chosen on validation rows only."
    )


def register(app: typer.Typer) -> None:
    """Add the command to the ``detectors`` group."""

    @app.command("train")
    def train_command(
        model: Annotated[str, typer.Argument(help="injection or human_likeness")],
        out: Annotated[
            Path, typer.Option(help="Where to write <model>.json.gz and <model>.md.")
        ] = MODELS_DIR,
        data: Annotated[Path | None, typer.Option(help="The shared public data folder.")] = None,
        examples: Annotated[
            Path, typer.Option(help="The project's labelled examples.")
        ] = datasets.PROJECT_DATA,
        from_reviews: Annotated[
            list[str] | None,
            typer.Option(
                "--from-reviews",
                help="CONTEXT:RULE whose reviewer labels join training (repeatable): the rule"
                " that uses this model, so other rules' verdicts never become its labels.",
            ),
        ] = None,
        include_model: Annotated[
            bool,
            typer.Option(
                "--include-model", help="Use model judges' judgments too (kept apart in the card)."
            ),
        ] = False,
        heldout: Annotated[
            list[Path] | None,
            typer.Option(
                help="A held-out JSONL set to measure after training (repeatable; never trains)."
            ),
        ] = None,
        sentence: Annotated[
            bool | None,
            typer.Option(
                "--sentence/--no-sentence",
                help="Add the sentence embedding (default: the model's recipe).",
            ),
        ] = None,
        sample: Annotated[
            int | None, typer.Option(help="Use a fixed sample of N rows per split (quick runs).")
        ] = None,
        config: ConfigOption = None,
    ) -> None:
        """Train a shipped model on the public data and the project's examples."""
        if model not in recipes.RECIPES:
            raise fail(f"no model {model!r}; choose one of {', '.join(recipes.RECIPES)}", 2)
        kinds = (ReviewerKind.HUMAN, ReviewerKind.MODEL) if include_model else (ReviewerKind.HUMAN,)
        unruled = [spec for spec in from_reviews or [] if not spec.partition(":")[2]]
        if unruled:
            raise fail(
                f"--from-reviews {unruled[0]}: name the rule as CONTEXT:RULE (the rule that uses"
                f" the {model} model); another rule's verdicts are no labels for it",
                2,
            )
        extra = _reviewed(config, from_reviews, kinds) if from_reviews else []
        if from_reviews:
            typer.echo(_reviews_line(extra))
        try:
            recipe = recipes.RECIPES[model](data or datasets.default_shared_data(), examples, extra)
        except datasets.DataMissing as exc:
            raise fail(str(exc), 2) from exc
        if sample:
            recipe = recipes.sampled(recipe, sample)
        if sentence is not None:
            recipe.features = recipes.with_sentence(recipe.features, sentence)
        encode = _encoder(recipe)
        command = "gateway detectors train " + shlex.join(
            sys.argv[3:] if len(sys.argv) > 3 else [model]
        )
        built = recipes.build(recipe, encode, typer.echo, recipes.weights_metadata(recipe))
        meta = {
            "name": model,
            "purpose": PURPOSES[model],
            "features": _features(recipe),
            "sources": recipe.sources,
            "threshold": built.threshold,
            "threshold_rule": _threshold_rule(recipe.limits),
            "command": command,
            "rows": f"{len(recipe.train):,} training, {len(recipe.validation):,} validation",
            "reviews": [e.provenance for e in extra],
        }
        path = _write(built, out, meta, heldout or [])
        typer.echo(f"wrote {path} ({path.stat().st_size:,} bytes), threshold {built.threshold:.4f}")


def _encoder(recipe: recipes.Recipe) -> Encode | None:
    if not recipe.features.sentence_scale:
        return None
    from gateway.detectors.embedding import shared_encoder

    return shared_encoder().encode
