"""A click parameter type for boards: the id is checked against boards/ and the BoardSpec loaded once; an
unknown id's error lists the known boards."""

from __future__ import annotations

import click


class BoardParam(click.ParamType):
    """A board id from boards/<id>.toml, converted to its BoardSpec; an unknown id is a BoardError (one line,
    exit 2) listing the known ones."""

    name = "board"

    def convert(self, value, param, ctx):
        from edgeclust.pipeline.boards import board_spec

        if value is None or not isinstance(value, str):
            return value  # a default that is already a BoardSpec, or none
        return board_spec(value)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        from edgeclust.pipeline.boards import board_ids

        return [CompletionItem(b) for b in board_ids() if b.startswith(incomplete)]

    def get_metavar(self, param, ctx=None):
        return "BOARD"


BOARD = BoardParam()
