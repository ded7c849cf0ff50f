"""Inference: log-probabilities of recordings, decoding, long recordings, `evaluate`.

A run directory's `speech.json` (`ModelInfo`) holds what inference needs besides the
model: the alphabet, the sample rate, the longest utterance the model was trained on
(recordings longer than that are cut into overlapping windows) and the decoder with its
beam width and, when a language model was fused, its run directory, weight and bonus.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common import data as common_data
from common import runtime
from common.errors import UserError
from recipes.speech import config as config_lib
from recipes.speech import data as speech_data
from recipes.speech import decode as decode_lib
from recipes.speech.config import HELDOUT_FILE, VALIDATION_FILE

INFO_FILE = "speech.json"
# Overlap of the windows a long recording is cut into; each window keeps the frames of
# its middle, so every frame is decoded with at least OVERLAP_SECONDS / 2 of context.
OVERLAP_SECONDS = 2.0


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    alphabet: tuple[str, ...]
    sample_rate: int
    hop_length: int
    time_stride: int
    window_seconds: float
    decoder: str = "beam"
    beam_width: int = 16
    lm_dir: str | None = None  # absolute, or relative to the run directory (RUN/lm)
    lm_weight: float = 0.0
    lm_bonus: float = 0.0

    @classmethod
    def read(cls, model_dir) -> ModelInfo:
        info = runtime.RunDir(model_dir).read_dataclass(INFO_FILE, cls)
        return dataclasses.replace(info, alphabet=tuple(info.alphabet))

    def language_model_dir(self, model_dir) -> Path | None:
        """The run's language model: `lm_dir` as stored (absolute), or relative to the run
        directory `model_dir` (a --train-lm run's RUN/lm)."""
        return Path(model_dir) / self.lm_dir if self.lm_dir else None

    def relative_to(self, model_dir) -> ModelInfo:
        """This info with `lm_dir` relative to the run directory `model_dir` when the
        language model is inside it (--train-lm's RUN/lm), so that the run can be moved or
        copied whole; `language_model_dir` reads it back."""
        inside = Path(model_dir).resolve()
        if not self.lm_dir or not Path(self.lm_dir).resolve().is_relative_to(inside):
            return self
        return dataclasses.replace(
            self, lm_dir=str(Path(self.lm_dir).resolve().relative_to(inside))
        )

    @property
    def fusion(self) -> decode_lib.Fusion:
        return decode_lib.Fusion(self.lm_weight, self.lm_bonus)

    def frames(self, samples: int) -> int:
        """Output frames of a recording of `samples` samples (see model.LogMel)."""
        return config_lib.output_frames(self.hop_length, self.time_stride, samples)


def info_for(cfg: config_lib.Config, alphabet, window_seconds: float) -> ModelInfo:
    return ModelInfo(
        alphabet=tuple(alphabet),
        sample_rate=cfg.sample_rate,
        hop_length=config_lib.hop_length(cfg),
        time_stride=cfg.time_stride,
        window_seconds=float(window_seconds),
        beam_width=cfg.beam_width,
    )


def batch_inputs(waves: Sequence[np.ndarray], bucket: int) -> dict[str, np.ndarray]:
    """The model's inputs: the waveforms zero-padded to a multiple of `bucket` samples
    (the recurrent fast path compiles once per length, so lengths come in few sizes),
    and their real lengths."""
    longest = -(-max(len(w) for w in waves) // bucket) * bucket
    batch = np.zeros((len(waves), longest), np.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return {"waveform": batch, "length": np.array([len(w) for w in waves], np.int32)}


_INFERENCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _inference(model):
    """The model's forward pass as one tf.function for every batch shape (no retracing
    per length; the recurrent fast path compiles once per length bucket)."""
    import tensorflow as tf

    if model not in _INFERENCE:
        _INFERENCE[model] = tf.function(
            lambda inputs: model(inputs, training=False), reduce_retracing=True
        )
    return _INFERENCE[model]


def log_probs(model, waves: Sequence[np.ndarray], info: ModelInfo, batch_size: int = 16):
    """The model's log-probabilities of each waveform, trimmed to its real frames:
    a list of float32[frames_i, alphabet + 1]. Batches group similar lengths."""
    order = np.argsort([len(w) for w in waves], kind="stable")
    out: list[np.ndarray | None] = [None] * len(waves)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        inputs = batch_inputs([waves[i] for i in chosen], info.sample_rate)
        batch = np.asarray(_inference(model)(inputs))
        for row, i in enumerate(chosen):
            out[i] = batch[row, : info.frames(len(waves[i]))]
    return out


def long_log_probs(model, wave: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Log-probabilities of a recording of any length: recordings longer than the
    training utterances are cut into windows overlapping by OVERLAP_SECONDS, and each
    window contributes the frames of its middle."""
    frame = info.time_stride * info.hop_length  # samples per output frame
    window = max(int(info.window_seconds * info.sample_rate) // frame, 1) * frame
    overlap = min(int(OVERLAP_SECONDS * info.sample_rate), window // 2) // frame * frame
    if len(wave) <= window:
        return log_probs(model, [wave], info)[0]
    step = window - overlap
    starts = list(range(0, len(wave) - overlap, step))
    pieces = log_probs(model, [wave[s : s + window] for s in starts], info)
    kept = []
    for k, piece in enumerate(pieces):
        first = 0 if k == 0 else overlap // frame // 2
        last = len(piece) if k == len(starts) - 1 else (window - overlap + overlap // 2) // frame
        kept.append(piece[first:last])
    return np.concatenate(kept)


class Recognizer:
    """A trained run's model and decoder: waveforms in, text out."""

    def __init__(self, model_dir, decoder: str | None = None, lm_dir=None, beam_width=None):
        self.info = ModelInfo.read(model_dir)
        self.model = runtime.load_model(model_dir)
        self.decoder = decoder or self.info.decoder
        self.beam_width = beam_width or self.info.beam_width
        if lm_dir is None and self.decoder == "lm":
            lm_dir = self.info.language_model_dir(model_dir)
        if self.decoder == "lm" and not lm_dir:
            raise UserError(
                f"{model_dir}: the lm decoder needs --lm-dir (the run has no language model)"
            )
        self.lm = decode_lib.CharLM(lm_dir, self.info.alphabet) if lm_dir else None

    def texts(self, all_log_probs, fusion: decode_lib.Fusion | None = None) -> list[str]:
        texts = []
        for lp in all_log_probs:
            ids = decode_lib.decode_batch(
                lp[None], self.decoder, self.beam_width, self.lm, fusion or self.info.fusion
            )[0]
            texts.append(speech_data.decode(ids, self.info.alphabet))
            if self.lm is not None:
                self.lm.clear()  # its prefixes are this utterance's
        return texts

    def transcribe(self, wave: np.ndarray) -> str:
        return self.texts([long_log_probs(self.model, wave, self.info)])[0]


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus CER and WER (jiwer), as fractions; an empty hypothesis is all deletions."""
    import jiwer

    hypotheses = [h if h.strip() else "" for h in hypotheses]
    return {
        "cer": float(jiwer.cer(list(references), hypotheses)),
        "wer": float(jiwer.wer(list(references), hypotheses)),
    }


def baseline_row(train_transcripts: Sequence[str], references: Sequence[str]) -> dict:
    """The trivial baseline's row of a decoder table: always the most frequent training
    transcript."""
    answer = speech_data.most_frequent(train_transcripts)
    return {
        "decoder": f"baseline: always {answer!r}",
        **error_rates(references, [answer] * len(references)),
    }


def worst(references, hypotheses, paths, count: int = 5) -> list[dict]:
    """The `count` utterances with the highest character error rate."""
    import jiwer

    rows = [
        {"path": p, "cer": float(jiwer.cer(r, h)), "reference": r, "hypothesis": h}
        for r, h, p in zip(references, hypotheses, paths, strict=True)
    ]
    return sorted(rows, key=lambda row: -row["cer"])[:count]


def _read_manifest(spec: str, rate: int, what: str):
    utterances = speech_data.read_source(common_data.resolve(spec), split="test")
    return utterances, speech_data.load_audio(utterances, rate, what)


def tuned_fusion(recognizer: Recognizer, model_dir: Path) -> decode_lib.Fusion:
    """The run's fusion weights when its language model is the one given; else chosen on
    the run's validation utterances (the grid of `train.choose_fusion`)."""
    from recipes.speech import train as train_lib

    info = recognizer.info
    own = info.language_model_dir(model_dir)
    if own and own.resolve() == Path(recognizer.lm.model_dir).resolve():
        return info.fusion
    utterances, waves = _read_manifest(
        str(runtime.RunDir(model_dir).heldout(VALIDATION_FILE)), info.sample_rate, "validation"
    )
    utterances, waves = (
        utterances[: train_lib.LM_TUNING_UTTERANCES],
        waves[: train_lib.LM_TUNING_UTTERANCES],
    )
    fusion, _ = train_lib.choose_fusion(
        recognizer.lm,
        log_probs(recognizer.model, waves, info),
        [u.text for u in utterances],
        info.alphabet,
        recognizer.beam_width,
    )
    return fusion


def evaluate(
    model_dir: Path, data_spec: str | None, decoder=None, lm_dir=None, compare=False
) -> dict:
    """CER and WER of a run on --data (default: its held-out manifest). With `compare`,
    every decoder (the LM one with a language model) is scored, under "decoders"."""
    run_dir = runtime.RunDir(model_dir)
    spec = run_dir.evaluation_data(data_spec, HELDOUT_FILE)
    recognizer = Recognizer(model_dir, decoder, lm_dir)
    fusion = tuned_fusion(recognizer, model_dir) if recognizer.lm is not None else None
    utterances, waves = _read_manifest(spec, recognizer.info.sample_rate, "evaluation")
    all_log_probs = [long_log_probs(recognizer.model, w, recognizer.info) for w in waves]
    references = [u.text for u in utterances]
    result = {"data": str(common_data.resolve(spec)), "utterances": len(utterances)}
    chosen = recognizer.decoder
    decoded: dict[str, list[str]] = {}
    if compare:
        rows = []
        transcripts = run_dir.file("transcripts.txt")
        if transcripts.is_file():  # the trivial baseline, as `train` reports it
            rows.append(baseline_row(transcripts.read_text("utf-8").splitlines(), references))
        for name in config_lib.DECODERS:
            if name == "lm" and recognizer.lm is None:
                continue
            recognizer.decoder = name
            decoded[name] = recognizer.texts(all_log_probs, fusion)
            rows.append({"decoder": name, **error_rates(references, decoded[name])})
        result["decoders"] = rows
        recognizer.decoder = chosen
    if chosen in decoded:
        hypotheses = decoded[chosen]
    else:
        hypotheses = recognizer.texts(all_log_probs, fusion)
    result.update(decoder=recognizer.decoder, **error_rates(references, hypotheses))
    if fusion is not None:
        result.update(
            lm_dir=str(recognizer.lm.model_dir), lm_weight=fusion.weight, lm_bonus=fusion.bonus
        )
    result["worst"] = worst(references, hypotheses, [u.path for u in utterances])
    return result
