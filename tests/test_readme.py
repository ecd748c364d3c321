"""Every code block of README.md runs as written, in a fresh directory, in the time it states.

```python blocks run as scripts; ```sh / ```bash / ```console blocks run as one bash script
(`set -eux`, so a failure names its command), with these substitutions, each the setting
the README's reader already has after the set-up:

- `python3 -m venv .venv` is dropped and `pip install ...` becomes a check that wsekern
  imports (the suite runs in the environment that install made); `.venv/bin/X` is the
  running interpreter's X (its `wsekern` entry point);
- `pytest ...` is the suite itself: it is not started again from inside it;
- the asv block runs in a clone of this repository's commit, on one quick benchmark
  (`--bench` added), without `asv preview` (a server); the test then finds the result
  asv recorded for the commit;
- `WSEKERN_QUICK=1` is set: the long commands (each marked with its time) run a small size
  of the same work, the README's documented knob.

A block's time limit is 3x the times it states (`# ~N s`, `# ~N min`; the shared test
machine is slow) plus 30 s of start-up, and 60 s when it states none.

Blocks that state LONG_SECONDS or more in all (the demo, training, the benchmarks, the
sweeps, the hardware validation: minutes, even at the quick size, on 2 shared cores) run
when WSEKERN_README_LONG=1 (.ci/run sets it, after the suite); without it the suite
checks them without running them: the shell's syntax, every `wsekern` line's arguments
against the command's parser, the Python compiled.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SHELLS = ("sh", "bash", "console", "shell")
STATED = re.compile(r"~\s*([\d.]+)\s*(s|min)\b")


LONG_SECONDS = 20


def blocks(text=None):
    """(name, language, code) of every fenced block that runs: python and the shells."""
    text = README.read_text() if text is None else text
    found = []
    for m in FENCE.finditer(text):
        lang, code = m.group(1).lower(), m.group(2)
        if lang not in ("python", *SHELLS):
            continue
        line = text[:m.start()].count("\n") + 1
        prose = FENCE.sub("", text[:m.start()])             # headings, not code comments
        heading = [h for h in re.findall(r"^#+ (.*)$", prose, re.M)][-1:]
        found.append((f"README.md:{line} ({heading[0] if heading else 'top'})", lang, code))
    return found


def stated_seconds(code):
    return sum(float(v) * (60 if unit == "min" else 1) for v, unit in STATED.findall(code))


def shell_script(code, lang):
    """The block as the bash script the test runs (see the module docstring)."""
    lines = []
    for line in code.splitlines():
        if lang == "console":
            if not line.startswith("$ "):
                continue                              # output shown in the README
            line = line[2:]
        lines.append(line)
    script = "\n".join(lines)
    script = re.sub(r"python3 -m venv \.venv\s*&&\s*", "", script)
    script = re.sub(r"(?:\.venv/bin/)?pip install [^&\n#]*",
                    'python -c "import wsekern" ', script)
    script = script.replace(".venv/bin/", "")
    script = re.sub(r"^(\s*)((?:env [^\n]*?)?pytest\b[^\n]*)$",
                    r"\1: not run here: \2", script, flags=re.M)
    script = re.sub(r"^(\s*)(asv preview\b[^\n]*)$", r"\1: not run here: \2", script,
                    flags=re.M)
    script = re.sub(r"^(\s*asv run\b)", rf"\1 --bench '{ASV_BENCH}'", script, flags=re.M)
    script = re.sub(r"&&\s*((?:\.venv/bin/)?pytest\b[^\n]*)", r"&& : \1", script)
    return "set -eux\n" + script + "\n"


def run_block(lang, code, cwd):
    # HOME too: asv keeps its machine file there (~/.asv-machine.json)
    env = dict(os.environ, WSEKERN_QUICK="1", MPLBACKEND="Agg", HOME=str(cwd))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    limit = 3 * stated_seconds(code) + 30 if stated_seconds(code) else 60
    if lang == "python":
        (cwd / "block.py").write_text(code)
        cmd = [sys.executable, "block.py"]
    else:
        (cwd / "block.sh").write_text(shell_script(code, lang))
        cmd = ["bash", "block.sh"]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=limit), limit


# The benchmark the asv block runs in the test: the analytic model's cycles, ~1 s.
ASV_BENCH = "WeightStationaryReport.track_cycles"
BLOCKS = blocks()
ASV_BLOCKS = [b for b in BLOCKS if re.search(r"^\s*asv run", b[2], re.M)]


def test_the_readme_has_its_blocks():
    langs = {lang for _, lang, _ in BLOCKS}
    assert "python" in langs and langs & set(SHELLS), langs
    assert len(BLOCKS) >= 10


PLAIN = [b for b in BLOCKS if b not in ASV_BLOCKS]
RUN_LONG = os.environ.get("WSEKERN_README_LONG", "") not in ("", "0")


@pytest.mark.parametrize("name, lang, code", PLAIN, ids=[b[0] for b in PLAIN])
def test_readme_block_runs(name, lang, code, tmp_path):
    if stated_seconds(code) >= LONG_SECONDS and not RUN_LONG:
        _check_without_running(name, lang, code)
        pytest.skip(f"states {stated_seconds(code):.0f} s: checked, run with "
                    f"WSEKERN_README_LONG=1")
    _run_and_check(name, lang, code, tmp_path)


def _check_without_running(name, lang, code):
    if lang == "python":
        compile(code, name, "exec")
        return
    script = shell_script(code, lang)
    syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert syntax.returncode == 0, f"{name}: {syntax.stderr}"
    from wsekern.cli import build_parser
    parser = build_parser()
    for line in script.splitlines():
        command = line.split("#")[0].split()
        if command[:1] == ["wsekern"]:
            try:
                parser.parse_args(command[1:])
            except SystemExit:
                pytest.fail(f"{name}: the wsekern command does not parse: {line}")


def _run_and_check(name, lang, code, cwd):
    try:
        run, limit = run_block(lang, code, cwd)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{name} did not finish within its time limit ({exc.timeout:.0f} s); "
                    f"it states {stated_seconds(code):.0f} s:\n{code}")
    assert run.returncode == 0, (f"{name} failed (exit {run.returncode}):\n{code}\n"
                                 f"--- stdout ---\n{run.stdout[-3000:]}\n"
                                 f"--- stderr ---\n{run.stderr[-3000:]}")


def test_shell_substitutions():
    script = shell_script('python3 -m venv .venv && .venv/bin/pip install ".[demo]" && '
                          '.venv/bin/wsekern demo\n'
                          'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && '
                          '.venv/bin/pytest\n'
                          'pytest tests/bench --benchmark-enable\n'
                          'asv run --python=same\n', "sh")
    assert 'python -c "import wsekern" && wsekern demo' in script
    assert "&& : pytest" in script
    assert ": not run here: pytest tests/bench" in script
    assert f"asv run --bench '{ASV_BENCH}' --python=same" in script
    assert ": not run here: asv preview" in shell_script("asv preview\n", "sh")
    assert "pip install" not in script and ".venv" not in script
    assert stated_seconds("wsekern demo   # ~10 s\nwsekern x  # ~2 min") == 130


@pytest.mark.parametrize("name, lang, code", ASV_BLOCKS, ids=[b[0] for b in ASV_BLOCKS])
def test_readme_asv_block_records_this_commit(name, lang, code, tmp_path):
    """Issue 17: `asv run --python=same --quick` recorded nothing (no commit hash)."""
    pytest.importorskip("asv")
    root = README.parent
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout: asv records results per commit")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(root), str(clone)], check=True)
    # on the branch asv.conf.json names (main), as in a user's clone
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "-B", "main", head.stdout.strip()],
                   check=True)
    _run_and_check(name, lang, code, clone)
    results = list((clone / ".asv" / "results").glob(f"*/{head.stdout.strip()[:8]}-*.json"))
    assert results, f"{name}: asv stored no result for commit {head.stdout.strip()[:8]}"
    assert ASV_BENCH in results[0].read_text()
    assert (clone / ".asv" / "html" / "index.html").exists(), "asv publish wrote no HTML"
