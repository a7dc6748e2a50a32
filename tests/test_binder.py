"""The Binder files: what they install covers the package's runtime dependencies, they follow
repo2docker's formats, and repo2docker turns them into the image we mean (checked with
repo2docker itself, which writes its Dockerfile without building it: Binder cannot be reached
from here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def _environment() -> dict:
    return yaml.safe_load((BINDER / "environment.yml").read_text())


def _pip_section(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert len(sections) == 1, f"Expected one pip section in environment.yml, got {len(sections)}"
    return sections[0]


def _pip_requirements(env: dict) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in (Requirement(line) for line in _pip_section(env) if not line.startswith("-"))}


def test_environment_follows_the_conda_format() -> None:
    env = _environment()
    assert set(env) <= {"name", "channels", "dependencies"}, f"Expected only name/channels/dependencies, got {sorted(env)}"
    assert env["channels"] == ["conda-forge"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    for spec in conda:
        assert re.fullmatch(r"[a-z0-9_.-]+([<>=!]=?[0-9][\w.*]*(,[<>=!]=?[0-9][\w.*]*)*)?", spec), (
            f"Expected a conda match spec, got {spec!r}"
        )
    names = {re.split(r"[<>=!]", s)[0] for s in conda}
    assert {"python", "pip", "rust", "maturin"} <= names, f"Expected python, pip, rust and maturin from conda-forge, got {sorted(names)}"
    python = next(s for s in conda if s.startswith("python"))
    assert re.fullmatch(r"python=3\.1[1-9]", python), (
        f"Expected Python pinned to 3.11 or later (repo2docker defaults to 3.10), got {python!r}"
    )


def test_torch_comes_from_the_cpu_index() -> None:
    pip = _pip_section(_environment())
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip
    assert "torch" in _pip_requirements(_environment())


def test_binder_installs_every_runtime_dependency_with_a_compatible_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}
    binder = _pip_requirements(_environment())
    missing = sorted(set(runtime) - set(binder))
    assert not missing, f"Expected binder/environment.yml to install every runtime dependency (postBuild uses --no-deps), missing {missing}"
    for name, req in runtime.items():
        assert binder[name].specifier == req.specifier, (
            f"Expected {name}{req.specifier} in binder/environment.yml as in pyproject.toml, got {binder[name]}"
        )
    for name in ("jupyterlab", "ipykernel"):
        assert name in binder, f"Expected {name} in binder/environment.yml"
    lab = {canonicalize_name(r.name): r for r in map(Requirement, project["optional-dependencies"]["lab"])}
    for name, req in lab.items():
        assert binder[name].specifier == req.specifier, f"Expected {name}{req.specifier} as in the lab extra, got {binder[name]}"


def test_post_build_is_an_executable_strict_bash_script_that_installs_the_package() -> None:
    script = BINDER / "postBuild"
    assert os.access(script, os.X_OK), "Expected binder/postBuild to be executable"
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "set -euxo pipefail" in text
    assert re.search(r"^pip install .*\s\.$", text, re.M), "Expected postBuild to pip install the repository"
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_the_badge_opens_the_quickstart() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"https://mybinder\.org/v2/gh/([^/]+/[^/]+)/main\?urlpath=lab/tree/(notebooks/[^)\s]+\.ipynb)", readme)
    assert match, "Expected a Binder badge in the README that opens JupyterLab on a notebook"
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert repository == f"https://github.com/{match.group(1)}", f"Expected the badge to name {repository}, got {match.group(1)}"
    assert (ROOT / match.group(2)).exists(), f"Expected the badge's notebook {match.group(2)} to exist"
    assert match.group(2) == "notebooks/01-quickstart.ipynb"


def test_repo2docker_builds_the_image_we_mean(tmp_path: Path) -> None:
    r2d = shutil.which("repo2docker", path=str(Path(sys.executable).parent)) or shutil.which("repo2docker")
    if r2d is None:
        pytest.skip("jupyter-repo2docker is not installed (pip install jupyter-repo2docker)")
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(BINDER, repo / "binder")
    shutil.copy(ROOT / "pyproject.toml", repo)
    # root files must not count: a binder/ folder makes repo2docker read only that folder
    (repo / "requirements.txt").write_text("this-must-be-ignored==0\n")
    out = subprocess.run([r2d, "--no-build", "--debug", str(repo)], capture_output=True, text=True, timeout=120)
    dockerfile = out.stdout + out.stderr
    assert out.returncode == 0, dockerfile[-2000:]
    assert "Building conda environment for python=3.11" in dockerfile
    assert 'env update -p ${NB_PYTHON_PREFIX} --file "binder/environment.yml"' in dockerfile
    assert "RUN ./binder/postBuild" in dockerfile
    assert "this-must-be-ignored" not in dockerfile and "requirements.txt" not in dockerfile
