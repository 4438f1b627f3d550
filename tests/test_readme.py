"""The README's runnable blocks, run as a reader would: in order, in one scratch directory, on
the shipped samples (no data directory, an empty user cache), servers on 127.0.0.1.

A fenced ``python`` or ``bash`` block preceded by the line ``<!-- runnable -->`` is run; every
other block is left alone (benchmarks, deployment sketches, output listings).  A block fails
the test on a non-zero exit status; background servers a block starts are killed at the end.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = "<!-- runnable -->"
_FENCE = re.compile(r"^```(\w*)\s*$")


def runnable_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, language, code) of each block marked runnable."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == MARK:
            j = i + 1
            m = _FENCE.match(lines[j]) if j < len(lines) else None
            if not m or m.group(1) not in ("python", "bash"):
                raise AssertionError(f"README.md:{i + 1}: {MARK} must be followed by a ```python or ```bash block")
            k = j + 1
            while k < len(lines) and lines[k].strip() != "```":
                k += 1
            out.append((j + 1, m.group(1), "\n".join(lines[j + 1:k]) + "\n"))
            i = k
        i += 1
    return out


BLOCKS = runnable_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_marks_its_examples_runnable():
    langs = [lang for _, lang, _ in BLOCKS]
    assert langs.count("python") >= 5 and langs.count("bash") >= 4, langs


def test_the_docs_point_only_where_a_reader_can_follow():
    """No internal issue numbers, no sibling folders of this project's workspace."""
    for path in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for bad in (r"\bissues? \d+\b", r"\.\./shared\b", r"\bshared/data\b", r"\bthis session\b",
                    r"\bthe issue's\b"):
            hit = re.search(bad, text, flags=re.IGNORECASE)
            assert hit is None, f"{path.name}: {hit.group(0)!r} at offset {hit.start()}"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A working directory and environment like a new user's; kills what the blocks leave running."""
    work = tmp_path_factory.mktemp("readme")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYIMGENC_")}
    env.update(HOME=str(work / "home"), XDG_CACHE_HOME=str(work / "cache"), PYTHONUNBUFFERED="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    groups: list[int] = []
    yield work, env, groups
    for g in groups:
        try:
            os.killpg(g, signal.SIGTERM)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("line,lang,code", BLOCKS, ids=[f"README.md:{n}-{lang}" for n, lang, _ in BLOCKS])
def test_readme_block_runs(scratch, line, lang, code):
    work, env, groups = scratch
    cmd = [sys.executable, "-"] if lang == "python" else ["bash", "-e", "-o", "pipefail", "-s"]
    log = work / f"block-{line}.log"         # a file, not a pipe: servers left running keep it open
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.PIPE, stdout=f, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        groups.append(proc.pid)              # the block's process group: its background servers included
        try:
            proc.communicate(code, timeout=900)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"README.md:{line} ({lang}) did not finish in 900 s:\n{log.read_text()[-3000:]}")
    assert proc.returncode == 0, f"README.md:{line} ({lang}) exited {proc.returncode}:\n{log.read_text()[-3000:]}"
