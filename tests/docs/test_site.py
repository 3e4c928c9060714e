"""The documentation site: mkdocs.yml's nav covers every page, the strict build passes and catches broken links,
and the griffe extension turns the docstrings' reST habits into Markdown."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
HAS_MKDOCS = importlib.util.find_spec("mkdocs") is not None and importlib.util.find_spec("mkdocstrings") is not None
needs_mkdocs = pytest.mark.skipif(not HAS_MKDOCS, reason="mkdocs/mkdocstrings not installed: `make docs` installs "
                                                         "the docs extra (pip install -e '.[docs]')")
needs_griffe = pytest.mark.skipif(importlib.util.find_spec("griffe") is None,
                                  reason="griffe not installed: pip install -e '.[docs]'")


class _Loader(yaml.SafeLoader):
    """mkdocs.yml may hold MkDocs' own tags (!ENV, !!python/name:); the nav test reads only plain keys."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def load_config() -> dict[str, Any]:
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)


def nav_pages(nav: Any) -> list[str]:
    """Every page path of a MkDocs nav (a list of strings and {title: page-or-list})."""
    if isinstance(nav, str):
        return [] if "://" in nav else [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_nav_lists_every_page_once_and_every_entry_exists() -> None:
    config = load_config()
    assert config["docs_dir"] == "docs" and config["strict"] is True
    pages = nav_pages(config["nav"])
    on_disk = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(set(pages)) == sorted(pages), "a page is listed twice in the nav"
    assert [p for p in pages if not (DOCS / p).is_file()] == [], "nav entries without a file"
    assert [p for p in on_disk if p not in pages] == [], "pages missing from the nav of mkdocs.yml"
    for page in ("index.md", "cli.md", "development.md", "api/models.md", "api/callbacks.md", "api/datamodules.md",
                 "api/cli.md", "api/study.md"):
        assert page in pages
    assert pages[0] == "index.md"


def test_api_pages_name_the_packages_and_validation_turns_broken_links_into_errors() -> None:
    directives = {line.removeprefix("::: ").strip() for page in (DOCS / "api").glob("*.md")
                  for line in page.read_text().splitlines() if line.startswith("::: ")}
    assert {"lit_reg.models", "lit_reg.callbacks", "datamodules", "lit_reg.defaults", "lit_reg.cli",
            "lit_reg.study.spec", "lit_reg.study.report"} <= directives
    for module in directives:  # each names an importable module
        assert importlib.util.find_spec(module) is not None, module
    validation = load_config()["validation"]
    assert {validation[key] for key in ("omitted_files", "unrecognized_links", "anchors")} == {"warn"}


def load_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("griffe_docstrings", DOCS / "griffe_docstrings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_griffe
def test_extension_rewrites_roles_examples_notes_and_grouped_names() -> None:
    import griffe

    extension = load_extension()
    package = griffe.load("lit_reg", search_paths=[str(ROOT)], resolve_aliases=False)
    defaults = package["defaults"]["default_logger"]
    docstring = ("Uses :class:`~lit_reg.callbacks.LearningCurves`, :func:`default_callbacks` and "
                 ":meth:`private_nothing`.\n\nA script writes::\n\n    x = 1\n\n"
                 "Args:\n    monitor, mode, patience,\n        verbose: Lightning's.\n\n"
                 ".. note::\n    Careful.\n\nExample:\n    >>> 1 + 1\n    2\n")
    out = extension.rewrite(docstring, defaults)
    assert ('<autoref identifier="lit_reg.callbacks.learning_curves.LearningCurves" optional>'
            "<code>LearningCurves</code></autoref>") in out
    assert '<autoref identifier="lit_reg.defaults.default_callbacks" optional><code>default_callbacks()</code>' in out
    assert "<code>private_nothing()</code>" in out and "identifier=\"private_nothing" not in out
    assert "A script writes:\n\n    x = 1" in out
    assert "    monitor, mode, patience, verbose: Lightning's." in out
    assert "Note:\n    Careful." in out and ".. note::" not in out
    assert "Examples:\n    >>> 1 + 1" in out and "Example:\n" not in out
    assert ":class:" not in out and ":func:" not in out and ":meth:" not in out


@needs_mkdocs
def test_strict_validation_rejects_a_broken_link_an_anchor_and_an_orphan_page(tmp_path: Path) -> None:
    """The validation settings of mkdocs.yml, on a two-page site: each mistake is an error in strict mode."""
    validation = load_config()["validation"]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[ok](other.md#a-heading)\n")
    (docs / "other.md").write_text("# Other\n\n## A heading\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(yaml.safe_dump({"site_name": "t", "strict": True, "validation": validation,
                                      "nav": ["index.md", "other.md"]}))
    assert mkdocs_build(config, tmp_path / "site").returncode == 0
    for mistake, expected in (("[x](missing.md)", "missing.md"), ("[x](other.md#no-such)", "no-such"),
                              ("[x](../README.md)", "README.md")):
        (docs / "index.md").write_text(f"# Home\n\n{mistake}\n")
        result = mkdocs_build(config, tmp_path / "site")
        assert result.returncode != 0 and expected in result.stderr, mistake
    (docs / "index.md").write_text("# Home\n")
    (docs / "orphan.md").write_text("# Orphan\n")
    result = mkdocs_build(config, tmp_path / "site")
    assert result.returncode != 0 and "orphan.md" in result.stderr


@pytest.mark.slow
@needs_mkdocs
def test_strict_build_of_the_site(tmp_path: Path) -> None:
    """`make docs`' build: no warning in strict mode, the API pages rendered from the docstrings."""
    site = tmp_path / "site"
    result = mkdocs_build(ROOT / "mkdocs.yml", site)
    assert result.returncode == 0, result.stderr[-3000:]
    models = (site / "api" / "models" / "index.html").read_text()
    assert 'id="lit_reg.models.DenseClassifier"' in models and 'id="lit_reg.models.RegularizedModule"' in models
    assert 'class="gp">&gt;&gt;&gt; </span>' in models  # doctest examples as highlighted console blocks
    callbacks = (site / "api" / "callbacks" / "index.html").read_text()
    assert 'id="lit_reg.callbacks.LearningCurves"' in callbacks
    # a docstring's Sphinx role became a link to the object's entry on another API page
    assert 'href="../models/#lit_reg.models.BitmojiClassifier"' in callbacks
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert ":class:`" not in text and ":meth:`" not in text, page
    assert (site / "cli" / "index.html").is_file() and (site / "development" / "index.html").is_file()
    assert (site / "images" / "learning_curves.png").is_file()
    assert not (site / "griffe_docstrings.py").exists() and not (site / "make_figures.py").exists()
