"""common.demo: the page machinery behind every recipe's `demo` verb and `make demo`."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

from common import demo
from common.errors import UserError


def test_cached_makes_its_value_once_even_when_asked_from_many_threads():
    calls = []
    gate = threading.Event()

    def make():
        gate.wait(5)
        calls.append(1)
        return object()

    value = demo.Cached(make)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(value())) for _ in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1 and len(seen) == 8 and all(s is seen[0] for s in seen)


def test_a_user_error_reaches_the_page_as_the_clis_one_line():
    gr = demo.gradio()

    @demo.guarded
    def plain(text):
        raise UserError(f"{text}: no such file")

    @demo.guarded
    def streamed(text):
        yield "a"
        raise UserError(f"{text}:3: bad line")

    with pytest.raises(gr.Error) as caught:
        plain("x.wav")
    assert caught.value.message == "x.wav: no such file"
    stream = streamed("y.txt")
    assert next(stream) == "a"
    with pytest.raises(gr.Error) as caught:
        next(stream)
    assert caught.value.message == "y.txt:3: bad line"

    @demo.guarded
    def bug():
        raise KeyError("not a user error")

    with pytest.raises(KeyError):  # a bug stays a bug (Gradio shows "Error", logs the trace)
        bug()


def test_finished_needs_the_model_and_the_metrics(tmp_path):
    assert not demo.finished(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"")
    assert not demo.finished(tmp_path)  # killed before evaluation
    (tmp_path / "metrics.json").write_text("{}")
    assert demo.finished(tmp_path)


def test_make_demo_page_has_a_tab_per_recipe_saying_how_to_train_the_missing_ones(tmp_path):
    blocks = demo.all_recipes_page(tmp_path / "runs")
    url = demo.start(blocks)
    try:
        with urllib.request.urlopen(url + "config", timeout=30) as answer:
            config = json.load(answer)
    finally:
        demo.stop(blocks)
    labels = [c["props"].get("label") for c in config["components"] if c["type"] == "tabitem"]
    assert labels == [demo.recipe_module(name).TITLE for name in demo.RECIPES]
    notes = [c["props"]["value"] for c in config["components"] if c["type"] == "markdown"]
    for name in demo.RECIPES:
        command = f"make recipe-{name.replace('_', '-')}"
        assert sum(command in note for note in notes) == 1, command


def test_requests_compute_one_at_a_time_streamed_ones_piece_by_piece():
    import time

    running, most = [0], [0]

    def busy():
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.02)
        running[0] -= 1

    @demo.guarded
    def plain(_):
        busy()

    @demo.guarded
    def streamed(_):
        for piece in range(3):
            busy()
            yield piece

    threads = [threading.Thread(target=plain, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=lambda: list(streamed(0))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most[0] == 1  # models and pyplot are never used by two requests at once
