"""Sphinx configuration of wsekern's documentation (built offline:
``sphinx-build -W -b html docs docs/_build/html`` after ``pip install -e ".[docs]"``)."""
import os
import pathlib

import wsekern

HERE = pathlib.Path(__file__).parent
os.environ.setdefault("OMP_NUM_THREADS", "1")       # the gallery's timings: one thread each

project = "wsekern"
author = "the wsekern authors"
copyright = "the wsekern authors, BSD-3-Clause"
release = version = wsekern.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinxarg.ext",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "generated/*.examples", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.json",
                    "auto_examples/*.md5", "auto_examples/*.codeobj.json"]
templates_path = []

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False     # autosummary lists members; numpydoc would repeat them
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = f"wsekern {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = []

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": str(HERE / "auto_examples"),
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "within_subsection_order": "FileNameSortKey",
}


def _design_pages():
    """The design pages written in Markdown beside this file (architecture.md, simulator.md),
    listed in a generated toctree: the index needs no edit when one is added."""
    pages = [p.stem for p in sorted(HERE.glob("*.md"))]
    body = "\n".join(f"   ../{name}" for name in pages)
    text = ("Design\n======\n\nHow the simulator and the package are built.\n\n"
            + (f".. toctree::\n   :maxdepth: 1\n\n{body}\n" if pages else
               "No design page is written yet.\n"))
    out = HERE / "generated_design"
    out.mkdir(exist_ok=True)
    path = out / "index.rst"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


_design_pages()
