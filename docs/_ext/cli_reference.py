"""Sphinx extension: the command-line reference, generated from the argparse parser.

``.. cli-reference:: analogebl.cli:build_parser`` renders the parser and every subparser
(depth first) as nested sections with the same text ``--help`` prints: the usage, the
description, every argument with its help, the subcommands, the epilog.

Help texts are written for a terminal, not as reStructuredText, so they are rendered as
plain text, never parsed: a paragraph (text between blank lines) becomes a paragraph, and a
paragraph with indented lines (examples) keeps its lines as a literal block — the rule the
CLI's own help formatter follows. No character in a help string can break the docs build.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import textwrap
from contextlib import contextmanager

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

_WIDTH = "88"  # columns of the usage lines (argparse reads $COLUMNS)


@contextmanager
def _columns(width: str):
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def _text_blocks(text: str | None) -> list[nodes.Node]:
    """Paragraphs of terminal help text: wrapped text, or literal lines when indented."""
    out: list[nodes.Node] = []
    if not text:
        return out
    for para in textwrap.dedent(text).strip("\n").split("\n\n"):
        lines = para.splitlines()
        if not any(line.strip() for line in lines):
            continue
        if any(line[:1].isspace() for line in lines):
            block = textwrap.dedent(para)
            out.append(nodes.literal_block(block, block))
        else:
            joined = " ".join(para.split())
            out.append(nodes.paragraph(joined, joined))
    return out


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


class CliReference(SphinxDirective):
    """Every command of an argparse parser built by ``module:function``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name, _, func_name = self.arguments[0].partition(":")
        module = importlib.import_module(module_name)
        source = inspect.getsourcefile(module)
        if source:
            self.env.note_dependency(source)
        with _columns(_WIDTH):
            parser = getattr(module, func_name)()
            return [self._section(parser, None)]

    def _section(self, parser: argparse.ArgumentParser, summary: str | None) -> nodes.section:
        prog = parser.prog
        section = nodes.section(ids=[nodes.make_id("cli " + prog)], names=[prog])
        section += nodes.title(prog, "", nodes.literal(prog, prog))
        if summary:
            section += nodes.paragraph(summary, "", nodes.emphasis(summary, summary))
        usage = parser.format_usage().strip()  # as --help prints it (continuation lines
        # are aligned after "usage: ")
        section += nodes.literal_block(usage, usage)
        section.extend(_text_blocks(parser.description))
        formatter = parser._get_formatter()
        children: list[tuple[argparse.ArgumentParser, str | None]] = []
        for group in parser._action_groups:
            items = nodes.definition_list()
            for action in group._group_actions:
                if action.help == argparse.SUPPRESS:
                    continue
                if isinstance(action, argparse._SubParsersAction):
                    helps = {a.dest: a.help for a in action._choices_actions}
                    for name, sub in action.choices.items():
                        children.append((sub, helps.get(name)))
                        items += self._item(name, helps.get(name), f"cli {sub.prog}")
                    continue
                invocation = formatter._format_action_invocation(action)
                help_text = formatter._expand_help(action) if action.help else ""
                items += self._item(invocation, help_text, None)
            if len(items):
                title = group.title or "arguments"
                section += nodes.rubric(title, title)
                section += items
        section.extend(_text_blocks(parser.epilog))
        for sub, help_text in children:
            section += self._section(sub, help_text)
        return section

    @staticmethod
    def _item(term: str, text: str | None, target: str | None) -> nodes.definition_list_item:
        item = nodes.definition_list_item()
        term_node = nodes.term()
        literal = nodes.literal(term, term)
        if target is not None:
            ref = nodes.reference("", "", internal=True, refid=nodes.make_id(target))
            ref += literal
            term_node += ref
        else:
            term_node += literal
        item += term_node
        definition = nodes.definition()
        definition.extend(_text_blocks(text) or [nodes.paragraph()])
        item += definition
        return item


def setup(app: Sphinx) -> dict:
    app.add_directive("cli-reference", CliReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
