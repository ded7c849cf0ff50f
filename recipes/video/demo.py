"""The video tab of the demo page: a clip (uploaded, or one of the run's held-out ones) ->
the clip as the model sees it (its frames at the model's size, as an animated GIF) and its
activity with every class's probability (the `predict` verb). See `common.demo`."""

from __future__ import annotations

import hashlib
from pathlib import Path

from common import demo
from recipes.video.config import HELDOUT_FILE

TITLE = "Video"
NO_INPUT = "--input: no clip given; upload one or pick a held-out one"
SHOWN_SIZE = 192  # pixels: the frames are enlarged by a whole factor to about this size


def heldout_clips(model_dir: Path) -> list[str]:
    """The run's held-out clips, as `<class>/<file>` paths under `heldout/`."""
    from recipes.video.data import CLIP_SUFFIXES

    return demo.heldout_files(Path(model_dir) / HELDOUT_FILE, CLIP_SUFFIXES)


def animation(clip) -> str:
    """uint8[frames, size, size, channels] as an enlarged animated GIF; its path (one file
    per distinct clip)."""
    from recipes.video import data as video_data

    scale = max(SHOWN_SIZE // clip.shape[1], 1)
    path = (
        demo.scratch_dir("video")
        / f"{hashlib.sha1(clip.tobytes() + bytes(clip.shape)).hexdigest()}.gif"
    )
    if not path.is_file():
        video_data.write_gif(clip, path, scale=scale)
    return str(path)


def build(model_dir: Path, prefix: str = "") -> None:
    gr = demo.gradio()
    heldout_dir = Path(model_dir) / HELDOUT_FILE
    heldout = heldout_clips(model_dir)

    run = demo.cached_run(model_dir, "recipes.video.predict")

    def answer(path: Path):
        from recipes.video import data as video_data
        from recipes.video import predict

        model, info = run()
        result = predict.predict_file(model, info, path)
        clip = video_data.load_clip(path, info.frames, info.frame_size, info.channels)
        return animation(clip), result["probabilities"]

    predict_upload, predict_heldout = demo.file_handlers(answer, heldout_dir, NO_INPUT)

    gr.Markdown(
        f"Run: `{model_dir}`. A clip is an animated `.gif` or a `.npy` array uint8[frames, "
        "height, width(, 1 or 3)], as `predict --input` reads it; it is brought to the "
        "model's frames and size, which the animation shows."
    )
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="Clip (.gif or .npy)", type="filepath")
            button = gr.Button("Predict", variant="primary")
            chosen = gr.Dropdown(
                heldout, value=None, label="Or a held-out clip of the run (class/file)"
            )
        shown = gr.Image(label="The clip as the model sees it", type="filepath")
        label = gr.Label(label="Activity and probabilities")
    outputs = [shown, label]
    button.click(predict_upload, upload, outputs, api_name=f"{prefix}predict")
    upload.upload(predict_upload, upload, outputs, api_name=False)
    chosen.input(predict_heldout, chosen, outputs, api_name=f"{prefix}predict_heldout")
