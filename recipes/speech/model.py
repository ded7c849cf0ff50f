"""The model: waveform in, per-frame character log-probabilities out (DeepSpeech2-style).

    waveform float32[batch, samples] at cfg.sample_rate, zero-padded on the right;
    length int32[batch], the real samples of each
      -> LogMel            log mel energies (keras.layers.MelSpectrogram, Hann windows of
                           frame_ms every hop_ms), normalised per utterance and mel bin over
                           the real frames; padded frames are 0 and masked
      -> SpecAugment       frequency and time masks, training only
      -> Conv2D(filters, 11x11, stride time_stride x 2) -> BN -> ReLU
         Conv2D(filters, 11x5, stride 1x2) -> BN -> ReLU      (20 ms a frame by default)
      -> [Bidirectional(common recurrent layer, cell, units) -> Dropout] x layers, masked
      -> Dense(alphabet + 1) -> CTCLogProbs   log-softmax; the CTC blank is id 0; a padded
                           frame is a certain blank, so the CTC loss and the decoders can
                           run over the whole padded length and get what they would get
                           over the real frames alone
    log_probs float32[batch, frames, alphabet + 1]

The features are computed inside the model, so an exported model takes raw waveforms.
"""

from __future__ import annotations

import keras

from common.layers import recurrent_layer
from recipes.speech import config as config_lib
from recipes.speech.config import Config

PACKAGE = "recipes.speech.model"
BLANK = 0


@keras.saving.register_keras_serializable(package=PACKAGE)
class LogMel(keras.layers.Layer):
    """(waveform float32[batch, samples], length int[batch]) ->
    (features float32[batch, frames, mel_bins], mask bool[batch, frames]).

    frames = 1 + samples // hop_length (centred windows); a waveform of `length` real
    samples has 1 + length // hop_length real frames. Features are log(mel power + 1e-6),
    normalised to zero mean and unit variance per mel bin over the real frames of each
    utterance (loudness and microphone drop out), and 0 at padded frames.
    """

    def __init__(self, sample_rate, mel_bins, frame_length, hop_length, fft_length, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate, self.mel_bins = int(sample_rate), int(mel_bins)
        self.frame_length, self.hop_length = int(frame_length), int(hop_length)
        self.fft_length = int(fft_length)
        self.mel = keras.layers.MelSpectrogram(
            fft_length=self.fft_length,
            sequence_stride=self.hop_length,
            sequence_length=self.frame_length,
            window="hann",
            sampling_rate=self.sample_rate,
            num_mel_bins=self.mel_bins,
            min_freq=20.0,
            max_freq=self.sample_rate / 2,
            power_to_db=False,
            mag_exp=2.0,
            dtype="float32",
        )

    def build(self, input_shape):
        self.mel.build(input_shape[0])

    def call(self, inputs):
        ops = keras.ops
        waveform, length = inputs
        waveform = ops.cast(waveform, "float32")
        # Centred windows reflect fft_length // 2 samples at each end: pad very short
        # recordings with silence first (the mask below still counts their real frames).
        short = ops.maximum(self.fft_length + 1 - ops.shape(waveform)[1], 0)
        waveform = ops.pad(waveform, [[0, 0], [0, short]])
        power = ops.transpose(self.mel(waveform), (0, 2, 1))
        features = ops.log(power + 1e-6)
        frames = ops.shape(features)[1]
        real = 1 + ops.cast(length, "int32") // self.hop_length
        real = ops.minimum(real, 1 + (ops.shape(waveform)[1] - short) // self.hop_length)
        mask = ops.expand_dims(ops.arange(frames), 0) < ops.expand_dims(real, 1)
        weight = ops.expand_dims(ops.cast(mask, "float32"), -1)
        count = ops.maximum(ops.sum(weight, axis=1, keepdims=True), 1.0)
        mean = ops.sum(features * weight, axis=1, keepdims=True) / count
        variance = ops.sum(ops.square(features - mean) * weight, axis=1, keepdims=True) / count
        return (features - mean) * ops.rsqrt(variance + 1e-5) * weight, mask

    def compute_output_shape(self, input_shape):
        batch, samples = input_shape[0]
        frames = (
            None if samples is None else 1 + max(samples, self.fft_length + 1) // self.hop_length
        )
        return (batch, frames, self.mel_bins), (batch, frames)

    def get_config(self):
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "mel_bins": self.mel_bins,
            "frame_length": self.frame_length,
            "hop_length": self.hop_length,
            "fft_length": self.fft_length,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpecAugment(keras.layers.Layer):
    """Frequency and time masking (Park et al. 2019), while training only.

    Each utterance gets `freq_masks` bands of 0 to `freq_bins` mel bins and `time_masks`
    spans of 0 to `time_frames` frames, at uniform positions, set to 0 (the normalised
    mean). At inference it is the identity.
    """

    def __init__(
        self, freq_masks=2, freq_bins=10, time_masks=2, time_frames=25, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.freq_masks, self.freq_bins = int(freq_masks), int(freq_bins)
        self.time_masks, self.time_frames = int(time_masks), int(time_frames)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def _masks(self, batch, size, count, widest):
        ops = keras.ops
        keep = ops.ones((batch, size), dtype="bool")
        positions = ops.expand_dims(ops.arange(size), 0)
        for _ in range(count):
            width = keras.random.randint((batch, 1), 0, widest + 1, seed=self.generator)
            width = ops.minimum(width, size)
            room = ops.cast(size - width + 1, "float32")
            start = ops.cast(keras.random.uniform((batch, 1), seed=self.generator) * room, "int32")
            keep = keep & ~((positions >= start) & (positions < start + width))
        return keep

    def call(self, features, training=None):
        if not training:
            return features
        ops = keras.ops
        batch, frames, bins = ops.shape(features)[0], ops.shape(features)[1], ops.shape(features)[2]
        keep = ops.expand_dims(self._masks(batch, bins, self.freq_masks, self.freq_bins), 1)
        keep = keep & ops.expand_dims(
            self._masks(batch, frames, self.time_masks, self.time_frames), 2
        )
        return ops.where(keep, features, ops.zeros_like(features))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "freq_masks": self.freq_masks,
            "freq_bins": self.freq_bins,
            "time_masks": self.time_masks,
            "time_frames": self.time_frames,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvFrontEnd(keras.layers.Layer):
    """(features [batch, frames, bins], mask [batch, frames]) -> (float32[batch,
    ceil(frames / stride), ceil(bins / 4) * filters], mask [batch, ceil(frames / stride)]).

    Two Conv2D over (time, frequency), each with batch normalisation and ReLU; the first
    strides `stride` frames and halves frequency, the second halves frequency. Outputs at
    padded frames are 0.
    """

    def __init__(self, filters=32, stride=2, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.stride = int(filters), int(stride)
        layers = keras.layers
        self.conv1 = layers.Conv2D(
            filters,
            (11, 11),
            strides=(self.stride, 2),
            padding="same",
            use_bias=False,
            name="conv_1",
        )
        self.norm1 = layers.BatchNormalization(name="norm_1")
        self.conv2 = layers.Conv2D(
            filters, (11, 5), strides=(1, 2), padding="same", use_bias=False, name="conv_2"
        )
        self.norm2 = layers.BatchNormalization(name="norm_2")

    def build(self, input_shape):
        batch, frames, bins = input_shape[0]
        shape = (batch, frames, bins, 1)
        for layer in (self.conv1, self.norm1, self.conv2, self.norm2):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=None):
        ops = keras.ops
        features, mask = inputs
        mask = mask[:, :: self.stride]
        keep = ops.reshape(ops.cast(mask, features.dtype), (ops.shape(mask)[0], -1, 1, 1))
        x = ops.expand_dims(features, -1)
        x = ops.relu(self.norm1(self.conv1(x), training=training)) * keep
        x = ops.relu(self.norm2(self.conv2(x), training=training)) * keep
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], x.shape[2] * self.filters)), mask

    def compute_output_shape(self, input_shape):
        batch, frames, bins = input_shape[0]
        frames = None if frames is None else -(-frames // self.stride)
        return (batch, frames, -(-bins // 4) * self.filters), (batch, frames)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "stride": self.stride}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CTCLogProbs(keras.layers.Layer):
    """(logits [batch, frames, classes], mask [batch, frames]) -> log-softmax, with every
    padded frame a certain blank (log-probability 0 for id 0, -1e4 for the others). The
    mask ends here: the loss runs over every frame."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, inputs):
        ops = keras.ops
        logits, mask = inputs
        log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        classes = ops.shape(log_probs)[-1]
        blank = ops.where(ops.arange(classes) == BLANK, 0.0, -1e4)
        return ops.where(ops.expand_dims(mask, -1), log_probs, blank)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
def ctc_loss(labels, log_probs):
    """CTC loss per utterance: `labels` int[batch, max_label] padded with 0 (ids start at 1),
    over all frames of `log_probs` (padded frames are certain blanks)."""
    ops = keras.ops
    labels = ops.cast(labels, "int32")
    frames = ops.full((ops.shape(log_probs)[0],), ops.shape(log_probs)[1], dtype="int32")
    if keras.backend.backend() == "tensorflow":
        return _sparse_ctc_loss(labels, log_probs, frames)
    label_length = ops.sum(ops.cast(labels > 0, "int32"), axis=-1)
    return ops.ctc_loss(labels, log_probs, label_length, frames, mask_index=BLANK)


def _sparse_ctc_loss(labels, log_probs, frames):
    """TensorFlow's CTC kernel, which takes the labels as a SparseTensor. With dense labels
    (what `keras.ops.ctc_loss` passes) `tf.nn.ctc_loss` runs its forward-backward as a scan
    of small ops over the frames instead: on 2 CPU cores 0.9 s of a 1.5 s training step
    (batches of 8 x 10 s), against about 0.05 s here. The kernel wants the blank last, so
    the classes are rotated by one. An utterance with more characters than its frames can
    align costs 0 instead of an error (`train` leaves such utterances out of training)."""
    import tensorflow as tf

    labels = tf.sparse.from_dense(labels)  # drops the 0 padding (ids start at 1)
    labels = tf.SparseTensor(labels.indices, labels.values - 1, labels.dense_shape)
    rotated = tf.concat([log_probs[..., BLANK + 1 :], log_probs[..., : BLANK + 1]], axis=-1)
    return tf.compat.v1.nn.ctc_loss(
        labels,
        rotated,
        frames,
        ignore_longer_outputs_than_inputs=True,
        time_major=False,
    )


def build_model(cfg: Config, alphabet_size: int, seed: int | None = None) -> keras.Model:
    """The acoustic model over `alphabet_size` characters plus the blank."""
    waveform = keras.Input((None,), name="waveform")
    length = keras.Input((), dtype="int32", name="length")
    features, mask = LogMel(
        cfg.sample_rate,
        cfg.mel_bins,
        config_lib.frame_length(cfg),
        config_lib.hop_length(cfg),
        config_lib.fft_length(cfg),
        name="log_mel",
    )((waveform, length))
    features = SpecAugment(
        cfg.freq_masks,
        cfg.freq_mask_bins,
        cfg.time_masks,
        cfg.time_mask_frames,
        seed=seed,
        name="spec_augment",
    )(features)
    x, mask = ConvFrontEnd(cfg.conv_filters, cfg.time_stride, name="conv")((features, mask))
    for i in range(cfg.layers):
        layer = recurrent_layer(
            cfg.cell, cfg.units, return_sequences=True, name=f"{cfg.cell.replace('-', '_')}_{i}"
        )
        x = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")(x, mask=mask)
        if cfg.dropout:
            x = keras.layers.Dropout(
                cfg.dropout, noise_shape=(None, 1, x.shape[-1]), name=f"dropout_{i}"
            )(x)
    logits = keras.layers.Dense(alphabet_size + 1, dtype="float32", name="logits")(x)
    log_probs = CTCLogProbs(name="log_probs")((logits, mask))
    return keras.Model({"waveform": waveform, "length": length}, log_probs, name="speech_ctc")
