"""Outputs render in a notebook: IPython's own display machinery formats them."""

from __future__ import annotations

from IPython.core.formatters import DisplayFormatter
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from runbox_client import Client

CELL = """
import matplotlib.pyplot as plt
import pandas as pd
print("drawing")
plt.plot([3, 1, 2])
plt.show()
pd.DataFrame({"a": [1, 2]})
"""


def test_a_plot_and_a_table_as_jupyter_shows_them(client: Client) -> None:
    result = client.execute(CELL)
    figure, table = result.outputs

    formats, _ = DisplayFormatter().format(figure)  # type: ignore[no-untyped-call]
    assert formats["image/png"] == figure.png
    assert formats["text/plain"].startswith("<Figure")
    assert "text/html" not in formats
    table_formats, _ = DisplayFormatter().format(table)  # type: ignore[no-untyped-call]
    assert table_formats["text/html"] == table.html
    assert "image/png" not in table_formats

    InteractiveShell.instance()
    with capture_output() as captured:  # type: ignore[no-untyped-call]
        result.display()
    assert captured.stdout == "drawing\n"
    shown = [o.data for o in captured.outputs]
    assert [sorted(d) for d in shown] == [["image/png", "text/plain"], ["text/html", "text/plain"]]
