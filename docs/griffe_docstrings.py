"""Griffe extension of the documentation site (mkdocs.yml loads it): the docstrings as the API reference shows them.

The docstrings are Google style, read by ``pytest --doctest-modules`` and by people in an editor; three habits of
them are reST rather than Markdown. Before mkdocstrings renders a docstring this extension rewrites, in the copy
that griffe holds (the source files are not touched):

- ``Example:`` section titles to ``Examples:``, the Google section whose ``>>>`` lines griffe renders as Python
  console blocks (an ``Example:`` section would be a note, its doctest lines run together as prose);
- Sphinx roles (``:class:`~lit_reg.callbacks.LearningCurves```, ``:meth:`setup```, ``:data:`X```) to inline code,
  linked to the object's entry in the reference when that object is shown there (an optional cross-reference:
  a role naming something the reference does not show, such as a private helper, stays plain code);
- reST's ``.. note::`` (``warning``, ``tip``) directives to Google's ``Note:`` admonition sections;
- an argument entry whose names (``monitor, mode, patience,``) run over more than one line to one line (the
  grouped names ``a, b: ...`` of an Args section are one entry of the table);
- a paragraph ending in ``::`` (reST's "a literal block follows") to one ending in ``:``; the indented block after
  it is a code block in Markdown too.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|func|meth|data|attr|mod|exc|obj|const):`([^`]+)`")
EXAMPLE_TITLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
DIRECTIVE = re.compile(r"^(\s*)\.\. (note|warning|tip)::[ \t]*$", re.MULTILINE)
NAME_LIST_BREAK = re.compile(r"^(\s+(?:[\w*]+, )+[\w*]+,)\n\s+", re.MULTILINE)
LITERAL_MARKER = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)
CALLABLE_ROLES = {"func", "meth"}


def _lookup(scope: griffe.Object, dotted: str) -> str | None:
    """The canonical path of ``dotted`` seen from ``scope`` (its members, then its parents'), or None."""
    head, _, rest = dotted.partition(".")
    current: griffe.Object | None = scope
    while current is not None:
        if head in current.members:
            target: Any = current.members[head]
            for part in rest.split(".") if rest else []:
                try:
                    target = target.members[part]
                except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                    return None
            try:
                return target.final_target.path if target.is_alias else target.path
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                return None
        current = current.parent
    return None


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The path ``target`` (absolute, or relative to ``obj``'s class and module) names, or None."""
    try:
        found = obj.modules_collection.get_member(target)
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        found = None
    if found is not None:
        try:
            return found.final_target.path if found.is_alias else found.path
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return target
    return _lookup(obj if obj.is_class or obj.is_module else obj.parent, target)


def rewrite(text: str, obj: griffe.Object) -> str:
    """``text`` (a docstring of ``obj``) with its reST habits turned into Markdown (see the module docstring)."""

    def role(match: re.Match[str]) -> str:
        kind, target = match.group(1), match.group(2).strip()
        short = target.startswith("~")
        target = target.lstrip("~.")
        shown = target.rsplit(".", 1)[-1] if short else target
        if kind in CALLABLE_ROLES and not shown.endswith(")"):
            shown += "()"
        code = f"<code>{html.escape(shown)}</code>"
        path = _resolve(obj, target)
        return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>' if path else code

    text = EXAMPLE_TITLE.sub(r"\1Examples:", text)
    text = DIRECTIVE.sub(lambda m: f"{m.group(1)}{m.group(2).capitalize()}:", text)
    text = NAME_LIST_BREAK.sub(r"\1 ", text)
    text = LITERAL_MARKER.sub(r"\1:", text)
    return ROLE.sub(role, text)


class MarkdownDocstrings(griffe.Extension):
    """Rewrites every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj.docstring.value, obj)
            stack.extend(member for member in obj.members.values() if not member.is_alias)
