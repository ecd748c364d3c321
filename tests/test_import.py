"""Python started in the clone root imports the clone: built after the README's install, and
with a message that says what to run when it is not built."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import wsekern

ROOT = Path(wsekern.__file__).resolve().parent.parent


def _import_in(cwd):
    return subprocess.run([sys.executable, "-c", "import wsekern; print(wsekern.__file__)"],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_import_from_the_clone_root():
    run = _import_in(ROOT)
    assert run.returncode == 0, run.stderr


def test_unbuilt_source_tree_says_what_to_run(tmp_path):
    shutil.copytree(ROOT / "wsekern", tmp_path / "wsekern",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    run = subprocess.run([sys.executable, "-S", "-c", "import sys; sys.path.insert(0, '.');"
                          "import wsekern"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": ""})
    assert run.returncode != 0
    assert "not built" in run.stderr and "pip install -e ." in run.stderr
    assert "circular import" not in run.stderr
