"""Drive a recipe's demo page as a browser would, through `gradio_client`: the page is built
from a finished run and served in this process (`common.demo.start`), on a free port."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest


@contextlib.contextmanager
def served(recipe: str, model_dir: Path):
    """A `gradio_client.Client` connected to `recipe`'s demo of `model_dir`."""
    from common import demo

    blocks = demo.recipe_page(recipe, Path(model_dir))
    url = demo.start(blocks)
    try:
        from gradio_client import Client

        yield Client(url, verbose=False, download_files=os.environ["GRADIO_TEMP_DIR"])
    finally:
        demo.stop(blocks)


def endpoints(client) -> set[str]:
    return set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def page_error(client, *args, api_name: str) -> str:
    """The message the page shows for a request that must fail (the CLI's one line)."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name=api_name)
    return str(caught.value)
