"""The network: DanQ (Quang & Xie 2016) and its DeepBind-like CNN baseline.

    sequence: string[batch]                 raw DNA, any case, IUPAC codes
      -> OneHotAlphabet (common)            float[batch, time, 4] + mask; N = 0.25 each,
                                            right-padded to `length` (the longest
                                            training sequence), longer ones cut there
      -> Strands                            --strands augment/average: training reads
                                            each sequence from a random strand; with
                                            average, prediction reads both
      -> ConvFeatures (common)              Conv1D(filters, kernel, relu): the motif
                                            scanners; padded steps kept at 0; max-pooled
                                            over time by `scanner_pool` (3, more for
                                            sequences longer than 102 bp)
      -> Dropout(0.4 x dropout)
      -> danq: Bidirectional(recurrent) x layers, every step's output, flattened
                                            (the motifs' order and place: DanQ's grammar)
         cnn:  maximum over time            (where a motif is found is lost: DeepBind)
      -> Dropout -> Dense(dense, relu) -> Dense(classes)
                                            softmax, or sigmoid per mark (--multi-label)
      -> StrandAverage                      average: the mean of the two strands

The scanners of the first convolution are what `motifs` turns into position weight
matrices; `explain` mutates the input string.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from common.layers import ConvFeatures, recurrent_layer
from common.tokenization import OneHotAlphabet
from recipes.dna import data as dna_data
from recipes.dna.config import Config

ONE_HOT_LAYER = "one_hot"
SCANNER_LAYER = "scanners"
FIXED_LENGTH_LAYER = "fixed_length"


@keras.saving.register_keras_serializable(package="recipes.dna.model")
class FixedLength(keras.layers.Layer):
    """(x float[batch, time, depth], mask bool[batch, time]) -> the same, right-padded
    with zeros (mask false) or cut to exactly `length` steps."""

    def __init__(self, length: int, **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)

    def call(self, x, mask):
        extra = tf.maximum(self.length - tf.shape(x)[1], 0)
        x = tf.pad(x, [[0, 0], [0, extra], [0, 0]])[:, : self.length]
        mask = tf.pad(mask, [[0, 0], [0, extra]])[:, : self.length]
        x = tf.ensure_shape(x, [None, self.length, x.shape[-1]])
        return x, tf.ensure_shape(mask, [None, self.length])

    def compute_output_spec(self, x, mask):
        return (
            keras.KerasTensor((x.shape[0], self.length, x.shape[-1]), x.dtype),
            keras.KerasTensor((x.shape[0], self.length), "bool"),
        )

    def get_config(self):
        return {**super().get_config(), "length": self.length}


def reverse_complement_one_hot(x, mask):
    """The one-hot (A, C, G, T order) of each sequence's reverse complement: the real
    steps reversed in place (padding stays on the right), the channels reversed (A<->T,
    C<->G)."""
    lengths = tf.reduce_sum(tf.cast(mask, tf.int64), axis=1)
    return tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)[..., ::-1]


@keras.saving.register_keras_serializable(package="recipes.dna.model")
class Strands(keras.layers.Layer):
    """Reverse-complement handling. Training ("augment" or "average"): each sequence is
    replaced by its reverse complement with probability 1/2. Prediction with "average": the
    batch is doubled, the reverse complements after the sequences (`StrandAverage` takes
    the mean of the two halves). "off": the identity."""

    def __init__(self, mode: str = "off", seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.mode, self.seed = mode, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, mask, training=False):
        if self.mode == "off":
            return x, mask
        reverse = reverse_complement_one_hot(x, mask)
        if training:
            flip = keras.random.uniform((tf.shape(x)[0],), seed=self.seed_generator) < 0.5
            return tf.where(flip[:, None, None], reverse, x), mask
        if self.mode == "average":
            return tf.concat([x, reverse], 0), tf.concat([mask, mask], 0)
        return x, mask

    def compute_output_spec(self, x, mask, training=False):
        return keras.KerasTensor(x.shape, x.dtype), keras.KerasTensor(mask.shape, "bool")

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "seed": self.seed}


@keras.saving.register_keras_serializable(package="recipes.dna.model")
class StrandAverage(keras.layers.Layer):
    """Prediction with --strands average: the mean of the two halves of the batch that
    `Strands` doubled (the sequences', their reverse complements'); else the identity."""

    def __init__(self, mode: str = "off", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, p, training=False):
        if training or self.mode != "average":
            return p
        half = tf.shape(p)[0] // 2
        return (p[:half] + p[half:]) / 2

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="recipes.dna.model")
class ZeroPadded(keras.layers.Layer):
    """The steps past each sequence's end set to 0, and the mask dropped (`Flatten` takes
    no mask): float[batch, time, features] with its Keras mask -> the same, unmasked."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        return x if mask is None else x * tf.cast(mask, x.dtype)[..., None]

    def compute_mask(self, x, mask=None):
        return None

    def compute_output_shape(self, shape):
        return shape


@keras.saving.register_keras_serializable(package="recipes.dna.model")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of softmax probabilities against integer labels smoothed towards the
    uniform distribution: the target is 1 - `label_smoothing` + `label_smoothing` / classes
    for the true class and `label_smoothing` / classes for each other (Szegedy et al.
    2016). Keras's sparse cross-entropy has no smoothing, its categorical one wants one-hot
    labels."""

    def __init__(self, label_smoothing=0.0, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        ops = keras.ops
        classes = ops.shape(y_pred)[-1]
        target = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), classes)
        target = target * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        log_p = ops.log(ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0))
        return -ops.sum(target * log_p, axis=-1)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def loss(cfg: Config, multi_label: bool) -> keras.losses.Loss:
    """The training loss: cross-entropy, per mark with `multi_label`, its labels smoothed
    by `cfg.label_smoothing`."""
    if multi_label:
        return keras.losses.BinaryCrossentropy(label_smoothing=cfg.label_smoothing)
    return SmoothedSparseCrossentropy(cfg.label_smoothing)


def scanner_pool(cfg: Config, length: int) -> int:
    """The max-pooling after the scanners for sequences of up to `length` letters:
    `cfg.conv_pool`, or more where that would leave the recurrent layer more than
    `cfg.recurrent_steps` steps (200 bp: 6; DanQ pools its 1,000 bp by 13)."""
    if cfg.recurrent_steps is None:
        return cfg.conv_pool
    return max(cfg.conv_pool, -(-int(length) // cfg.recurrent_steps))


def build_model(
    cfg: Config, *, classes: int, length: int, multi_label: bool = False, seed: int = 0
) -> keras.Model:
    """`cfg.model` ("danq" or "cnn") over sequences of up to `length` letters."""
    sequence = keras.Input(shape=(), dtype="string", name="sequence")
    x, mask = OneHotAlphabet(dna_data.one_hot_table(), name=ONE_HOT_LAYER)(sequence)
    x, mask = FixedLength(length, name=FIXED_LENGTH_LAYER)(x, mask)
    x, mask = Strands(cfg.strands, seed=seed, name="strands")(x, mask)
    x, mask = ConvFeatures(
        cfg.conv_filters,
        cfg.conv_kernel,
        layers=1,
        pool=scanner_pool(cfg, length),
        name=SCANNER_LAYER,
    )((x, mask))
    x = keras.layers.Dropout(0.4 * cfg.dropout, name="scanner_dropout")(x)
    if cfg.model == "danq":
        for i in range(cfg.layers):
            layer = recurrent_layer(cfg.cell, cfg.units, return_sequences=True, name=f"rnn_{i}")
            x = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")(x, mask=mask)
        x = keras.layers.Flatten(name="flatten")(ZeroPadded(name="zero_padded")(x))
    else:  # padded steps are 0 and ReLU outputs >= 0, so this is the maximum over real ones
        x = keras.layers.GlobalMaxPooling1D(name="max_over_time")(x)
    x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    x = keras.layers.Dense(cfg.dense, activation="relu", name="hidden")(x)
    activation = "sigmoid" if multi_label else "softmax"
    p = keras.layers.Dense(classes, activation=activation, dtype="float32", name="probs")(x)
    p = StrandAverage(cfg.strands, name="strand_average")(p)
    return keras.Model(sequence, p, name=f"dna_{cfg.model}")
