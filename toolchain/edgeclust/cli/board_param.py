"""A click parameter type for board ids: checked against boards/, with the known boards in its error."""

from __future__ import annotations

import click


class BoardParam(click.ParamType):
    """A board id from boards/<id>.toml; an unknown id is a BoardError (one line, exit 2) listing the known ones."""

    name = "board"

    def __init__(self, boards_dir=None):
        self._boards_dir = boards_dir

    def boards_dir(self):
        from edgeclust import resources

        return self._boards_dir or resources.boards_dir()

    def convert(self, value, param, ctx):
        from edgeclust.codegen.board import load_board

        if value is None or not isinstance(value, str):
            return value
        return load_board(value, self.boards_dir()).id

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        from edgeclust.codegen.board import list_boards

        return [CompletionItem(b) for b in list_boards(self.boards_dir()) if b.startswith(incomplete)]

    def get_metavar(self, param, ctx=None):
        return "BOARD"


BOARD = BoardParam()
