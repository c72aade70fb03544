"""The shipped corpus meets its data card: counts per label, realism rules that can be checked, no
duplicates after normalisation, nothing taken from the evaluation-only benchmarks."""

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from model.conversation.taxonomy import load_taxonomy
from tests.factories import SHARED
from training.data.corpus import corpus_stats, find_duplicates, sample_per_label
from training.data.load import load_data

ROOT = Path(__file__).resolve().parents[3]
WRITTEN_MINIMUM = 150  # rows per reason2 label and per topic in the written-register layer
RESOLUTION_MINIMUM = {
    "Решено": 150,
    "Не решено": 150,
    "Не решено - Эскалировать": 150,
    "НТО": 80,
    "Спам": 80,
    "Дубликат": 40,
}


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(ROOT / "datasets" / "taxonomy.yaml")


@pytest.fixture(scope="module")
def corpus(taxonomy):
    return load_data([ROOT / "datasets" / "corpus"], taxonomy)


def is_written(row) -> bool:
    """A row of the written-register layer (datasets/corpus/written_*.jsonl: ids and scenarios «w-…»)."""
    return Path(row.source.rsplit(":", 1)[0]).name.startswith("written_")


@pytest.fixture(scope="module")
def conversations(corpus):
    return [r for r in corpus.rows if not is_written(r)]


@pytest.fixture(scope="module")
def written(corpus):
    return [r for r in corpus.rows if is_written(r)]


@pytest.fixture(scope="module")
def stats(corpus):
    return corpus_stats(corpus)


def test_corpus_label_counts(stats, taxonomy):
    for task in ("reason2", "topic"):
        short = {
            label: stats["labels"][task].get(label, 0)
            for label in taxonomy.tasks[task].labels
            if stats["labels"][task].get(label, 0) < 60
        }
        assert not short, f"{task}: labels under 60 rows: {short}"
    resolution = stats["labels"]["resolution"]
    short = {label: resolution.get(label, 0) for label, n in RESOLUTION_MINIMUM.items() if resolution.get(label, 0) < n}
    assert not short, f"resolutions under their minimum: {short}"


def test_corpus_distinct_formulations_per_label(stats, taxonomy):
    for task in ("reason2", "topic"):
        thin = {label: n for label, n in stats["scenarios"][task].items() if n < 40}
        assert not thin, f"{task}: labels with under 40 distinct scenarios: {thin}"


def test_corpus_marketplace_rows_carry_resolution(conversations):
    # conversation rows only: the written layer is one client message, with no operator answer to resolve
    missing = [
        r.source for r in conversations if "topic" in r.interaction.labels and "resolution" not in r.interaction.labels
    ]
    assert not missing, missing[:5]


def test_written_layer_shape(written, taxonomy):
    assert len(written) >= 9000
    bad = [
        r.source
        for r in written
        if not (r.interaction.id or "").startswith("w-")
        or not r.group.startswith("w-")
        or len(r.interaction.turns) != 1
        or r.interaction.turns[0].role != "client"
        or set(r.interaction.labels) not in ({"reason2"}, {"topic"})
    ]
    assert not bad, bad[:5]
    for task in ("reason2", "topic"):
        counts = Counter(r.interaction.labels[task] for r in written if task in r.interaction.labels)
        short = {
            label: counts.get(label, 0)
            for label in taxonomy.tasks[task].labels
            if counts.get(label, 0) < WRITTEN_MINIMUM
        }
        assert not short, f"written layer, {task}: labels under {WRITTEN_MINIMUM} rows: {short}"


def test_written_layer_follows_the_tariff_guideline(written):
    # a tariff change request is «Информация по ТП»; «Не могу перейти на ТП» is a failed change (taxonomy guideline)
    import re

    plain_request = re.compile(
        r"^(здравствуйте[,.!]?\s*)?(хочу|хотел[аи]?|можно|как) (бы )?(сменить|поменять|перейти на другой) тариф\W*$",
        re.I,
    )
    wrong = [
        r.interaction.turns[0].text
        for r in written
        if r.interaction.labels.get("reason2") == "Не могу перейти на ТП"
        and plain_request.match(r.interaction.turns[0].text.strip())
    ]
    assert not wrong, wrong[:5]


def test_corpus_duplicates_are_email_with_history(corpus):
    rows = [r for r in corpus.rows if r.interaction.labels.get("resolution") == "Дубликат"]
    assert rows
    assert all(r.interaction.channel == "email" for r in rows)
    assert all(isinstance(r.raw_history, list) and r.raw_history for r in rows)


def test_corpus_channels_and_macros(conversations):
    # conversation rows (the written layer is written: chats, posts and e-mails, no macros)
    telecom = Counter(r.interaction.channel for r in conversations if "reason2" in r.interaction.labels)
    market = Counter(r.interaction.channel for r in conversations if "topic" in r.interaction.labels)
    assert telecom["call"] > telecom["chat"] > 0
    assert market["chat"] > market["call"] > 0 and market["email"] > 0
    assert sum(1 for r in conversations if r.interaction.macros) / len(conversations) >= 0.30


def test_corpus_no_duplicates_after_normalisation(corpus):
    pairs = find_duplicates(corpus)
    assert not pairs, pairs[:10]


def test_corpus_bootstrap_sample_covers_every_label(corpus, taxonomy):
    chosen = sample_per_label(corpus, 12)
    counts = Counter(
        (t, corpus.rows[i].interaction.labels[t]) for i in chosen for t in corpus.rows[i].interaction.labels
    )
    for name, task in taxonomy.tasks.items():
        assert all(counts[(name, label)] >= 12 for label in task.labels), name
    shipped = load_data([ROOT / "datasets" / "bootstrap"], taxonomy)
    shipped_counts = Counter((t, x.labels[t]) for x in shipped.interactions for t in x.labels)
    assert all(shipped_counts[(n, label)] >= 12 for n, t in taxonomy.tasks.items() for label in t.labels)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/benchmarks is not beside this clone")
def test_corpus_copies_nothing_from_benchmarks(corpus):
    texts = []
    tweets = pd.read_csv(SHARED / "benchmarks" / "telecom_tweets" / "test.csv")
    texts += tweets["text"].tolist()
    for name in ("train.csv", "test.csv"):
        texts += pd.read_csv(SHARED / "benchmarks" / "rutube_support" / name)["text"].tolist()
    corpus_text = "\n".join(" ".join(t.text.lower() for t in x.turns) for x in corpus.interactions)
    fragments = []
    for text in texts:
        words = str(text).lower().split()
        # any 8-word run of a benchmark text found verbatim in the corpus counts as copying
        for i in range(0, max(0, len(words) - 8), 4):
            fragment = " ".join(words[i : i + 8])
            if len(fragment) > 30 and fragment in corpus_text:
                fragments.append(fragment)
    assert not fragments, fragments[:5]
