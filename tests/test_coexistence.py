"""cogscope beside OpenAI's Agents SDK (`openai-agents`, a top-level `agents`) in one environment.

The test extras install both, so every test runs beside it; these say it outright, from a folder that is not the
repository's (so that its `agents/` folder is not on `sys.path` by accident): `import agents` is OpenAI's,
`cogscope --help` and a `cogscope run` work, and the wheel holds `cogscope/agents/...`, never a top-level `agents/`.
The one-line recorder records a cycle with OpenAI's `agents` imported in the same process in
test_other_apps.py::test_an_app_with_the_one_line_recorder_is_a_cycle_that_replays_and_forks_with_the_model_stopped.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT, TRACE_LINE, cogscope_command

DONE = 'Thought: I know enough.\n<code>\nfinal_answer("Rest for ten minutes.")\n</code>'


def test_the_documented_recorder_import_is_the_recorder():
    import cogscope
    from cogscope import record, stop
    from cogscope.telemetry import recorder

    assert (record, stop) == (recorder.record, recorder.stop)
    assert cogscope.__all__ == ["record", "stop"]
    assert "from cogscope import record, stop" in (cogscope.__doc__ or "")


def test_the_distribution_installs_one_top_level_name():
    assert importlib.metadata.distribution("cogscope").read_text("top_level.txt").split() == ["cogscope"]


@pytest.mark.e2e  # a Phoenix, the scripted LLM and `cogscope` processes
def test_cogscope_help_and_run_work_beside_openai_agents(env, llm, read_trace, tmp_path):
    code = "import agents; print(agents.__file__, hasattr(agents, 'Runner'), hasattr(agents, 'Agent'))"
    probe = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
    )
    where, runner, agent = probe.stdout.split()
    # OpenAI's copy in the venv's site-packages (the venv may live inside the clone), not the repository's agents/
    assert Path(where).resolve().parent.parent == Path(sysconfig.get_paths()["purelib"]).resolve(), where
    assert not Path(where).resolve().is_relative_to(ROOT / "agents"), where
    assert (runner, agent) == ("True", "True")  # OpenAI's SDK, not cogscope's agents

    helped = subprocess.run([*cogscope_command(), "--help"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert helped.returncode == 0, helped.stdout + helped.stderr
    assert helped.stdout.startswith("usage: cogscope") and "run" in helped.stdout

    llm.enqueue(DONE, prompt_tokens=100, completion_tokens=10)
    ran = subprocess.run(
        [*cogscope_command(), "run", "--agent", "heartbeat", "--task", "Decide.",
         "--model", "openai/scripted", "--api-base", llm.api_base],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Final answer: Rest for ten minutes." in ran.stdout and len(llm.requests) == 1
    match = TRACE_LINE.search(ran.stdout)
    assert match, ran.stdout
    spans = read_trace(match.group(1), min_spans=3)
    assert set(spans.loc[spans["parent_id"].isna(), "name"]) == {"heartbeat.cycle"}


def _setuptools_builds_this_project() -> bool:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0]) >= 77  # pyproject's build-system
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.e2e  # pip and the build backend in processes
@pytest.mark.skipif(
    not _setuptools_builds_this_project(),
    reason="the venv's setuptools is older than the 77 pyproject.toml requires; the tests build nothing from PyPI",
)
def test_the_wheel_holds_cogscope_agents_and_no_top_level_agents(tmp_path):
    source = tmp_path / "source"  # a copy: building in the work tree would leave build/ and *.egg-info in it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("cogscope", "agents", "telemetry", "ui"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(tmp_path / "dist"), str(source)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("cogscope-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"cogscope", wheel.name.split("-py")[0] + ".dist-info"}, names
    for package in ("agents", "telemetry", "ui"):
        assert f"cogscope/{package}/__init__.py" in names
    assert "cogscope/agents/registry.py" in names and "cogscope/__init__.py" in names
