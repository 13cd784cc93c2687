"""What each shipped model learns from, where its threshold is chosen, and where it is measured.

``injection``: S-Labs and neuralchemy train splits, BIPIA's code-attack instructions, and the
project's written examples (``injection*.jsonl``: non-English benign and attacks, benign
prompts full of trap words) on their train side. The threshold is chosen on S-Labs and
neuralchemy validation plus the project's validation side; measured on S-Labs and neuralchemy
test, XSTest's safe prompts and JailbreakBench's benign behaviours. A prompt template labelled
both ways in training or validation (neuralchemy labels some rows of one jailbreak template
benign) neither trains nor sets the threshold; the test splits are measured as they are.

``human_likeness``: the project's written assistant replies (``human_likeness*.jsonl``); there
is no public set of this kind, so validation is the project's own validation side.

Reviewer-labelled examples (``--from-reviews``) join the training side only. No recipe reads
``evals/``: a held-out set is measured after training, and only when the command is given it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.detectors import bipia_data
from gateway.detectors import datasets as ds
from gateway.detectors.train import (
    Encode,
    Features,
    Pipeline,
    Progress,
    Trained,
    choose_threshold,
    describe,
    exported,
    group_of,
    measure,
)
from gateway.detectors.train import figures as figures_of


@dataclass
class Recipe:
    name: str
    label: str
    train: list[ds.Example]
    validation: list[ds.Example]
    tests: dict[str, list[ds.Example]]
    #: share of benign validation rows a threshold may stop, overall ("all") and per group
    limits: dict[str, float]
    features: Features
    #: (dataset, license, how it is used) for the card
    sources: list[tuple[str, str, str]] = field(default_factory=list)


PUBLIC_INJECTION = [
    ("S-Labs prompt-injection (train / validation / test)", "MIT", "train / threshold / measured"),
    (
        "neuralchemy Prompt-injection-dataset core (train / validation / test)",
        "Apache-2.0",
        "train / threshold / measured",
    ),
    ("BIPIA code-attack instructions, training half", "MIT", "train (attacks)"),
    ("XSTest safe prompts (250)", "CC-BY-4.0", "measured only"),
    ("JailbreakBench benign behaviours (100)", "MIT", "measured only"),
]
WRITTEN = "the project's written examples, gateway/detectors/data/{name}*.jsonl"

#: the injection model: TF-IDF n-grams and the multilingual sentence embedding (at weight 2),
#: S-Labs rows three times; chosen on validation (C 1-30, sentence weight 1-4, S-Labs weight
#: 1 or 3, 40k/20k to 100k/50k terms)
INJECTION_FEATURES = Features(
    sentence_scale=2.0,
    c=3.0,
    hard_negative_weight=3.0,
    source_weights=(("s-labs", 3.0),),
)
HUMAN_FEATURES = Features(char_terms=20_000, word_terms=10_000, min_df=1, sentence_scale=1.0, c=3.0)


def injection(data: Path, project: Path, extra: Sequence[ds.Example] = ()) -> Recipe:
    written_train, written_validation = ds.split(ds.project_examples("injection", project))
    validation = [
        *ds.s_labs(data, "validation"),
        *ds.neuralchemy(data, "validation"),
        *written_validation,
    ]
    tests = {
        "S-Labs test": ds.s_labs(data, "test"),
        "neuralchemy core-test": ds.neuralchemy(data, "test"),
        "XSTest safe prompts": ds.xstest_safe(data),
        "JailbreakBench benign": ds.jailbreakbench_benign(data),
    }
    candidates = [
        *ds.s_labs(data, "train"),
        *ds.neuralchemy(data, "train"),
        *ds.bipia_attacks(data),
        *written_train,
        *extra,
    ]
    # a template labelled both ways (in training or validation) neither trains nor sets the
    # threshold; the test splits are measured as they are
    contradictory = ds.contradictions([*candidates, *validation])
    validation = ds.without(validation, contradictory)
    held = [*validation, *(e for rows in tests.values() for e in rows)]
    train = ds.dedupe(ds.without(candidates, contradictory), held)
    return Recipe(
        "injection",
        "injection",
        train,
        validation,
        tests,
        limits={"all": 0.01, "non-en": 0.02},
        features=INJECTION_FEATURES,
        sources=[
            *PUBLIC_INJECTION,
            (
                WRITTEN.format(name="injection"),
                "Apache-2.0 (the project's)",
                "train / threshold (split by text digest, 30% threshold)",
            ),
        ],
    )


def human_likeness(data: Path, project: Path, extra: Sequence[ds.Example] = ()) -> Recipe:
    written = ds.project_examples("human_likeness", project)
    if not written:
        raise ds.DataMissing(f"no human_likeness*.jsonl in {project}")
    train, validation = ds.split(written)
    return Recipe(
        "human_likeness",
        "human_likeness",
        ds.dedupe([*train, *extra], validation),
        validation,
        {},
        limits={"all": 0.02},
        features=HUMAN_FEATURES,
        sources=[
            (
                WRITTEN.format(name="human_likeness"),
                "Apache-2.0 (the project's)",
                "train / threshold (split by text digest, 30% threshold)",
            )
        ],
    )


#: the tool-result model: windows (sentences) scored one by one, the text's score the highest;
#: at most 64 windows a text (a longer text is read as 64 runs of sentences)
TOOL_FEATURES = Features(min_df=1, sentence_scale=2.0, c=3.0, windows=64)


def _tool_tests(data: Path) -> dict[str, list[ds.Example]]:
    """BIPIA's test split planted and clean, and ordinary texts a tool could return."""
    test_emails = bipia_data.emails(data, "test")
    return {
        "BIPIA test: attacks planted in e-mails": bipia_data.planted(
            test_emails, bipia_data.attacks(data, "test", ("text",))
        ),
        "BIPIA test: code attacks planted in e-mails": bipia_data.planted(
            test_emails, bipia_data.attacks(data, "test", ("code",))
        ),
        "BIPIA test: clean e-mails": bipia_data.clean(test_emails),
        "presidio PII samples' texts": bipia_data.pii_sentences(data),
        "XSTest safe prompts": ds.xstest_safe(data),
        "JailbreakBench benign": ds.jailbreakbench_benign(data),
    }


def tool_injection(data: Path, project: Path, extra: Sequence[ds.Example] = ()) -> Recipe:
    """Instructions planted in tool results (BIPIA's e-mail task): trained on the training
    split's windows, the threshold chosen on its held-out e-mails and attack categories, measured
    on the test split and on ordinary texts a tool could return."""
    cut = bipia_data.split_train(data)
    train = [
        *bipia_data.attack_windows(cut.train_attacks),
        *bipia_data.email_windows(cut.train_emails, bipia_data.test_sentences(data)),
        *extra,
    ]
    validation = [
        *bipia_data.planted(cut.held_emails, cut.held_attacks),
        *bipia_data.clean(cut.held_emails),
    ]
    tests = _tool_tests(data)
    return Recipe(
        "tool_injection",
        "injection",
        ds.dedupe(train),
        validation,
        tests,
        limits={"all": 0.0},
        features=TOOL_FEATURES,
        sources=[
            (
                "BIPIA e-mails and text and code attacks, training split",
                "MIT",
                "train (70% of e-mails and attack categories; an e-mail also in the test file,"
                " and a test e-mail's sentence, never) / threshold (the other 30%)",
            ),
            ("BIPIA test split (e-mails, text and code attacks)", "MIT", "measured only"),
            ("presidio-research PII samples' texts (1,600)", "MIT", "measured only"),
            ("XSTest safe prompts (250)", "CC-BY-4.0", "measured only"),
            ("JailbreakBench benign behaviours (100)", "MIT", "measured only"),
        ],
    )


RECIPES = {
    "injection": injection,
    "human_likeness": human_likeness,
    "tool_injection": tool_injection,
}


def sampled(recipe: Recipe, size: int, seed: int = 7) -> Recipe:
    """A small fixed sample of every split (a quick run, in tests): both labels kept, and
    every reviewer-labelled example kept in training (the card names them all)."""

    def take(rows: list[ds.Example]) -> list[ds.Example]:
        if len(rows) <= size:
            return rows
        chosen = random.Random(seed).sample(rows, size)  # noqa: S311 (a fixed sample, not a secret)
        return (
            chosen
            if len({e.label for e in chosen}) == len({e.label for e in rows})
            else rows[:size]
        )

    return replace(
        recipe,
        train=take([e for e in recipe.train if e.source != "review"])
        + [e for e in recipe.train if e.source == "review"],
        validation=take(recipe.validation),
        tests={name: take(rows) for name, rows in recipe.tests.items()},
    )


@dataclass
class Built:
    recipe: Recipe
    trained: Trained
    threshold: float
    figures: dict[str, dict[str, Any]]
    heldout: dict[str, dict[str, Any]] = field(default_factory=dict)


def build(
    recipe: Recipe, encode: Encode | None, progress: Progress, metadata: dict[str, Any]
) -> Built:
    """Fit on the train side, choose the threshold on validation, export, check, measure."""
    rows = f"{len(recipe.train)} training rows, {len(recipe.validation)} validation rows"
    progress(f"{recipe.name}: {rows}")
    pipeline = Pipeline(recipe.features, encode).fit(recipe.train)
    scores = pipeline.probabilities([e.text for e in recipe.validation])
    threshold = choose_threshold(
        list(scores),
        [e.label for e in recipe.validation],
        [group_of(e) for e in recipe.validation],
        recipe.limits,
    )
    data = pipeline.export(recipe.name, recipe.label, threshold, metadata)
    trained = exported(pipeline, data, [e.text for e in recipe.validation[:300]])
    figures = {
        "validation (threshold chosen here)": figures_of(recipe.validation, list(scores), threshold)
    }
    for name, examples in recipe.tests.items():
        figures[name] = measure(trained.model, examples, threshold)
    for name, result in figures.items():
        progress(f"  {name}: {describe(result)}")
    return Built(recipe, trained, threshold, figures)


def weights_metadata(recipe: Recipe) -> dict[str, Any]:
    """What the weights came from, stored in the file; not the command line, whose --out
    would change the digest."""
    return {
        "rows": {"train": len(recipe.train), "validation": len(recipe.validation)},
        "features": asdict(recipe.features),
    }


def with_sentence(features: Features, on: bool) -> Features:
    """The features with the sentence embedding added (at weight 1, unless set) or left out."""
    return replace(features, sentence_scale=(features.sentence_scale or 1.0) if on else 0.0)
