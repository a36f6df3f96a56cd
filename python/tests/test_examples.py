"""Every ```python block of README.md and docs/python.md runs (in order, one namespace per page)."""
import re

import pytest

from conftest import REPO

PAGES = ["README.md", "docs/python.md"]


def python_blocks(page):
    text = (REPO / page).read_text()
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch, capsys):
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python code block"
    monkeypatch.chdir(tmp_path)  # figures and files land in a scratch folder
    namespace = {"__name__": "__example__"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page} block {i + 1}", "exec"), namespace)
    if page == "docs/python.md":
        assert (tmp_path / "frontier.png").stat().st_size > 10_000
        assert len(namespace["table"]) == 18
        assert namespace["v"].agree and not namespace["w"].agree
