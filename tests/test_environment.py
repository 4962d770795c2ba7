"""environment.yml (conda) and pyproject.toml (pip) must describe the same stack."""
import re
import tomllib
from pathlib import Path

import course

# pip name -> conda-forge name, where they differ.
PIP_TO_CONDA = {"torch": "pytorch", "tensorflow-cpu": "tensorflow"}
CONDA_ONLY = {"python", "pip", "onnxruntime-cpp"}  # onnxruntime-cpp: the C++ headers


def _name(spec: str) -> str:
    return re.split(r"[<>=!~;\s\[]", spec.strip(), maxsplit=1)[0].lower()


def pip_requirements() -> dict[str, list[str]]:
    project = tomllib.loads((course.REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in ("test", "grading"):
        specs += project["optional-dependencies"][extra]
    out: dict[str, list[str]] = {}
    for spec in specs:
        name = PIP_TO_CONDA.get(_name(spec), _name(spec))
        out.setdefault(name, []).append(spec)
    return out


def conda_requirements() -> dict[str, str]:
    lines = (course.REPO / "environment.yml").read_text().splitlines()
    deps = [ln.strip()[2:] for ln in lines if ln.strip().startswith("- ") and "conda-forge" not in ln]
    return {_name(d): d for d in deps}


def test_same_packages_in_both():
    pip, conda = pip_requirements(), conda_requirements()
    assert set(pip) - set(conda) == set(), "in pyproject.toml but not in environment.yml"
    assert set(conda) - set(pip) - CONDA_ONLY == set(), "in environment.yml but not in pyproject"


def test_pinned_versions_agree():
    pip, conda = pip_requirements(), conda_requirements()
    for name, specs in pip.items():
        for spec in specs:
            pins = re.findall(r"==\s*([\w.]+)", spec.split(";")[0])
            for pin in pins:
                assert pin in conda[name], f"{name}: pyproject pins {pin}, environment.yml has {conda[name]}"


def test_torch_pinned_to_the_cpu_build_on_linux():
    specs = pip_requirements()["pytorch"]
    linux = [s for s in specs if "platform_system == 'Linux'" in s]
    assert linux and "torch==2.13.0" in linux[0], "a looser spec pulls a multi-GB CUDA build"
