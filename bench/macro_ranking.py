"""Macro top-3 hit rate on held-out corpus interactions: the by-label ranker vs the three-signal ranker.

    python bench/macro_ranking.py [--data datasets/corpus] [--config training/configs/default.yaml]
                                  [--cache /tmp/macro_eval]

Splits like ``podskazka train`` (grouped by ``scenario``, the config's test size and seed), fits the
label model and the macro rankers on the training side, and scores held-out rows whose ``macros`` is
not empty: a hit when one of the rows' macros is among the top 3. ``--cache`` keeps the label model's
held-out probabilities (the slow part) between runs. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.assist.macros import MacroRanker, MacroStats, RankerConfig  # noqa: E402
from model.conversation.taxonomy import load_taxonomy  # noqa: E402
from training.data.load import load_data  # noqa: E402
from training.fitting.config import TrainConfig  # noqa: E402
from training.fitting.train import fit_bundle, grouped_split  # noqa: E402


def label_probs(data, config, taxonomy, train_rows, test_rows, cache: Path | None):
    files = (cache / "split.json", cache / "probs.npz") if cache else None
    if files and all(f.exists() for f in files):
        meta = json.loads(files[0].read_text())
        if meta["test"] == test_rows:
            arrays = np.load(files[1])
            task_probs = {t: (c, arrays[f"task_{t}"]) for t, c in meta["task_classes"].items()}
            return task_probs, (meta["domain_classes"], arrays["domain"])
    bundle = fit_bundle(data, config, taxonomy, train_rows)
    task_probs, domain_probs = bundle.model.predict_proba([data.rows[i].interaction for i in test_rows])
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
        files[0].write_text(
            json.dumps(
                {
                    "train": train_rows,
                    "test": test_rows,
                    "domain_classes": domain_probs[0],
                    "task_classes": {t: v[0] for t, v in task_probs.items()},
                }
            )
        )
        np.savez(files[1], domain=domain_probs[1], **{f"task_{t}": v[1] for t, v in task_probs.items()})
    return task_probs, domain_probs


def hit_rate(scores: np.ndarray, macro_ids: list[str], truth: list[tuple[str, ...]], k: int = 3) -> float:
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = [bool(set(macro_ids[j] for j in row) & set(t)) for row, t in zip(top, truth)]
    return float(np.mean(hits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "datasets" / "corpus"))
    parser.add_argument("--config", default=str(ROOT / "training" / "configs" / "default.yaml"))
    parser.add_argument("--cache", default=None)
    args = parser.parse_args()
    config = TrainConfig.load(args.config)
    taxonomy = load_taxonomy(ROOT / config.taxonomy if not Path(config.taxonomy).is_absolute() else config.taxonomy)
    data = load_data([args.data], taxonomy, column_map=config.column_map, group_by=config.split.group_by)
    train_rows, test_rows = grouped_split(data, config.split.test_size, config.split.seed)
    task_probs, domain_probs = label_probs(
        data, config, taxonomy, train_rows, test_rows, Path(args.cache) if args.cache else None
    )
    train_x = [data.rows[i].interaction for i in train_rows]
    test_x = [data.rows[i].interaction for i in test_rows]
    keep = [j for j, x in enumerate(test_x) if x.macros]
    truth = [test_x[j].macros for j in keep]
    domains = {name: task.domain or name for name, task in taxonomy.tasks.items()}
    tasks = list(task_probs)

    stats = MacroStats.fit(train_x, tasks, taxonomy)
    macro_ids = list(taxonomy.macros)
    by_label = np.array(
        [[stats.score(task_probs, domain_probs, domains, j).get(m, 0.0) for m in macro_ids] for j in keep]
    )
    ranker = MacroRanker().fit(train_x, tasks, taxonomy)
    sub_probs = {t: (c, p[keep]) for t, (c, p) in task_probs.items()}
    sub_domain = (domain_probs[0], domain_probs[1][keep]) if domain_probs else None
    signals = ranker.signals([test_x[j] for j in keep], sub_probs, sub_domain, domains)
    print(
        f"held-out rows with macros: {len(keep)} of {len(test_x)} held-out rows "
        f"(train {len(train_rows)} rows, grouped by {config.split.group_by})"
    )
    print(f"top-3 hit rate, by-label ranker (before):   {hit_rate(by_label, macro_ids, truth):.3f}")
    for name, scores in signals.items():
        print(f"top-3 hit rate, {name} signal alone: {hit_rate(scores, macro_ids, truth):.3f}")
    mixed = ranker.rank([test_x[j] for j in keep], sub_probs, sub_domain, domains)
    cfg = ranker.config
    print(
        f"top-3 hit rate, three-signal ranker (weights history {cfg.w_history}, labels {cfg.w_labels}, "
        f"when {cfg.w_when}): {hit_rate(mixed, macro_ids, truth):.3f}"
    )
    print(
        f"top-1 hit rate: by-label {hit_rate(by_label, macro_ids, truth, 1):.3f}, "
        f"three-signal {hit_rate(mixed, macro_ids, truth, 1):.3f}"
    )
    for wh, wl, ww in [(1, 0, 0), (0.5, 0.5, 0), (0.6, 0.3, 0.1), (0.5, 0.3, 0.2), (0.4, 0.4, 0.2), (0.7, 0.2, 0.1)]:
        ranker.config = RankerConfig(w_history=wh, w_labels=wl, w_when=ww)
        scores = ranker.rank([test_x[j] for j in keep], sub_probs, sub_domain, domains)
        print(f"  weights {wh}/{wl}/{ww}: top-3 {hit_rate(scores, macro_ids, truth):.3f}")


if __name__ == "__main__":
    main()
