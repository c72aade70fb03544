"""The model ladder on one table: quality on the corpus and on real text, train time, latency.

    python bench/quality.py [--models tfidf,hybrid-use,hybrid-e5,transformer,transformer-cpu] [--folds 5] [--skip-cv]
                            [--columns tweets,latency,rutube,cv] [--requests 200] [--results FILE.json]

Rows: ``tfidf`` (training/configs/default.yaml), ``hybrid-use`` and ``hybrid-e5``
(training/configs/hybrid_*.yaml), ``transformer`` (training/configs/transformer_e5.yaml: every layer
fine-tuned) and ``transformer-cpu`` (transformer_e5_cpu.yaml: the top layers on cached lower ones), when
model.kinds.transformer.kind imports and the base checkpoint is built; otherwise the row says why it is absent.
Columns:

- corpus CV: macro-F1 per task (reason2 / topic / resolution), k-fold cross-validation grouped by
  scenario (training/evaluation/crossval.py);
- tweets: the model trained on the whole corpus, evaluated on ../shared/benchmarks/telecom_tweets
  (reason2 of 315 real subscriber tweets): accuracy, macro-F1, top-3. Evaluation only;
- RUTUBE L1 / L2: the same model kind trained on rutube_support/train.csv with a taxonomy built from
  the train labels (written to a temporary folder, never committed), tested on test.csv: macro-F1
  and accuracy. Test labels absent from train cannot be predicted and count as errors;
- train s: fitting the corpus model (embedding included, encoder memo empty);
- tweets adapted: ``podskazka adapt``'s cross-fitted before/after (training/fitting/adapt.py): 5 folds of the
  tweets, each scored by a model trained on the corpus plus the other four fifths (weighted) with their
  label mix as priors; tweets never enter a shipped bundle (``--columns adapted``);
- routing: the domain head on single client messages, trained on 80 % of the scenarios and scored on
  the other 20 %: the held-out written-layer messages and the first client turn of every held-out
  corpus conversation (marketplace and telecom separately);
- greetings: decisions (any task, any level) on a small authored list of greeting-only
  conversations (target: none);
- p50 / p99 ms: single-request latency of Predictor.predict on one corpus conversation (decisions,
  macros and slots included), one request at a time, the encoder memo emptied first; in brackets
  the model alone (predict_proba of every head).

Nothing here is tuned on a test file. ``--results`` keeps rows between runs (so the table can be
built model by model); the table printed holds every row in that file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.assist.adjust import adjust_task, has_content  # noqa: E402
from model.conversation.record import interaction_from_dict  # noqa: E402
from model.conversation.taxonomy import load_taxonomy  # noqa: E402
from model.errors import PodskazkaError  # noqa: E402
from model.kinds.registry import model_class  # noqa: E402
from model.predictor import Predictor  # noqa: E402
from training.data.load import load_data  # noqa: E402
from training.evaluation.metrics import task_metrics  # noqa: E402
from training.fitting.config import TrainConfig  # noqa: E402
from training.fitting.train import fit_bundle  # noqa: E402

log = logging.getLogger("bench.quality")

SHARED = ROOT.parent / "shared" / "benchmarks"
CORPUS = ROOT / "datasets" / "corpus"
CONFIGS = {
    "tfidf": ROOT / "training" / "configs" / "default.yaml",
    "hybrid-use": ROOT / "training" / "configs" / "hybrid_use.yaml",
    "hybrid-e5": ROOT / "training" / "configs" / "hybrid_e5.yaml",
    "transformer": ROOT / "training" / "configs" / "transformer_e5.yaml",
    "transformer-cpu": ROOT / "training" / "configs" / "transformer_e5_cpu.yaml",
}
CORPUS_TASKS = ("reason2", "topic", "resolution")
COLUMNS = ("tweets", "latency", "rutube", "cv", "adapted", "routing", "greetings")
# greeting-only conversations, authored for this benchmark (no content: no decision at any level)
GREETINGS = [
    {"channel": "chat", "text": "здравствуйте"},
    {"channel": "chat", "text": "Добрый день!"},
    {"channel": "chat", "text": "привет"},
    {"channel": "chat", "text": "здравствуйте, у меня вопрос"},
    {"channel": "email", "text": "Добрый вечер. Подскажите, пожалуйста"},
    {
        "channel": "chat",
        "turns": [
            {"role": "bot", "text": "Здравствуйте! Я виртуальный помощник. Опишите вопрос"},
            {"role": "client", "text": "здрасьте"},
        ],
    },
    {"channel": "chat", "turns": [{"role": "client", "text": "алло"}, {"role": "client", "text": "есть кто?"}]},
    {
        "channel": "call",
        "turns": [
            {"role": "operator", "text": "билайн здравствуйте меня зовут анна чем могу помочь"},
            {"role": "client", "text": "алло алло да здравствуйте"},
        ],
    },
    {
        "channel": "call",
        "turns": [
            {"role": "operator", "text": "компания билайн ольга здравствуйте"},
            {"role": "client", "text": "ааа да слушаю"},
        ],
    },
    {"channel": "call", "turns": [{"role": "operator", "text": "добрый день слушаю вас"}]},
    {"channel": "chat", "turns": [{"role": "client", "text": "ок спасибо"}]},
    {
        "channel": "chat",
        "turns": [
            {"role": "client", "text": "Девушка, добрый день"},
            {"role": "operator", "text": "Здравствуйте! Чем могу помочь?"},
        ],
    },
]
OVERRIDES: dict[str, list[str]] = {}  # model -> dotted config overrides (--set)
LATENCY_BUDGET_P99_MS = 30.0


# ----------------------------------------------------------------------------- data
def _csv_rows(path: Path) -> list[dict]:
    import pandas as pd

    return pd.read_csv(path).to_dict("records")


def tweets() -> tuple[list, list[str]]:
    rows = _csv_rows(SHARED / "telecom_tweets" / "test.csv")
    return [interaction_from_dict({"channel": "chat", "text": r["text"]}) for r in rows], [r["reason2"] for r in rows]


def rutube_taxonomy(folder: Path) -> Path:
    """A taxonomy of the labels that occur in RUTUBE's train.csv, written under ``folder``."""
    rows = _csv_rows(SHARED / "rutube_support" / "train.csv")
    tasks = {
        task: {
            "domain": "rutube",
            "question": f"RUTUBE support topic ({task})",
            "labels": sorted({str(r[task]) for r in rows}),
        }
        for task in ("label_l1", "label_l2")
    }
    path = folder / "rutube_taxonomy.yaml"
    path.write_text(
        yaml.safe_dump({"version": "rutube-train", "tasks": tasks, "macros": {}}, allow_unicode=True), encoding="utf-8"
    )
    return path


def latency_inputs(n: int) -> list[dict]:
    rows = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    picks = np.random.default_rng(0).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [{"channel": rows[i]["channel"], "turns": rows[i]["turns"]} for i in picks]


# -------------------------------------------------------------------------- configs
def transformer_missing(name: str) -> str:
    """Why a transformer row cannot run here ("" when it can)."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        return f"the transformer extra is not installed ({exc}): pip install -e '.[transformer]'"
    base = str(load_config(name).model.params.get("base_model", ""))
    if base.startswith(str(ROOT / "models")) and not Path(base).is_dir():  # the offline checkpoint
        local = Path(base).relative_to(ROOT)
        return f"{local} is not built: podskazka pretrained build e5-small --out {local}"
    return ""


def load_config(name: str, overrides: list[str] | None = None) -> TrainConfig:
    overrides = list(overrides or []) + OVERRIDES.get(name, [])
    path = CONFIGS[name]
    config = TrainConfig.load(path, overrides)
    config.taxonomy = str(ROOT / config.taxonomy) if not Path(config.taxonomy).is_absolute() else config.taxonomy
    base = config.model.params.get("base_model")
    if isinstance(base, str) and base.startswith("models/"):  # a checkpoint built in this repository
        config.model.params["base_model"] = str(ROOT / base)
    return config


def _forget_embeddings(bundle) -> None:
    """Empty the sentence encoder's memo, so that a timing does not reuse earlier work."""
    encoder = getattr(bundle.model, "encoder_", None)
    if encoder is not None and hasattr(encoder, "clear"):
        encoder.clear()


# --------------------------------------------------------------------------- columns
def run_model(name: str, folds: int, columns: set[str], requests: int, on_column=lambda row: None) -> dict:
    """Every column for one model; ``on_column(row)`` is called as each column is filled."""
    config = load_config(name)
    taxonomy = load_taxonomy(config.taxonomy)
    row: dict = {"model": name, "config": str(CONFIGS[name].relative_to(ROOT))}
    data = load_data([str(CORPUS)], taxonomy, column_map=config.column_map, group_by=config.split.group_by)

    if columns & {"tweets", "latency"}:
        log.info("%s: fitting on the whole corpus (%d rows)", name, len(data.rows))
        start = time.perf_counter()
        bundle = fit_bundle(data, config, taxonomy)
        row["train_s"] = time.perf_counter() - start
        on_column(row)

    if "tweets" in columns and (SHARED / "telecom_tweets" / "test.csv").is_file():
        xs, y = tweets()
        classes, p = bundle.model.predict_proba(xs, ["reason2"])[0]["reason2"]
        labels = list(taxonomy.tasks["reason2"].labels)
        raw = task_metrics(y, classes, p, labels)
        p = adjust_task(taxonomy, "reason2", classes, p, xs, bundle.decision)  # evidence (and priors), as served
        m = task_metrics(y, classes, p, labels)
        row["tweets"] = {k: m[k] for k in ("accuracy", "macro_f1", "top3_accuracy", "ece", "n")}
        row["tweets"]["without_evidence"] = {k: raw[k] for k in ("accuracy", "macro_f1", "top3_accuracy")}
        log.info("%s: tweets %s", name, row["tweets"])
        on_column(row)

    if "greetings" in columns:
        row["greetings"] = greetings(bundle)
        log.info("%s: greetings %s", name, row["greetings"])
        on_column(row)

    if "adapted" in columns and (SHARED / "telecom_tweets" / "test.csv").is_file():
        row["adapted"] = adapted_tweets(bundle, config, data)
        log.info("%s: adapted %s", name, row["adapted"])
        on_column(row)

    if "routing" in columns:
        row["routing"] = routing(config, taxonomy, data)
        log.info("%s: routing %s", name, row["routing"])
        on_column(row)

    if "rutube" in columns and (SHARED / "rutube_support" / "train.csv").is_file():
        row["rutube"] = rutube(config)
        log.info("%s: rutube %s", name, row["rutube"])
        on_column(row)

    if "cv" in columns:
        log.info("%s: %d-fold cross-validation grouped by %s", name, folds, config.split.group_by)
        row["cv"] = corpus_cv(config, taxonomy, data, folds)
        log.info("%s: cv %s", name, row["cv"])
        on_column(row)

    if "latency" in columns:  # last: it empties the encoder memo the other columns reuse
        row["latency_ms"] = latency(bundle, requests)
        log.info("%s: latency %s", name, row["latency_ms"])
    return row


def corpus_cv(config, taxonomy, data, folds: int) -> dict:
    """Grouped k-fold CV: per task on every row, and on the conversations alone (the rows the figures
    before the written layer were measured on) and the written layer alone; evidence rules applied."""
    from training.evaluation.crossval import out_of_fold

    oof = out_of_fold(data, config, taxonomy, folds)
    out: dict = {"folds": folds}
    for task, rows in oof.rows.items():
        classes = oof.classes[task]
        xs = [data.rows[i].interaction for i in rows]
        probs = adjust_task(taxonomy, task, classes, oof.probs[task], xs, None)
        written = np.array([(x.id or "").startswith("w-") for x in xs])
        y = np.array([x.labels[task] for x in xs], dtype=object)
        entry = {}
        for part, mask in (("all", np.ones(len(xs), bool)), ("conversations", ~written), ("written", written)):
            if mask.any():
                m = task_metrics(list(y[mask]), classes, probs[mask], classes)
                entry[part] = {k: m[k] for k in ("accuracy", "macro_f1", "ece", "n")}
        out[task] = {**entry["all"], **{k: v for k, v in entry.items() if k != "all"}}
    return out


def greetings(bundle) -> dict:
    """Decisions on greeting-only conversations (any task, any level): the target is none."""
    results = Predictor(bundle).predict(GREETINGS, top_macros=0)
    decided = [(GREETINGS[i], t, d.label) for i, r in enumerate(results) for t, d in r.decisions.items() if d.decided]
    return {"n": len(GREETINGS), "decisions": len(decided), "examples": [str(x) for x in decided[:5]]}


def tweets_data(taxonomy):
    from training.data.load import LoadedData, Row

    rows = _csv_rows(SHARED / "telecom_tweets" / "test.csv")
    out = [
        Row(
            interaction=interaction_from_dict(
                {"channel": "chat", "text": r["text"], "reason2": r["reason2"]}, label_tasks=("reason2",)
            ),
            source=f"tweets:{i}",
            group=f"tweet-{i}",
        )
        for i, r in enumerate(rows)
    ]
    return LoadedData(rows=out, files=[{"path": "telecom_tweets/test.csv"}])


def adapted_tweets(bundle, config, corpus) -> dict:
    """``podskazka adapt``'s cross-fitted before/after on the tweets (5 folds; nothing is kept)."""
    from training.fitting.adapt import cross_fitted

    result = cross_fitted(bundle, config, corpus, tweets_data(bundle.taxonomy), folds=5, weight=3)
    r = result["report"]["tasks"]["reason2"]
    keys = ("accuracy", "macro_f1", "top3_accuracy")
    return {
        "before": {k: r["before"][k] for k in keys},
        "after": {k: r["after"][k] for k in keys},
        "after_coverage": {k: r["after_coverage"][k] for k in ("label_coverage", "label_precision")},
        "folds": 5,
        "weight": 3,
    }


def routing(config, taxonomy, data) -> dict:
    """Domain routing of single client messages held out by scenario (80/20)."""
    from training.fitting.train import grouped_split

    train_rows, test_rows = grouped_split(data, 0.2, config.split.seed)
    bundle = fit_bundle(data, config, taxonomy, train_rows)
    domain_of = {name: t.domain or name for name, t in taxonomy.tasks.items()}
    sets: dict[str, list] = {"written": [], "first_turn_marketplace": [], "first_turn_telecom": []}
    for i in test_rows:
        x = data.rows[i].interaction
        domains = {domain_of[t] for t in x.labels}
        if len(domains) != 1:
            continue
        domain = domains.pop()
        if (x.id or "").startswith("w-"):
            sets["written"].append((x, domain))
            continue
        first = next((t for t in x.turns if t.role == "client" and t.text.strip()), None)
        if first is not None:
            one = interaction_from_dict({"channel": x.channel, "text": first.text})
            sets[f"first_turn_{domain}"].append((one, domain))
    out = {}
    for name, pairs in sets.items():
        if not pairs:
            continue
        _, dom = bundle.model.predict_proba([x for x, _ in pairs], bundle.model.tasks[:1])
        classes, p = dom
        hit = [classes[int(np.argmax(p[k]))] == d for k, (_, d) in enumerate(pairs)]
        content = [has_content(x, taxonomy) for x, _ in pairs]  # a greeting alone has no domain (and no decision)
        kept = [h for h, c in zip(hit, content) if c]
        out[name] = {
            "n": len(pairs),
            "accuracy": sum(hit) / len(pairs),
            "with_content": {"n": len(kept), "accuracy": sum(kept) / len(kept) if kept else None},
        }
    return out


def latency(bundle, requests: int) -> dict:
    """Single-request latency of the model alone (``predict_proba`` of every head) and of the whole
    ``Predictor.predict`` (decisions, macros and their slots included), over the same requests."""
    predictor = Predictor(bundle)
    inputs = latency_inputs(requests + 20)
    items = [interaction_from_dict(x) for x in inputs]
    out = {}
    for label, call in (
        ("model", lambda i: bundle.model.predict_proba([items[i]])),
        ("predictor", lambda i: predictor.predict([inputs[i]])),
    ):
        _forget_embeddings(bundle)
        for i in range(20):
            call(i)
        _forget_embeddings(bundle)
        times = []
        for i in range(20, len(inputs)):
            start = time.perf_counter()
            call(i)
            times.append((time.perf_counter() - start) * 1000)
        out[label] = {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}
    # the headline figures are the whole request, as the service answers it
    return {
        "p50": out["predictor"]["p50"],
        "p99": out["predictor"]["p99"],
        "n": len(inputs) - 20,
        "model_p50": out["model"]["p50"],
        "model_p99": out["model"]["p99"],
    }


def rutube(config: TrainConfig) -> dict:
    test = _csv_rows(SHARED / "rutube_support" / "test.csv")
    out = {}
    with tempfile.TemporaryDirectory(prefix="podskazka-rutube-") as folder:
        taxonomy_path = rutube_taxonomy(Path(folder))
        raw = config.to_dict()
        raw.update(
            taxonomy=str(taxonomy_path),
            tasks=["label_l1", "label_l2"],
            column_map={},
            split=dict(raw["split"], group_by="group_id"),
        )
        rt_config = TrainConfig.from_dict(raw)
        taxonomy = load_taxonomy(taxonomy_path)
        data = load_data([str(SHARED / "rutube_support" / "train.csv")], taxonomy, group_by="group_id")
        cls = model_class(rt_config.model.kind)  # the classifier only: this taxonomy has no macros
        model = cls(cls.config_class(**rt_config.model.params)).fit(data.interactions, rt_config.tasks)
        xs = [interaction_from_dict({"channel": "chat", "text": r["text"]}) for r in test]
        probs, _ = model.predict_proba(xs, ["label_l1", "label_l2"])
        for task, (classes, p) in probs.items():
            y = [str(r[task]) for r in test]
            labels = list(taxonomy.tasks[task].labels) + sorted(set(y) - set(taxonomy.tasks[task].labels))
            m = task_metrics(y, classes, p, labels)
            out[task] = {k: m[k] for k in ("accuracy", "macro_f1", "top3_accuracy", "n")}
    return out


# ----------------------------------------------------------------------------- table
def _f(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table(rows: dict[str, dict], order: list[str]) -> str:
    head = (
        "| model | corpus CV macro-F1 reason2 / topic / resolution | tweets acc / F1 / top-3 "
        "| RUTUBE L1 F1 / acc | RUTUBE L2 F1 / acc | train s | p50 / p99 ms |"
    )
    lines = [head, "|" + "---|" * 7]
    notes = []
    for name in order:
        row = rows.get(name)
        if row is None:
            continue
        if "skipped" in row:
            lines.append(f"| {name} | " + " | ".join(["—"] * 6) + " |")
            notes.append(f"{name}: {row['skipped']}")
            continue
        cv = row.get("cv")
        cv_cell = (
            " / ".join(_f(cv.get(t, {}).get("macro_f1")) for t in CORPUS_TASKS) + f" ({cv['folds']}-fold)"
            if cv
            else "not run"
        )
        if cv and any("conversations" in (cv.get(t) or {}) for t in CORPUS_TASKS):
            cv_cell += "; conversations " + " / ".join(
                _f(((cv.get(t) or {}).get("conversations") or {}).get("macro_f1")) for t in CORPUS_TASKS
            )
        tw = row.get("tweets")
        tw_cell = f"{_f(tw['accuracy'])} / {_f(tw['macro_f1'])} / {_f(tw['top3_accuracy'])}" if tw else "—"
        rt = row.get("rutube") or {}
        rt_cells = [
            f"{_f(rt[t]['macro_f1'])} / {_f(rt[t]['accuracy'])}" if t in rt else "—" for t in ("label_l1", "label_l2")
        ]
        lat = row.get("latency_ms") or {}
        lat_cell = f"{_f(lat.get('p50'), 1)} / {_f(lat.get('p99'), 1)}"
        if "model_p50" in lat:
            lat_cell += f" (model {_f(lat['model_p50'], 1)} / {_f(lat['model_p99'], 1)})"
        lines.append(
            f"| {name} | {cv_cell} | {tw_cell} | {rt_cells[0]} | {rt_cells[1]} | "
            f"{_f(row.get('train_s'), 0)} | {lat_cell} |"
        )
        if row.get("measured"):
            notes.append(f"{name}: measured {row['measured']}")
    lines += [
        "",
        "| model | tweets cold acc / top-3 (without evidence) | tweets adapted acc / top-3 (before) "
        "| routing written / first turn marketplace / telecom | greeting-only decisions |",
        "|---|---|---|---|---|",
    ]
    for name in order:
        row = rows.get(name)
        if not row or "skipped" in row:
            continue
        tw, ad, ro, gr = row.get("tweets"), row.get("adapted"), row.get("routing") or {}, row.get("greetings")
        cold = (
            (
                f"{_f(tw['accuracy'])} / {_f(tw['top3_accuracy'])}"
                + (
                    f" ({_f(tw['without_evidence']['accuracy'])} / {_f(tw['without_evidence']['top3_accuracy'])})"
                    if "without_evidence" in tw
                    else ""
                )
            )
            if tw
            else "—"
        )
        adapted = (
            (
                f"{_f(ad['after']['accuracy'])} / {_f(ad['after']['top3_accuracy'])} "
                f"({_f(ad['before']['accuracy'])} / {_f(ad['before']['top3_accuracy'])})"
            )
            if ad
            else "—"
        )
        route = (
            " / ".join(
                _f((ro.get(k) or {}).get("accuracy"))
                for k in ("written", "first_turn_marketplace", "first_turn_telecom")
            )
            if ro
            else "—"
        )
        greet = f"{gr['decisions']} of {gr['n']}" if gr else "—"
        lines.append(f"| {name} | {cold} | {adapted} | {route} | {greet} |")
    winner = choose_live_default(rows)
    text = "\n".join(lines)
    if notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return text + "\n\n" + winner


def _real_text_score(row: dict) -> float | None:
    """Mean macro-F1 over the real-text columns (tweets, RUTUBE L1, RUTUBE L2)."""
    scores = []
    if row.get("tweets"):
        scores.append(row["tweets"]["macro_f1"])
    for task in ("label_l1", "label_l2"):
        if task in (row.get("rutube") or {}):
            scores.append(row["rutube"][task]["macro_f1"])
    return float(np.mean(scores)) if len(scores) == 3 else None


def choose_live_default(rows: dict[str, dict]) -> str:
    eligible = []
    for name, row in rows.items():
        score, p99 = _real_text_score(row), (row.get("latency_ms") or {}).get("p99")
        if score is not None and p99 is not None:
            eligible.append((name, score, p99))
    if not eligible:
        return "live default: not decided (no row has every real-text column and a latency)"
    within = [e for e in eligible if e[2] <= LATENCY_BUDGET_P99_MS]
    ranked = ", ".join(f"{n} {s:.3f} (p99 {p:.1f} ms)" for n, s, p in sorted(eligible, key=lambda e: -e[1]))
    if not within:
        return f"live default: none within p99 {LATENCY_BUDGET_P99_MS:.0f} ms; mean real-text macro-F1: {ranked}"
    best = max(within, key=lambda e: e[1])
    return (
        f"live default: **{best[0]}** — best mean real-text macro-F1 (tweets, RUTUBE L1, L2) among rows within "
        f"p99 {LATENCY_BUDGET_P99_MS:.0f} ms; all rows: {ranked}"
    )


# ------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(CONFIGS), help=f"comma-separated subset of {list(CONFIGS)}")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--skip-cv", action="store_true", help="leave out the corpus cross-validation (the slow part)")
    parser.add_argument(
        "--columns",
        default=",".join(COLUMNS),
        help=f"comma-separated subset of {list(COLUMNS)} (tweets and latency fit the corpus model, timed)",
    )
    parser.add_argument("--requests", type=int, default=200, help="single requests timed per model")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODEL:KEY=VALUE",
        help="a config override for one row, e.g. transformer:model.params.max_train_seconds=600",
    )
    parser.add_argument("--results", type=Path, help="JSON file that keeps rows between runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for item in args.set:
        model, _, override = item.partition(":")
        if model not in CONFIGS or "=" not in override:
            raise SystemExit(f"--set {item!r}: write MODEL:KEY=VALUE with MODEL one of {list(CONFIGS)}")
        OVERRIDES.setdefault(model, []).append(override)
    columns = {c.strip() for c in args.columns.split(",") if c.strip()} - ({"cv"} if args.skip_cv else set())
    if columns - set(COLUMNS):
        raise SystemExit(f"unknown column(s) {sorted(columns - set(COLUMNS))}; choose from {list(COLUMNS)}")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {list(CONFIGS)}")
    if not SHARED.is_dir():
        log.warning("%s is absent: the tweets and RUTUBE columns are left empty", SHARED)
    rows = json.loads(args.results.read_text(encoding="utf-8")) if args.results and args.results.is_file() else {}
    for name in names:
        if name.startswith("transformer"):
            why = transformer_missing(name)
            if why:
                rows[name] = {"model": name, "skipped": why}
                continue
        previous = rows.get(name, {})

        def keep(row: dict, previous=previous, name=name) -> None:
            row["measured"] = (
                f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load average "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            )
            earlier = {**previous, **{k: v for k, v in rows.get(name, {}).items() if k != "skipped"}}
            for column in ("cv", "tweets", "rutube", "latency_ms", "train_s", "adapted", "routing", "greetings"):
                if column in earlier and column not in row:
                    row[column] = earlier[column]  # a partial, --skip-cv or failed run keeps earlier columns
            rows[name] = row
            if args.results:
                args.results.write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

        try:
            keep(run_model(name, args.folds, columns, args.requests, on_column=keep))
        except PodskazkaError as exc:
            keep({"model": name, "skipped": f"failed: {exc.message.splitlines()[0]}"})
    print(table(rows, list(CONFIGS)))


if __name__ == "__main__":
    main()
