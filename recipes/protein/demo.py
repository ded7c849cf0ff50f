"""The protein tab of the demo page: a chain's predicted state per residue and the
confidence of each (the `predict` verb, and its `--plot-dir` picture). See `common.demo`."""

from __future__ import annotations

import csv
from pathlib import Path

from common import demo
from common.sequences import pasted_sequence
from recipes.protein.config import HELDOUT_FILE, LABELS_FILE

TITLE = "Protein"
EXAMPLES = 3  # the first held-out chains, offered as examples
NAMES = {
    "H": "helix",
    "G": "3-10 helix",
    "I": "pi helix",
    "E": "strand",
    "B": "bridge",
    "T": "turn",
    "S": "bend",
    "C": "coil",
}
COLOURS = {
    "H": "#d62728",
    "G": "#ff9896",
    "I": "#e377c2",
    "E": "#1f77b4",
    "B": "#aec7e8",
    "T": "#2ca02c",
    "S": "#98df8a",
    "C": "#dddddd",
}


def state_letters(model_dir: Path) -> str:
    """The run's state letters (labels.json), or a one-line error if it is not a protein run."""
    return str(demo.run_json(model_dir, LABELS_FILE, "protein").get("states", ""))


def heldout_examples(model_dir: Path) -> list[str]:
    """The sequences of the first held-out chains (up to `EXAMPLES`)."""
    try:
        with open(Path(model_dir) / HELDOUT_FILE, encoding="utf-8", newline="") as lines:
            rows = csv.DictReader(lines, delimiter="\t")
            return [r["sequence"] for r, _ in zip(rows, range(EXAMPLES), strict=False)]
    except (OSError, UnicodeDecodeError, KeyError, csv.Error):
        return []


def label(state: str) -> str:
    return f"{state} {NAMES.get(state, '')}".strip()


def segments(sequence: str, predicted: str) -> list[tuple[str, str]]:
    """Runs of residues with the same predicted state, as `gr.HighlightedText` shows them."""
    out: list[tuple[str, str]] = []
    for residue, state in zip(sequence, predicted, strict=True):
        if out and out[-1][1] == label(state):
            out[-1] = (out[-1][0] + residue, out[-1][1])
        else:
            out.append((residue, label(state)))
    return out


def build(model_dir: Path, prefix: str = "") -> None:
    gr = demo.gradio()
    states = state_letters(model_dir)
    examples = heldout_examples(model_dir)

    run = demo.cached_run(model_dir, "recipes.protein.predict")

    @demo.guarded
    def predict(text: str):
        import tempfile

        from PIL import Image

        from recipes.protein import data as protein_data
        from recipes.protein import predict as predict_lib

        model, info = run()
        chain = protein_data.given_chain(pasted_sequence(text), len(info.states))
        (p,) = predict_lib.probabilities(model, [chain.sequence])
        predicted = predict_lib.predicted_states(p, info.states)
        table = [
            [i + 1, residue, predicted[i], round(float(p[i].max()), 4)]
            + [round(float(x), 4) for x in p[i]]
            for i, residue in enumerate(chain.sequence)
        ]
        with tempfile.TemporaryDirectory(prefix="protein-demo-") as tmp:
            png = Path(tmp) / "chain.png"
            predict_lib.draw_chain(chain.id, chain.sequence, p, info.states, png)
            with Image.open(png) as drawn:
                picture = drawn.copy()
        return segments(chain.sequence, predicted), picture, table

    gr.Markdown(
        f"Run: `{model_dir}`. Paste a chain (amino-acid letters, or one FASTA record): "
        f"each residue gets one of the states {', '.join(label(s) for s in states)}; its "
        "confidence is the probability of that state."
    )
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(
                label="Chain", lines=4, max_lines=12, value=examples[0] if examples else ""
            )
            button = gr.Button("Predict", variant="primary")
            if examples:
                gr.Examples([[e] for e in examples], inputs=text, label="Held-out chains")
        shown = gr.HighlightedText(
            label="Predicted state per residue",
            color_map={label(s): COLOURS.get(s, "#dddddd") for s in states},
            combine_adjacent=False,
            show_legend=True,
        )
    picture = gr.Image(label="States and confidence", type="pil", format="png")
    table = gr.Dataframe(
        headers=["position", "residue", "state", "confidence", *states],
        label="Per residue: the predicted state, its probability (confidence) and every state's",
        interactive=False,
    )
    outputs = [shown, picture, table]
    button.click(predict, text, outputs, api_name=f"{prefix}predict")
    text.submit(predict, text, outputs, api_name=False)
