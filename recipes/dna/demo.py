"""The dna tab of the demo page: a sequence's class probabilities and its in-silico
mutagenesis (the `explain` verb: the same code, the same picture). See `common.demo`."""

from __future__ import annotations

from pathlib import Path

from common import demo
from common.errors import UserError
from common.sequences import pasted_sequence
from recipes.dna.config import HELDOUT_FILE, LABELS_FILE

TITLE = "DNA"
EXAMPLES = 4  # held-out records offered as examples: the first of each label


def class_names(model_dir: Path) -> list[str]:
    """The run's classes (labels.json), or a one-line error if it is not a dna run."""
    return list(demo.run_json(model_dir, LABELS_FILE, "dna").get("class_names", []))


def heldout_examples(model_dir: Path) -> list[str]:
    """FASTA text of the first held-out record of each label (up to `EXAMPLES`)."""
    from common.sequences import read_fasta

    try:
        records = read_fasta(Path(model_dir) / HELDOUT_FILE)
    except (OSError, UserError):
        return []
    found: dict[str, str] = {}
    for r in records:
        found.setdefault(r.description, f">{r.id} {r.description}\n{r.sequence}")
    return list(found.values())[:EXAMPLES]


def build(model_dir: Path, prefix: str = "") -> None:
    gr = demo.gradio()
    names = class_names(model_dir)
    examples = heldout_examples(model_dir)

    run = demo.cached_run(model_dir, "recipes.dna.predict")

    @demo.guarded
    def explain(text: str, class_name: str | None):
        import tempfile

        from PIL import Image

        from recipes.dna import motifs

        model, info = run()
        sequence = motifs.check_explain_input(info, pasted_sequence(text), class_name or None)
        with tempfile.TemporaryDirectory(prefix="dna-demo-") as tmp:
            result = motifs.explain(model, info, sequence, class_name or None, Path(tmp) / "x.png")
            with Image.open(result["png"]) as drawn:
                picture = drawn.copy()
        top = [
            [t["position"], t["base"], round(t["attribution"], 4), t["worst change"]]
            for t in result["top"]
        ]
        return result["probabilities"], picture, top

    gr.Markdown(
        f"Run: `{model_dir}`. Paste a sequence (FASTA or bare letters; IUPAC codes, either "
        "case). The logo is in-silico mutagenesis: every base changed to each other base; "
        "a letter's height is the mean drop of the class's probability when it is changed."
    )
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(
                label="Sequence", lines=4, value=examples[0] if examples else "", max_lines=12
            )
            which = gr.Dropdown(
                names, value=None, label="Class to explain (empty: the predicted one)"
            )
            button = gr.Button("Predict and explain", variant="primary")
            if examples:
                gr.Examples([[e] for e in examples], inputs=text, label="Held-out sequences")
        label = gr.Label(label="Class probabilities")
    picture = gr.Image(label="Attribution logo and mutation map", type="pil", format="png")
    top = gr.Dataframe(
        headers=["position", "base", "attribution", "worst change"],
        label="Positions that matter most",
        interactive=False,
    )
    button.click(explain, [text, which], [label, picture, top], api_name=f"{prefix}explain")
    text.submit(explain, [text, which], [label, picture, top], api_name=False)
