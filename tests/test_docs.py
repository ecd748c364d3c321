"""The reference docs cover the public names, their docstrings are numpydoc with examples
that run, and the gallery's examples exist (the site itself is built by .ci/run)."""
import doctest
import inspect
import pathlib

import pytest

import wsekern
import wsekern.nn
import wsekern.wafer

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _public():
    """(qualified name, object) of every public non-module name of wsekern, wsekern.wafer
    and wsekern.nn's top level."""
    seen = {}
    for mod in (wsekern, wsekern.wafer, wsekern.nn):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or name.startswith("__"):
                continue
            seen.setdefault(id(obj), (f"{mod.__name__}.{name}", obj))
    return sorted(seen.values(), key=lambda t: t[0])


PUBLIC = _public()


def test_the_api_page_lists_every_public_name():
    api = (ROOT / "docs" / "api.rst").read_text()
    listed = {line.strip() for line in api.splitlines()}
    missing = [q for q, _ in PUBLIC if q.rsplit(".", 1)[1] not in listed]
    assert not missing, f"add to docs/api.rst: {missing}"


@pytest.mark.parametrize("qualname,obj", PUBLIC, ids=[q for q, _ in PUBLIC])
def test_public_docstrings_are_numpydoc(qualname, obj):
    doc = inspect.getdoc(obj) or ""
    assert len(doc.splitlines()) >= 3, f"{qualname} has a one-line docstring"
    try:
        params = [p for p in inspect.signature(obj).parameters if p not in ("self", "args",
                                                                           "kwargs")]
    except (TypeError, ValueError):
        params = []
    if params:
        sections = ("Parameters\n----------", "Attributes\n----------")
        assert any(s in doc for s in sections), f"{qualname} documents no parameters"


@pytest.mark.parametrize("qualname,obj", PUBLIC, ids=[q for q, _ in PUBLIC])
def test_docstring_examples_run(qualname, obj, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tests = doctest.DocTestFinder(recurse=False).find(obj, qualname, globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        result = runner.run(test)
        assert result.failed == 0, f"{qualname}: {result.failed} docstring example(s) failed"


def test_every_gallery_example_is_a_sphinx_gallery_script():
    examples = sorted((ROOT / "examples").glob("plot_*.py"))
    assert len(examples) >= 5 and (ROOT / "examples" / "README.txt").exists()
    for path in examples:
        text = path.read_text()
        assert text.startswith('"""\n') and "\n===" in text.split('"""')[1], path.name
        compile(text, str(path), "exec")
