"""The NER tab of the demo page: a sentence's entities highlighted in its text, or on request
each token with its IOB2 tag (the `tag` verb). See `common.demo` for the contract."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

from common import demo
from common.errors import UserError

TITLE = "NER"
EXAMPLES = [
    "Yesterday, Harry Potter met Hermione Granger.",
    "Watching the Yankees game at Madison Square Garden with @mike tonight",
    "Just landed in Paris, heading to the Louvre http://t.co/abc",
]


def spans(text: str, tokens: list[str]) -> list[tuple[int, int]] | None:
    """Each token's (start, end) characters in `text`, found left to right; None if one is
    not there as written."""
    out, position = [], 0
    for token in tokens:
        start = text.find(token, position)
        if start < 0:
            return None
        position = start + len(token)
        out.append((start, position))
    return out


def highlighted(text: str, tokens: list[str], tags: list[str], iob: bool):
    """`gr.HighlightedText`'s (piece, label) pairs covering `text`: the entities with their
    type, or with `iob` every token with its tag; the text between them unlabelled."""
    from recipes.ner import bio

    where = spans(text, tokens)
    if where is None:  # not found as written: the tokens, one space apart
        text = " ".join(tokens)
        where = spans(text, tokens)
    if iob:
        labelled = [(a, b, t) for (a, b), t in zip(where, tags, strict=True)]
    else:
        labelled = [
            (where[e["start"]][0], where[e["end"] - 1][1], e["type"])
            for e in bio.entity_spans(tokens, tags)
        ]
    pieces, position = [], 0
    for start, end, label in labelled:
        if start > position:
            pieces.append((text[position:start], None))
        pieces.append((text[start:end], label))
        position = end
    if position < len(text):
        pieces.append((text[position:], None))
    return pieces


def build(model_dir: Path, prefix: str = "") -> None:
    gr = demo.gradio()
    tags_file = Path(model_dir) / "tags.json"
    tags = json.loads(tags_file.read_text())["tags"] if tags_file.is_file() else []
    types = sorted({t[2:] for t in tags if t[:2] in ("B-", "I-")})

    def load():
        from recipes.ner.main import _tagger

        return _tagger(Path(model_dir))

    tagger = demo.cached(load)

    @demo.guarded
    def tag_text(text: str, iob: bool):
        from recipes.ner import tag

        if not text.strip():
            raise UserError("give either --text or --file")
        text = unicodedata.normalize("NFC", text.strip())
        tokens = tag.tokenize(text)
        (sentence_tags,) = tagger().tag([tokens])
        return highlighted(text, tokens, sentence_tags, iob)

    gr.Markdown(
        f"Run: `{model_dir}`. Entity types: {', '.join(types) or '(unknown)'}. "
        "Tokenised as `tag --text` does: URLs, @mentions and #hashtags whole."
    )
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Sentence", lines=2, value=EXAMPLES[0])
            button = gr.Button("Tag", variant="primary")
            iob = gr.Checkbox(label="Show each token's IOB2 tag", value=False)
            gr.Examples([[e] for e in EXAMPLES], inputs=text)
        entities = gr.HighlightedText(label="Entities", show_legend=True)
    button.click(tag_text, [text, iob], entities, api_name=f"{prefix}tag")
    text.submit(tag_text, [text, iob], entities, api_name=False)
    iob.change(tag_text, [text, iob], entities, api_name=False)
