"""The music tab of the demo page: a tune composed from a meter, a key, first notes, a
temperature and a seed (the `compose` verb, one tune), shown as ABC text, a piano roll and
audio synthesised from its notes (`recipes.music.audio`). See `common.demo` for the contract."""

from __future__ import annotations

import io
import json
from pathlib import Path

from common import demo
from recipes.music import audio

TITLE = "Music"
DRAWN = ("drawn by the model", "")


def _known(model_dir: Path, prefix: str) -> list[str]:
    """The meters (M:) or keys (K:) in the run's vocabulary, for the menus."""
    path = Path(model_dir) / "tokenizer.json"
    vocab = json.loads(path.read_text())["vocab"] if path.is_file() else []
    return sorted(t[len(prefix) :] for t in vocab if t.startswith(prefix))


def build(model_dir: Path, prefix: str = "") -> None:
    gr = demo.gradio()
    config_file = Path(model_dir) / "config.json"
    settings = json.loads(config_file.read_text()) if config_file.is_file() else {}
    meters, keys = _known(model_dir, "M:"), _known(model_dir, "K:")

    def load():
        from recipes.music import model as model_lib
        from recipes.music.main import load_run

        cfg, tok, model = load_run(model_dir)
        return cfg, tok, model_lib.sampler(cfg, tok, model)

    run = demo.cached(load)

    @demo.guarded
    def compose(meter: str, key: str, prime: str, temperature: float, seed: float):
        from PIL import Image

        from recipes.music import abc, checks
        from recipes.music import compose as compose_lib

        cfg, tok, sampler = run()
        meter, key = (meter or "").strip() or None, (key or "").strip() or None
        seed = 42 if seed is None else int(seed)  # compose --seed's default
        ((tokens, finished),) = compose_lib.compose(
            sampler,
            tok,
            meter=meter,
            key=key,
            prime=(prime or "").strip(),
            num_tunes=1,
            max_tokens=cfg.max_tokens,
            temperature=float(temperature),
            seed=seed,
        )
        text = compose_lib.tune_text(tokens, finished)
        if not abc.analyse(tokens).onsets:  # no notes: nothing to draw or play
            return text, None, None
        png = io.BytesIO()
        title = f"M:{abc.meter_of(tokens)} K:{abc.key_of(tokens)}, seed {seed}"
        checks.plot_piano_roll(tokens, png, title=title)
        png.seek(0)
        return text, Image.open(png), (audio.SAMPLE_RATE, audio.synthesize(tokens))

    gr.Markdown(
        f"Run: `{model_dir}`. One tune, as `compose --num-tunes 1` writes it; the audio is "
        f"synthesised from its notes at {audio.TEMPO} quarter notes a minute (no sound font)."
    )
    with gr.Row():
        with gr.Column():
            meter = gr.Dropdown(
                [DRAWN, *meters],
                value="4/4" if "4/4" in meters else "",
                label="Meter",
                allow_custom_value=True,
            )
            key = gr.Dropdown(
                [DRAWN, *keys],
                value="G" if "G" in keys else "",
                label="Key",
                allow_custom_value=True,
            )
            prime = gr.Textbox(label="First notes (ABC in eighths, e.g. G2 AB|; needs a key)")
            temperature = gr.Slider(
                0.0, 2.0, value=settings.get("temperature", 1.0), step=0.05, label="Temperature"
            )
            seed = gr.Number(value=42, precision=0, minimum=0, maximum=2**31 - 1, label="Seed")
            button = gr.Button("Compose", variant="primary")
        with gr.Column():
            text = gr.Textbox(label="ABC", lines=12, buttons=["copy"])
            roll = gr.Image(label="Piano roll", format="png", interactive=False)
            sound = gr.Audio(label="Audio", format="wav", interactive=False)
    inputs = [meter, key, prime, temperature, seed]
    button.click(compose, inputs, [text, roll, sound], api_name=f"{prefix}compose")
