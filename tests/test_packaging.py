"""What can be checked of the packaging without a Docker engine or a fresh machine."""

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DIST = {"sklearn": "scikit-learn", "yaml": "pyyaml", "pydantic_settings": "pydantic-settings", "skops": "skops"}


# model kinds whose dependencies come with an extra (imported lazily, only when that kind is used)
OPTIONAL_KINDS = {
    "kinds/transformer/kind.py": "transformer",
    "kinds/transformer/torch_backend.py": "transformer",
    "kinds/hybrid.py": "embeddings",
    "kinds/embeddings.py": "embeddings",
}


def _third_party_imports(package: str, *, files=None) -> set[str]:
    names = set()
    paths = (
        files
        if files is not None
        else [
            p
            for p in (ROOT / package).rglob("*.py")
            if not (package == "model" and p.relative_to(ROOT / package).as_posix() in OPTIONAL_KINDS)
        ]
    )
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    local = {"model", "serve", "training"}
    return {n for n in names if n not in local and n not in sys.stdlib_module_names}


def _requirement_names(lines) -> set[str]:
    return {
        re.split(r"[<>=!\[ ;]", line.strip(), maxsplit=1)[0].lower()
        for line in lines
        if line.strip() and not line.strip().startswith("#")
    }


def test_packaging_serve_requirements_cover_runtime_imports():
    needed = {DIST.get(n, n).lower() for n in _third_party_imports("model") | _third_party_imports("serve")}
    listed = _requirement_names((ROOT / "docker" / "requirements-serve.txt").read_text().splitlines())
    assert needed <= listed, f"docker/requirements-serve.txt lacks {sorted(needed - listed)}"


def test_packaging_optional_model_kinds_covered_by_their_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = _requirement_names(project["dependencies"])
    extras = project["optional-dependencies"]
    for name, extra in OPTIONAL_KINDS.items():
        path = ROOT / "model" / name
        assert path.is_file(), f"model/{name} is gone: update OPTIONAL_KINDS"
        needed = {DIST.get(n, n).lower() for n in _third_party_imports("model", files=[path])}
        covered = base | _requirement_names(extras[extra])
        assert needed <= covered, f"model/{name} imports {sorted(needed - covered)}, not in extra '{extra}'"


def test_packaging_dependencies_are_bounded_and_torch_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        assert ">=" in dep and "<" in dep, f"unbounded dependency {dep}"
    extras = project["optional-dependencies"]
    assert "torch==2.13.0" in extras["transformer"]
    assert project["scripts"]["podskazka"] == "training.cli:main"
    declared = _requirement_names(project["dependencies"])
    declared |= _requirement_names(d for deps in extras.values() for d in deps)  # e.g. psycopg from `postgres`
    serve = _requirement_names((ROOT / "docker" / "requirements-serve.txt").read_text().splitlines())
    assert serve <= declared, f"the image installs what the project does not declare: {serve - declared}"


def test_packaging_dockerfile_serves_without_training():
    text = (ROOT / "Dockerfile").read_text()
    # every source of every COPY from the build context (COPY --from=build copies between stages)
    copies = [
        source for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, flags=re.M) for source in line.split()[:-1]
    ]
    assert copies, "no COPY lines"
    ignored_ctx = (ROOT / ".dockerignore").read_text().split()
    for source in copies:
        assert not source.startswith(("training", "models")), "the serving image carries no training/ and no bundle"
        assert (ROOT / source.rstrip("/")).exists(), f"COPY {source}: no such path"
        assert source.rstrip("/") not in ignored_ctx, f"COPY {source}: excluded by .dockerignore"
    # the C featurizer is compiled in a build stage (gcc) and the build fails without it
    assert re.search(r"^FROM\s+\S+\s+AS\s+build", text, flags=re.M | re.I) and "gcc" in text
    assert "_ngrams" in text and "COPY --from=build" in text
    assert "torch" not in (ROOT / "docker" / "requirements-serve.txt").read_text()
    assert re.search(r"^USER\s+(?!root)\S+", text, flags=re.M), "the image must run as a non-root user"
    assert "HEALTHCHECK" in text and "/readyz" in text
    assert re.search(r"^EXPOSE\s+8000", text, flags=re.M)
    cmd = re.search(r"^CMD\s+(.+)$", text, flags=re.M).group(1)
    assert '"serve"' in cmd and "training" not in cmd
    assert "/models" in cmd  # a bundle or a registry mounted there
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"training", ".venv", "models", "var", "**/*.so"} <= set(ignored)


def test_packaging_image_serves_hybrid_bundles():
    """The image installs the `embeddings` extra (hybrid bundles: encoders inside their packages)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    serve = _requirement_names((ROOT / "docker" / "requirements-serve.txt").read_text().splitlines())
    assert _requirement_names(project["optional-dependencies"]["embeddings"]) <= serve
    assert {"orjson", "prometheus_client", "uvicorn"} <= serve  # imported through fastapi / by name
