"""The shipped corpus meets its data card: counts per label, realism rules that can be checked, no
duplicates after normalisation, nothing taken from the evaluation-only benchmarks."""

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from model.taxonomy import load_taxonomy
from training.corpus import corpus_stats, find_duplicates, sample_per_label
from training.data import load_data

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
RESOLUTION_MINIMUM = {"Решено": 150, "Не решено": 150, "Не решено - Эскалировать": 150, "НТО": 80, "Спам": 80, "Дубликат": 40}


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(ROOT / "datasets" / "taxonomy.yaml")


@pytest.fixture(scope="module")
def corpus(taxonomy):
    return load_data([ROOT / "datasets" / "corpus"], taxonomy)


@pytest.fixture(scope="module")
def stats(corpus):
    return corpus_stats(corpus)


def test_corpus_label_counts(stats, taxonomy):
    for task in ("reason2", "topic"):
        short = {l: stats["labels"][task].get(l, 0) for l in taxonomy.tasks[task].labels if stats["labels"][task].get(l, 0) < 60}
        assert not short, f"{task}: labels under 60 rows: {short}"
    resolution = stats["labels"]["resolution"]
    short = {l: resolution.get(l, 0) for l, n in RESOLUTION_MINIMUM.items() if resolution.get(l, 0) < n}
    assert not short, f"resolutions under their minimum: {short}"


def test_corpus_distinct_formulations_per_label(stats, taxonomy):
    for task in ("reason2", "topic"):
        thin = {l: n for l, n in stats["scenarios"][task].items() if n < 40}
        assert not thin, f"{task}: labels with under 40 distinct scenarios: {thin}"


def test_corpus_marketplace_rows_carry_resolution(corpus):
    missing = [r.source for r in corpus.rows if "topic" in r.interaction.labels and "resolution" not in r.interaction.labels]
    assert not missing, missing[:5]


def test_corpus_duplicates_are_email_with_history(corpus):
    rows = [r for r in corpus.rows if r.interaction.labels.get("resolution") == "Дубликат"]
    assert rows
    assert all(r.interaction.channel == "email" for r in rows)
    assert all(isinstance(r.raw_history, list) and r.raw_history for r in rows)


def test_corpus_channels_and_macros(corpus, stats):
    telecom = Counter(r.interaction.channel for r in corpus.rows if "reason2" in r.interaction.labels)
    market = Counter(r.interaction.channel for r in corpus.rows if "topic" in r.interaction.labels)
    assert telecom["call"] > telecom["chat"] > 0
    assert market["chat"] > market["call"] > 0 and market["email"] > 0
    assert stats["with_macros"] / stats["rows"] >= 0.30


def test_corpus_no_duplicates_after_normalisation(corpus):
    pairs = find_duplicates(corpus)
    assert not pairs, pairs[:10]


def test_corpus_bootstrap_sample_covers_every_label(corpus, taxonomy):
    chosen = sample_per_label(corpus, 12)
    counts = Counter((t, corpus.rows[i].interaction.labels[t]) for i in chosen for t in corpus.rows[i].interaction.labels)
    for name, task in taxonomy.tasks.items():
        assert all(counts[(name, label)] >= 12 for label in task.labels), name
    shipped = load_data([ROOT / "datasets" / "bootstrap"], taxonomy)
    shipped_counts = Counter((t, x.labels[t]) for x in shipped.interactions for t in x.labels)
    assert all(shipped_counts[(n, l)] >= 12 for n, t in taxonomy.tasks.items() for l in t.labels)


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
            fragment = " ".join(words[i:i + 8])
            if len(fragment) > 30 and fragment in corpus_text:
                fragments.append(fragment)
    assert not fragments, fragments[:5]
