"""The translation tab of the demo page: a sentence's translation (the `translate` verb, greedy
or beam search), the hypotheses beam search weighed with their scores, and the attention map
(`translate --plot-attention`). See `common.demo` for the contract."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from common import demo
from recipes.translation.config import HELDOUT_FILE

TITLE = "Translation"
EXAMPLE = "mardi 9 mai 2017"
HEADERS = ["translation", "log-probability", "normalised score", "ended with <eos>"]


def _examples(model_dir: Path, count: int = 4) -> list[str]:
    """The first sources of the run's held-out pairs (read without loading anything else)."""
    sources = []
    try:
        with open(model_dir / HELDOUT_FILE, encoding="utf-8") as lines:
            for line in lines:
                source = line.split("\t")[0].strip()
                if source:
                    sources.append(source)
                if len(sources) == count:
                    break
    except (OSError, UnicodeDecodeError):
        pass
    return sources or [EXAMPLE]


def _attention(model_dir: Path) -> str:
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        return str(config.get("attention", "?"))
    except (OSError, ValueError, AttributeError):
        return "?"


def build(model_dir: Path, prefix: str = "") -> None:
    gr = demo.gradio()
    model_dir = Path(model_dir)
    examples = _examples(model_dir)
    attention = _attention(model_dir)

    def load():
        from recipes.translation import train as train_lib

        return train_lib.load_run(model_dir)

    run = demo.cached(load)

    @demo.guarded
    def translate(text: str, beam_size: float, length_penalty: float):
        from common.errors import UserError
        from recipes.translation import translate as translate_lib
        from recipes.translation.main import NOTHING_TO_TRANSLATE

        if not text.strip():
            raise UserError(NOTHING_TO_TRANSLATE)
        loaded = run()
        translator, names = loaded.translator, ["--text 1"]
        (hyp,), notes = translator.translate(
            [text],
            beam_size=int(beam_size),
            length_penalty=float(length_penalty),
            names=names,
            candidates=True,
        )
        notes = "\n".join(f"note: {n}" for n in notes)
        if hyp is None:  # nothing left after tokenisation, as the CLI says
            return (
                "",
                "\n".join(filter(None, [notes, "note: --text 1: empty input, empty output"])),
                [],
                None,
            )
        decode = translator.target_tokenizer.decode
        rows = [
            [decode(c.tokens), round(c.score, 4), round(c.normalized, 4), c.finished]
            for c in hyp.candidates
        ]
        picture = None
        if loaded.cfg.attention != "none":
            (ids,) = translator.prepare([text], names).ids
            for old in demo.scratch_dir("translation").glob(
                "*.png"
            ):  # the page has its own copy by now
                old.unlink(missing_ok=True)
            picture = str(demo.scratch_dir("translation") / f"attention-{uuid.uuid4().hex}.png")
            translate_lib.plot_attention(
                [translate_lib.attention_panel(translator, ids, hyp)], picture
            )
        return translator.target_text(hyp), notes, rows, picture

    gr.Markdown(f"Run: `{model_dir}` (attention: {attention})")
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", lines=2, value=examples[0])
            beam_size = gr.Slider(1, 8, value=4, step=1, label="Beam size (1 = greedy)")
            length_penalty = gr.Slider(
                0.0, 2.0, value=0.6, step=0.1, label="Length penalty alpha (beam search)"
            )
            button = gr.Button("Translate", variant="primary")
            gr.Examples([[e] for e in examples], inputs=text)
        with gr.Column():
            translation = gr.Textbox(label="Translation")
            notes = gr.Textbox(label="Notes", lines=1)
            candidates = gr.Dataframe(
                headers=HEADERS,
                label="Hypotheses weighed, best first (the first is the translation)",
                interactive=False,
            )
    picture = gr.Image(
        label="Attention: which source tokens each output token looked at",
        type="filepath",
        format="png",
        interactive=False,
    )
    inputs = [text, beam_size, length_penalty]
    outputs = [translation, notes, candidates, picture]
    button.click(translate, inputs, outputs, api_name=f"{prefix}translate")
    text.submit(translate, inputs, outputs, api_name=False)
