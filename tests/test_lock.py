"""The committed lock files match pyproject.toml, and the venv the tests run in was
installed from them: what CI tests is what a user's `scripts/setup.sh` installs."""

from __future__ import annotations

import importlib.util
import re
import shutil
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)", re.MULTILINE)


def lock_digest_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_digest", ROOT / "scripts/lock_digest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text(encoding="utf-8")
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def test_every_lock_file_was_made_from_this_pyproject() -> None:
    assert lock_digest_module().stale_locks(ROOT) == [], "run `bash scripts/lock.sh`"


def test_a_changed_requirement_makes_the_locks_stale(tmp_path: Path) -> None:
    for name in ("pyproject.toml", *lock_digest_module().LOCK_FILES):
        shutil.copy(ROOT / name, tmp_path / name)
    module = lock_digest_module()
    assert module.stale_locks(tmp_path) == []
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace('"numpy>=1.26"', '"numpy>=1.27"'), encoding="utf-8")
    assert module.stale_locks(tmp_path) == list(module.LOCK_FILES)


def direct_requirements(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    if extra is not None:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines if not line.startswith("kb-service")]


@pytest.mark.parametrize(
    ("lock", "extra"), [("requirements.lock", None), ("requirements-dev.lock", "dev")]
)
def test_each_direct_requirement_is_pinned_within_its_range(lock: str, extra: str | None) -> None:
    pinned = pins(lock)
    for requirement in direct_requirements(extra):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not in {lock}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {requirement.name}=={pinned[name]}, outside {requirement.specifier}"
        )


def test_the_runtime_lock_holds_no_dev_or_bench_tool() -> None:
    runtime = pins("requirements.lock")
    for tool in (
        "pytest",
        "ruff",
        "mypy",
        "playwright",
        "schemathesis",
        "xllamacpp",
        "llama-index-vector-stores-chroma",
        "llama-index-embeddings-huggingface",
    ):
        assert canonicalize_name(tool) not in runtime, f"{tool} is in the runtime lock"


def test_torch_is_the_cpu_build_and_no_cuda_package_is_locked() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        pinned = pins(lock)
        assert pinned["torch"] == "2.13.0+cpu"
        assert not [name for name in pinned if name.startswith("nvidia-")]


def test_the_venv_running_the_tests_was_installed_from_the_dev_lock() -> None:
    wrong = {}
    for name, version in pins("requirements-dev.lock").items():
        installed = metadata.version(name)
        if installed != version:
            wrong[name] = (installed, version)
    assert wrong == {}, "run `bash scripts/setup.sh --dev` (installed, locked)"
