"""`export`: the recogniser as a SavedModel (waveforms in, text out) or its acoustic model
as a LiteRT file.

SavedModel endpoint, everything of `transcribe` but the language model inside the graph:

    serve(waveform: float32[batch, samples], sample_rate: int32) -> {transcript: string[batch]}

The waveforms of one call share their length and their rate (mono, samples in [-1, 1]);
they are resampled to the model's rate (`data.resample`, as in training), run through the
model (log-mel features included) and decoded with the run's decoder: greedy, or CTC beam
search of the run's width (also for a run whose best decoder fused a language model: the
language model is a separate run and stays out). A recording is decoded in one pass, at
any length; `transcribe` cuts long ones into windows instead.

LiteRT (`--format litert`): the acoustic model at batch 1, `waveform float32[1, samples]`
(at the model's rate, `samples` fixed to the longest training utterance, zero-padded by
the caller) -> `log_probs float32[1, frames, alphabet + 1]`; decoding stays with the caller.
"""

from __future__ import annotations

from pathlib import Path

from recipes.speech.transcribe import ModelInfo


def _load(model_dir: Path):
    from common import runtime

    return runtime.load_model(model_dir), ModelInfo.read(model_dir)


def archive(model_dir: Path):
    """A `keras.export.ExportArchive` with the `serve` endpoint."""
    import keras
    import tensorflow as tf

    from common.export import generic_loops
    from recipes.speech.data import resample
    from recipes.speech.model import BLANK

    model, info = _load(model_dir)
    generic_loops(model)
    alphabet = tf.constant(["", *info.alphabet])  # id 0 is the blank

    def serve(waveform, sample_rate):
        tf.debugging.assert_positive(sample_rate, message="sample_rate must be positive")
        waveform = resample(waveform, sample_rate, info.sample_rate)
        batch, samples = tf.shape(waveform)[0], tf.shape(waveform)[1]
        # Zero-padded to whole seconds with the real length given, as `transcribe` feeds
        # the model (transcribe.batch_inputs): the features of the last frames, and so the
        # per-utterance normalisation, then match it exactly.
        bucket = info.sample_rate
        waveform = tf.pad(waveform, [[0, 0], [0, (-samples) % bucket]])
        log_probs = model(
            {"waveform": waveform, "length": tf.fill([batch], samples)}, training=False
        )
        frames = tf.fill([batch], tf.shape(log_probs)[1])
        strategy = "greedy" if info.decoder == "greedy" else "beam_search"
        decoded, _ = keras.ops.ctc_decode(
            log_probs, frames, strategy=strategy, beam_width=info.beam_width, mask_index=BLANK
        )
        ids = tf.maximum(decoded[0], 0)  # -1 pads the rows
        return {"transcript": tf.strings.reduce_join(tf.gather(alphabet, ids), axis=-1)}

    export = keras.export.ExportArchive()
    export.track(model)
    export.add_endpoint(
        "serve",
        serve,
        input_signature=[
            tf.TensorSpec([None, None], tf.float32, name="waveform"),
            tf.TensorSpec([], tf.int32, name="sample_rate"),
        ],
    )
    return export


def litert(model_dir: Path) -> bytes:
    import keras

    from common.export import generic_loops, litert_bytes

    model, info = _load(model_dir)
    generic_loops(model)
    samples = int(info.window_seconds * info.sample_rate)
    waveform = keras.Input(batch_shape=(1, samples), name="waveform")
    length = keras.ops.full((1,), samples, dtype="int32")
    outputs = model({"waveform": waveform, "length": length})
    return litert_bytes(keras.Model(waveform, outputs, name="speech_acoustic_model"))
