"""The CLI's console: rich's, with credentials masked before the text is laid out.

The output streams are redacted too (:class:`~tradeloop.config.redact.RedactingStream`),
but a stream sees the text after the console has wrapped it to the terminal's width: a long
DSN broken inside its password no longer looks like a URL there. This console masks every
string and text it renders first, in tables and panels too, so nothing is wrapped unmasked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console as RichConsole
from rich.table import Table as RichTable
from rich.text import Text

from tradeloop.config.redact import redact

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rich.console import ConsoleOptions, RenderableType
    from rich.segment import Segment

__all__ = ["Console", "Table"]


class Console(RichConsole):
    """A :class:`rich.console.Console` that masks credentials before laying text out."""

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        """Render ``renderable`` with the credentials in its text masked."""
        return super().render(_masked(renderable), options)


def _masked(renderable: Any) -> Any:
    if isinstance(renderable, str):
        return redact(renderable)
    if isinstance(renderable, Text):
        plain = renderable.plain
        masked = redact(plain)
        if masked != plain:  # the spans no longer fit: the text keeps its own style only
            return Text(
                masked,
                style=renderable.style,
                justify=renderable.justify,
                overflow=renderable.overflow,
                no_wrap=renderable.no_wrap,
                end=renderable.end,
            )
    return renderable


class Table(RichTable):
    """A :class:`rich.table.Table` whose cells fold onto more lines instead of ending in "…".

    On a narrow terminal rich cuts a word wider than its column (a run id, a path, a parameter
    such as ``trailing_stop=0.0``); the CLI's tables keep every character instead.
    """

    def add_column(self, header: RenderableType = "", *args: Any, **kwargs: Any) -> None:
        """Add a column (as :meth:`rich.table.Table.add_column`), folding by default."""
        kwargs.setdefault("overflow", "fold")
        super().add_column(header, *args, **kwargs)
