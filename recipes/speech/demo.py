"""The speech tab of the demo page: a recording (uploaded, from the microphone, or one of
the run's held-out utterances) -> its transcript with the decoder of your choice (the
`transcribe` verb). See `common.demo` for the contract."""

from __future__ import annotations

from pathlib import Path

from common import demo
from common.errors import UserError
from recipes.speech.config import DECODERS, HELDOUT_FILE

TITLE = "Speech"
INFO_FILE = "speech.json"  # transcribe.INFO_FILE, read here without importing TensorFlow
NO_INPUT = "no recording given; upload one, record one or pick a held-out one"


def run_decoders(model_dir: Path) -> tuple[list[str], str]:
    """The decoders this run offers (lm only with its language model) and its own."""
    info = demo.run_json(model_dir, INFO_FILE, "speech")
    decoder = info.get("decoder", "beam")
    return [d for d in DECODERS if d != "lm" or info.get("lm_dir")], decoder


def heldout_utterances(model_dir: Path) -> dict[str, str]:
    """{audio path: reference transcript} of the run's held-out manifest (paths as
    `transcribe` takes them: absolute, or relative to the run directory)."""
    try:
        lines = (Path(model_dir) / HELDOUT_FILE).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    return {str(Path(model_dir) / row[0]): row[1] for row in rows if len(row) >= 2}


def build(model_dir: Path, prefix: str = "") -> None:
    gr = demo.gradio()
    decoders, default = run_decoders(model_dir)
    heldout = heldout_utterances(model_dir)

    def load():
        from recipes.speech import transcribe

        return transcribe.Recognizer(model_dir, "lm" if "lm" in decoders else None)

    recognizer = demo.cached(load)

    def transcript(path: Path, decoder: str) -> str:
        from recipes.speech import data as speech_data

        r = recognizer()
        wave = speech_data.load_waveform(path, r.info.sample_rate)
        r.decoder = decoder  # one request at a time (common.demo.guarded)
        return r.transcribe(wave)

    @demo.guarded
    def transcribe_audio(path: str | None, decoder: str):
        if not path:
            raise UserError(NO_INPUT)
        with demo.named_as_uploaded(Path(path)):
            return transcript(Path(path), decoder), ""

    @demo.guarded
    def transcribe_heldout(path: str | None, decoder: str):
        if not path:
            raise UserError(NO_INPUT)
        return transcript(Path(path), decoder), heldout.get(path, "")

    gr.Markdown(
        f"Run: `{model_dir}`. Any audio file soundfile reads (WAV, FLAC, OGG, MP3; any "
        "sample rate, stereo is averaged), or a recording from the microphone. A recording "
        "longer than the training utterances is cut into overlapping windows, as "
        "`transcribe` does."
    )
    with gr.Row():
        with gr.Column():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Recording")
            decoder = gr.Radio(decoders, value=default, label="Decoder (the run's best is chosen)")
            button = gr.Button("Transcribe", variant="primary")
            chosen = gr.Dropdown(
                [(f"{Path(p).name}: {text}", p) for p, text in heldout.items()],
                value=None,
                label="Or a held-out utterance of the run",
            )
        with gr.Column():
            text = gr.Textbox(label="Transcript", lines=3, interactive=False)
            reference = gr.Textbox(label="Reference (held-out utterances)", interactive=False)
    outputs = [text, reference]
    button.click(transcribe_audio, [audio, decoder], outputs, api_name=f"{prefix}transcribe")
    audio.upload(transcribe_audio, [audio, decoder], outputs, api_name=False)
    audio.stop_recording(transcribe_audio, [audio, decoder], outputs, api_name=False)
    chosen.input(
        transcribe_heldout, [chosen, decoder], outputs, api_name=f"{prefix}transcribe_heldout"
    )
