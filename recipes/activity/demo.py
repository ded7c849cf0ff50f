"""The activity tab of the demo page: a recording (uploaded, or one of the run's held-out
ones) -> its activity with every class's mean window probability, and the timeline of its
window predictions as a picture and as the `predict` verb's segments. See `common.demo`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from common import demo
from recipes.activity.config import HELDOUT_FILE

TITLE = "Activity"
SEGMENT_HEADERS = ["start", "end", "activity", "windows", "probability"]
NO_INPUT = "--input: no recording given; upload one or pick a held-out one"


def heldout_recordings(model_dir: Path) -> list[str]:
    """The run's held-out recordings, as `<class>/<file>` paths under `heldout/`."""
    from recipes.activity.data import RECORDING_SUFFIXES

    return demo.heldout_files(Path(model_dir) / HELDOUT_FILE, RECORDING_SUFFIXES)


def label_file(activity: str, probabilities: dict[str, float]) -> str:
    """A `gr.Label` value whose label is the voted `activity` (which need not be the class
    of the highest mean probability): a JSON file of the label and its confidences."""
    ranked = sorted(probabilities.items(), key=lambda kv: -kv[1])
    value = {"label": activity, "confidences": [{"label": k, "confidence": v} for k, v in ranked]}
    with tempfile.NamedTemporaryFile(
        "w", suffix=".json", dir=demo.scratch_dir("activity"), delete=False
    ) as out:
        json.dump(value, out)
    return out.name


def timeline_figure(result: dict, values, sample_rate: float | None, class_names):
    """The recording's channels over time above its windows' predicted classes: a bar per
    segment of windows with the same prediction, darker where the model is surer."""
    import numpy as np
    from matplotlib.figure import Figure

    scale = 1.0 / sample_rate if sample_rate else 1.0
    unit = "seconds" if sample_rate else "samples"
    figure = Figure(figsize=(9, 2.2 + 0.3 * len(class_names)), layout="constrained")
    signal, timeline = figure.subplots(
        2, 1, sharex=True, height_ratios=[2, max(len(class_names), 2) * 0.5]
    )
    t = np.arange(len(values)) * scale
    for channel in range(values.shape[1]):
        signal.plot(t, values[:, channel], linewidth=0.7)
    signal.set_ylabel("channels")
    signal.set_title(f"{result['activity']} (majority vote of {len(result['windows'])} windows)")
    for segment in result["segments"]:
        row = class_names.index(segment["activity"])
        start, width = segment["start"] * scale, (segment["end"] - segment["start"]) * scale
        timeline.broken_barh(
            [(start, width)],
            (row - 0.4, 0.8),
            facecolors="tab:blue",
            alpha=0.25 + 0.75 * segment["probability"],
        )
    timeline.set_yticks(range(len(class_names)), class_names)
    timeline.set_ylim(-0.6, len(class_names) - 0.4)
    timeline.invert_yaxis()
    timeline.set_xlabel(unit)
    timeline.set_xlim(0, max(len(values), 1) * scale)
    return figure


def build(model_dir: Path, prefix: str = "") -> None:
    gr = demo.gradio()
    heldout_dir = Path(model_dir) / HELDOUT_FILE
    heldout = heldout_recordings(model_dir)

    run = demo.cached_run(model_dir, "recipes.activity.predict")

    def answer(path: Path):
        from recipes.activity import data as sensor_data
        from recipes.activity import predict

        model, info = run()
        result = predict.predict_file(model, info, path)
        values = sensor_data.read_recording(path)[0]
        total = sum(result["votes"].values())
        summary = (
            f"**{result['activity']}** ({result['votes'][result['activity']]} of {total} "
            f"windows; {result['samples']} samples)"
        )
        segments = [
            [s["start"], s["end"], s["activity"], s["windows"], round(s["probability"], 4)]
            for s in result["segments"]
        ]
        figure = timeline_figure(result, values, info.sample_rate, list(info.class_names))
        return label_file(result["activity"], result["probabilities"]), summary, figure, segments

    predict_upload, predict_heldout = demo.file_handlers(answer, heldout_dir, NO_INPUT)

    gr.Markdown(
        f"Run: `{model_dir}`. A recording is a text file of one sample per line, channels "
        "separated by commas or whitespace (an optional header line of channel names), as "
        "`predict --input` reads it. Its activity is the majority vote of its windows."
    )
    with gr.Row():
        with gr.Column():
            recording = gr.File(label="Recording", type="filepath")
            button = gr.Button("Predict", variant="primary")
            chosen = gr.Dropdown(
                heldout, value=None, label="Or a held-out recording of the run (class/file)"
            )
        with gr.Column():
            summary = gr.Markdown()
            label = gr.Label(label="Activity and mean window probabilities")
    figure = gr.Plot(label="Timeline of the window predictions", format="png")
    segments = gr.Dataframe(
        headers=SEGMENT_HEADERS,
        label="Segments (runs of windows with the same prediction; start and end in samples)",
        interactive=False,
    )
    outputs = [label, summary, figure, segments]
    button.click(predict_upload, recording, outputs, api_name=f"{prefix}predict")
    recording.upload(predict_upload, recording, outputs, api_name=False)
    chosen.input(predict_heldout, chosen, outputs, api_name=f"{prefix}predict_heldout")
