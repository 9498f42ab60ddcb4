"""A DataTable fed whole lists of rows, with a text filter and cheap updates."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

Cell = str | Text


@dataclass(frozen=True)
class Row:
    """One table row: a unique key and one cell per column."""

    key: str
    cells: tuple[Cell, ...]


def row_matches(cells: Iterable[Cell], terms: Sequence[str]) -> bool:
    """Return whether every lower-case term occurs in some cell of the row."""
    text = " ".join(cell.plain if isinstance(cell, Text) else cell for cell in cells)
    text = text.lower()
    return all(term in text for term in terms)


class ResourceTable(DataTable):
    """A row-cursor table that shows ``Row`` lists and keeps the cursor on its row.

    ``set_rows`` replaces the content. When the visible keys are the same as
    before, in the same order, only the changed cells are updated, so a
    fleet of hundreds of agents refreshing every two seconds does not
    rebuild the table each time. ``filter_text`` hides rows that do not
    contain every word of it (case-insensitive).
    """

    # No j/k: `k` acknowledges an alert in this console.
    BINDINGS = [
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    DEFAULT_CSS = """
    ResourceTable {
        height: 1fr;
    }
    """

    def __init__(
        self,
        columns: Sequence[str],
        *,
        widths: Sequence[int | None] | None = None,
        cell_padding: int = 1,
        id: str | None = None,
    ) -> None:
        super().__init__(
            id=id, cursor_type="row", zebra_stripes=True, cell_padding=cell_padding
        )
        self.column_names = tuple(columns)
        # A fixed width keeps a column from being measured again on every
        # cell update, which costs a layout pass of the whole screen.
        self.column_widths = tuple(widths or (None,) * len(self.column_names))
        self._given_rows: list[Row] = []
        self._all_rows: list[Row] = []
        self._shown: list[Row] = []
        self._filter_terms: tuple[str, ...] = ()

    def on_mount(self) -> None:
        for name, width in zip(self.column_names, self.column_widths, strict=True):
            self.add_column(name, key=name, width=width)

    @property
    def filter_text(self) -> str:
        return " ".join(self._filter_terms)

    @filter_text.setter
    def filter_text(self, text: str) -> None:
        self._filter_terms = tuple(text.lower().split())
        self._show(self._all_rows)

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self._shown or self.cursor_row < 0:
            return None
        return self._shown[min(self.cursor_row, len(self._shown) - 1)].key

    @property
    def shown_keys(self) -> list[str]:
        return [row.key for row in self._shown]

    def select_key(self, key: str) -> bool:
        """Move the cursor to the row ``key``; return False when it is not shown."""
        for index, row in enumerate(self._shown):
            if row.key == key:
                self.move_cursor(row=index)
                return True
        return False

    def set_rows(self, rows: Sequence[Row]) -> None:
        """Show ``rows`` (filtered), updating in place where the keys allow."""
        self._given_rows = list(rows)
        if self.cell_padding == 0:
            rows = [Row(row.key, self._fit(row.cells)) for row in rows]
        self._all_rows = list(rows)
        self._show(self._all_rows)

    def set_column_width(self, name: str, width: int) -> None:
        """Give column ``name`` a new fixed width and cut the cells to it again."""
        position = self.column_names.index(name)
        if self.column_widths[position] == width:
            return
        widths = list(self.column_widths)
        widths[position] = width
        self.column_widths = tuple(widths)
        self.columns[name].width = width
        self._shown = []  # every row is laid out again
        self.set_rows(self._given_rows)

    def _fit(self, cells: tuple[Cell, ...]) -> tuple[Cell, ...]:
        # Without cell padding, a cell as wide as its column would touch the
        # next one: keep one blank cell, marking any cut with an ellipsis.
        fitted: list[Cell] = []
        for cell, width in zip(cells, self.column_widths, strict=True):
            if width is None or len(cell) < width:
                fitted.append(cell)
            elif isinstance(cell, Text):
                cut = cell.copy()
                cut.truncate(width - 1, overflow="ellipsis")
                fitted.append(cut)
            else:
                fitted.append(cell[: width - 2] + "…")
        return tuple(fitted)

    def _show(self, rows: Sequence[Row]) -> None:
        terms = self._filter_terms
        shown = [row for row in rows if not terms or row_matches(row.cells, terms)]
        if [r.key for r in shown] == [r.key for r in self._shown]:
            self._update_cells(shown)
        else:
            self._rebuild(shown)
        self._shown = shown

    def _update_cells(self, shown: list[Row]) -> None:
        for old, new in zip(self._shown, shown, strict=True):
            if old.cells == new.cells:
                continue
            for column, width, before, after in zip(
                self.column_names, self.column_widths, old.cells, new.cells, strict=True
            ):
                if before != after:
                    # A column without a fixed width grows to a longer value,
                    # as it would on a rebuild ("! pending" to "↩ rolled_back").
                    self.update_cell(new.key, column, after, update_width=width is None)

    def _rebuild(self, shown: list[Row]) -> None:
        selected = self.selected_key
        self.clear()
        for row in shown:
            self.add_row(*row.cells, key=row.key)
        if selected is not None:
            for index, row in enumerate(shown):
                if row.key == selected:
                    self.move_cursor(row=index, animate=False)
                    break

    def cell_text(self, key: str, column: str) -> str:
        """Return the plain text of one cell (tests and hints)."""
        try:
            value = self.get_cell(key, column)
        except RowDoesNotExist:
            return ""
        return value.plain if isinstance(value, Text) else str(value)
