"""Notebook outputs and images: fetched on demand, shown by IPython's protocol."""

from __future__ import annotations

from pathlib import Path

import httpx

from runbox_client import Client

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_plot_shown_and_a_plot_saved(client: Client, tmp_path: Path) -> None:
    result = client.execute(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 4, 9])\n"
        "plt.savefig('saved.png')\n"
        "plt.show()\n"
    )
    assert result.success, result.error
    [shown] = result.outputs
    assert shown.type == "display_data"
    assert shown.text is not None and shown.text.startswith("<Figure")
    assert shown.image is not None and shown.image.mime == "image/png"
    assert shown.html is None and shown._repr_html_() is None
    # The test server serves images only with a token: fetching proves it is sent.
    assert httpx.get(shown.image.url).status_code == 401
    png = shown.png
    assert png is not None and png.startswith(PNG) and len(png) == shown.image.size
    assert shown._repr_png_() == png

    [saved] = result.images
    assert saved.name == "saved.png" and saved.mime == "image/png"
    written = saved.save(tmp_path)
    assert written == tmp_path / "saved.png"
    assert written.read_bytes().startswith(PNG)
    assert saved._repr_png_() == written.read_bytes()
    assert saved._repr_jpeg_() is None


def test_a_dataframe_shows_as_html(client: Client) -> None:
    result = client.execute(
        "import pandas as pd\npd.DataFrame({'city': ['Oslo', 'Lima'], 'n': [1, 2]})"
    )
    assert result.success, result.error
    assert result.value == {"city": {"0": "Oslo", "1": "Lima"}, "n": {"0": 1, "1": 2}}
    [table] = result.outputs
    assert table.type == "execute_result"
    assert table.html is not None and "<table" in table.html and "Oslo" in table.html
    assert table._repr_html_() == table.html
    assert table.text is not None and "Lima" in table.text
    assert table.png is None and table._repr_png_() is None


def test_display_of_markdown_and_json(client: Client) -> None:
    result = client.execute(
        "from IPython.display import display, Markdown, JSON\n"
        "display(Markdown('**bold**'))\n"
        "display(JSON({'k': [1, 2]}))\n"
    )
    assert result.success, result.error
    markdown, as_json = result.outputs
    assert markdown.markdown == "**bold**" and markdown._repr_markdown_() == "**bold**"
    assert as_json.json == {"k": [1, 2]}
