"""The sentiment tab of the demo page: a text's label with every class's probability, and
the trained embedding's nearest words and analogies (the `predict`, `similar` and `analogy`
verbs). See `common.demo` for the contract."""

from __future__ import annotations

from pathlib import Path

from common import demo
from common.errors import UserError

TITLE = "Sentiment"
EXAMPLES = ["What a wonderful day, I love it!", "worst service ever, never again"]


def build(model_dir: Path, prefix: str = "") -> None:
    gr = demo.gradio()

    def load():
        from recipes.sentiment import classify

        return classify.load_run(model_dir)

    def load_vectors():
        from recipes.sentiment.embeddings import WordVectors

        return WordVectors.load(model_dir)

    run = demo.cached(load)
    vectors = demo.cached(load_vectors)

    @demo.guarded
    def classify_text(text: str) -> dict[str, float]:
        from recipes.sentiment import classify

        if not text.strip():
            raise UserError("--text: empty text")
        model, names = run()
        (row,) = classify.predictions(model, names, [text.strip()])
        return row["probabilities"]

    def table(neighbours):
        return [[word, round(score, 4)] for word, score in neighbours]

    @demo.guarded
    def similar(word: str, top_k: float):
        return table(vectors().similar(word.strip(), int(top_k)))

    @demo.guarded
    def analogy(a: str, b: str, c: str, top_k: float):
        return table(vectors().analogy(a.strip(), b.strip(), c.strip(), int(top_k)))

    gr.Markdown(f"Run: `{model_dir}`")
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", lines=3, value=EXAMPLES[0])
            button = gr.Button("Classify", variant="primary")
            gr.Examples([[e] for e in EXAMPLES], inputs=text)
        label = gr.Label(label="Label and probabilities")
    button.click(classify_text, text, label, api_name=f"{prefix}classify")
    text.submit(classify_text, text, label, api_name=False)

    gr.Markdown("### The embedding: nearest words, and A - B + C")
    headers = ["word", "cosine"]
    with gr.Row():
        with gr.Column():
            word = gr.Textbox(label="Word", value="good")
            k = gr.Slider(1, 30, value=10, step=1, label="How many")
            near_button = gr.Button("Nearest words")
        near = gr.Dataframe(headers=headers, label="Nearest words", interactive=False)
    near_button.click(similar, [word, k], near, api_name=f"{prefix}similar")
    with gr.Row():
        with gr.Column():
            with gr.Row():
                a = gr.Textbox(label="A", value="good")
                b = gr.Textbox(label="B", value="bad")
                c = gr.Textbox(label="C", value="worst")
            analogy_button = gr.Button("A - B + C")
        nearest = gr.Dataframe(headers=headers, label="Nearest to A - B + C", interactive=False)
    analogy_button.click(analogy, [a, b, c, k], nearest, api_name=f"{prefix}analogy")
