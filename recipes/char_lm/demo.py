"""The char_lm tab of the demo page: text sampled from a prime, shown as it is generated (the
`sample` verb), and a text coloured by how surprised the model is by each token (`score`).
See `common.demo` for the contract."""

from __future__ import annotations

import json
import math
from pathlib import Path

from common import demo

TITLE = "Character language model"
PRIME = "ROMEO:"
SCORE_EXAMPLE = "To be, or not to be, that is the question."


def _vocabulary(model_dir: Path) -> tuple[str, list[str]]:
    """(level, vocabulary) from tokenizer.json, without loading the model; a file that cannot
    be read gives ("char", []) here, and the CLI's error at the first request."""
    try:
        tokenizer = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
        return str(tokenizer["level"]), list(tokenizer["vocab"])
    except (OSError, ValueError, KeyError, TypeError):
        return "char", []


def surprisal_pieces(tok, text: str, ids, log_probs, bits_full: float):
    """The scored tokens as (piece of text, colour strength in [0, 1]), full colour at
    `bits_full` bits of surprisal or more, and as table rows (token, bits). Character level:
    the characters of the text; word level: each word and, after each line, its <eos> (shown
    as a return sign)."""
    if tok.level == "char":
        tokens = tok.tokens(text)
    else:
        tokens = []
        for line in text.splitlines():
            if line.strip():
                tokens += [f"{t} " for t in tok.tokens(line)] + ["\u23ce\n"]
    assert len(tokens) == len(ids)
    bits = [-float(lp) / math.log(2.0) for lp in log_probs]
    shown = [(t, round(min(b / bits_full, 1.0), 4)) for t, b in zip(tokens, bits, strict=True)]
    rows = [[t.rstrip() or repr(t), round(b, 4)] for t, b in zip(tokens, bits, strict=True)]
    return shown, rows


def build(model_dir: Path, prefix: str = "") -> None:
    gr = demo.gradio()
    model_dir = Path(model_dir)
    level, vocab = _vocabulary(model_dir)

    def load():
        from common import lm
        from recipes.char_lm import config
        from recipes.char_lm import sample as sample_lib
        from recipes.char_lm import score as score_lib

        cfg, tok, model = lm.load_run(model_dir, config.Config)
        return tok, sample_lib.Sampler(cfg, tok, model), score_lib.Scorer(cfg, model)

    run = demo.cached(load)

    @demo.guarded
    def sample(prime: str, length: float, temperature: float, top_k: float, seed: float):
        from recipes.char_lm import sample as sample_lib

        _, sampler, _ = run()
        texts = sample_lib.stream_texts(
            sampler,
            prime,
            length=int(length),
            temperature=float(temperature),
            top_k=int(top_k),
            seed=42 if seed is None else int(seed),
        )
        for (latest,) in texts:  # after every chunk of steps
            yield latest

    @demo.guarded
    def score(text: str):
        from common.errors import UserError
        from recipes.char_lm import score as score_lib

        if not text:
            raise UserError(score_lib.EMPTY_TEXT)
        tok, _, scorer = run()
        result, ids, log_probs = score_lib.score_text(scorer, tok, text)
        shown, rows = surprisal_pieces(tok, text, ids, log_probs, math.log2(tok.vocab_size))
        return shown, result, rows

    unit = "character" if level == "char" else "word"
    prime = PRIME if level == "char" and set(PRIME) <= set(vocab) else ""
    gr.Markdown(f"Run: `{model_dir}` ({unit} level, {len(vocab)} tokens)")

    gr.Markdown(f"### Sample: a continuation of the prime, one {unit} at a time")
    with gr.Row():
        with gr.Column():
            prime_box = gr.Textbox(label="Prime (empty: start from <bos>)", value=prime)
            length = gr.Slider(1, 2000, value=300, step=1, label="Length (tokens)")
            temperature = gr.Slider(
                0.0, 2.0, value=0.8, step=0.05, label="Temperature (0 = greedy)"
            )
            top_k = gr.Slider(
                0, max(len(vocab), 1), value=0, step=1, label="Top-k (0 = all tokens)"
            )
            seed = gr.Number(value=42, precision=0, minimum=0, maximum=2**31 - 1, label="Seed")
            sample_button = gr.Button("Generate", variant="primary")
        sampled = gr.Textbox(label="Sample", lines=16, max_lines=40)
    inputs = [prime_box, length, temperature, top_k, seed]
    sample_button.click(sample, inputs, sampled, api_name=f"{prefix}sample")
    prime_box.submit(sample, inputs, sampled, api_name=False)

    gr.Markdown(
        f"### Score: each {unit} coloured by its surprisal, -log2 P(it | everything before); "
        f"full colour at {math.log2(max(len(vocab), 2)):.1f} bits, a uniform guess"
    )
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", lines=4, value=SCORE_EXAMPLE)
            score_button = gr.Button("Score", variant="primary")
            summary = gr.JSON(label="Totals (as score --json)")
        with gr.Column():
            coloured = gr.HighlightedText(label="Surprisal", show_legend=False)
            table = gr.Dataframe(
                headers=["token", "bits"], label="Surprisal per token", interactive=False
            )
    outputs = [coloured, summary, table]
    score_button.click(score, text, outputs, api_name=f"{prefix}score")
    text.submit(score, text, outputs, api_name=False)
