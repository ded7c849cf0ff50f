"""Encoder-decoder with attention, built from the `common` recurrent layers and cells.

    source ids [b, Tx]                          target_in ids [b, Ty] (<bos> y_1 .. y_n)
        |                                              |
    Embedding(mask_zero)                           Embedding
        |                                              |  y_{t-1}
    Bidirectional(recurrent_layer) x layers        decoder cell step, t = 1 .. Ty
        |  memory H [b, Tx, 2e], mask [b, Tx]    <----- attention over H (masked softmax)
        |  final states (forward, backward)            |
        +--> bridge Dense(tanh) --> s_0                features [b, Ty, f] -> Dense -> logits

Encoder: `common.layers.recurrent_layer(cfg.cell, ...)` inside `keras.layers.Bidirectional`,
so `--cell` picks the recurrent unit; padding is masked on the source side (the backward
direction skips the right padding), and the target side's padding is ignored by the loss
(`ignore_class=0`). Decoder: one `common` cell of the same kind, stepped by `keras.ops.scan`
during training (teacher forcing) and one step at a time by `decode_step` when translating,
so decoding carries the state and never re-runs the prefix. Attention (`attention=`):

- "bahdanau" (Bahdanau et al. 2015, additive): the previous state s_{t-1} queries the memory,
      e_tj = v . tanh(W s_{t-1} + U h_j),  a_t = softmax_j(e_t),  c_t = sum_j a_tj h_j
      s_t = cell([y_{t-1}; c_t], s_{t-1}),  features_t = [s_t; c_t; y_{t-1}]
- "luong" (Luong et al. 2015, "general" score with input feeding):
      s_t = cell([y_{t-1}; h~_{t-1}], s_{t-1}),  e_tj = s_t . W_a h_j / sqrt(d),  a_t = softmax_j(e_t),
      c_t = sum_j a_tj h_j,  h~_t = tanh(W_c [c_t; s_t]),  features_t = h~_t
- "luong-parallel" (Luong et al. 2015, "general" score, without input feeding): the decoder
  RNN reads the target alone, so teacher-forced training runs it as ONE recurrent-layer call
  over all target steps (the `common` LSTM/GRU fast path), then attends for all steps at once:
      s_1..s_Ty = RNN(y_0..y_{Ty-1}; s_0)   (decoder_layers stacked layers)
      e_tj = s_t . W_a h_j / sqrt(d),  a_t = softmax_j(e_t),  c_t = sum_j a_tj h_j,
      h~_t = tanh(W_c [c_t; s_t]),  features_t = h~_t
  Decoding steps the same layers' cells one token at a time (`decode_step`), with the same
  weights, so it gives the logits of the parallel pass (a test checks within 1e-5).
  The 1/sqrt(d) (d = decoder_units; `scaled_scores=True`, Vaswani et al. 2017's scaling) keeps
  the dot-product scores from saturating the softmax early in training. Unscaled, on Multi30k
  (d = 512) the largest score of a step averaged 76 to 211 after two epochs: the attention
  was one-hot, its gradient vanished, and the alignment it froze at depended on float
  rounding (one machine with its kernels forced to AVX2 or left at AVX-512: greedy BLEU 7.9
  or 10.7 after two epochs; after three, 14 on an AVX2 AMD machine and 23 on an AVX-512
  Intel one). Scaled: 24.4 (AVX2) and 26.1 (AVX-512) after two epochs. Models saved before
  the option existed load with `scaled_scores=False`, as they were trained.
- "none": the plain encoder-decoder (the bridge state is all the decoder gets),
      s_t = cell(y_{t-1}, s_{t-1}),  features_t = s_t

Padded source positions get exactly zero attention weight. The decoder carry is the tuple
`(*cell_states, features, attention)`: it holds what the next step needs (h~_{t-1} for
Luong's input feeding) and, stacked over time, what the training pass and the attention
plots read.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from common.cli import CELL_NAMES
from common.layers import make_cell, recurrent_layer
from common.metrics import TokenAccuracy
from recipes.translation.config import ATTENTIONS, check_decoder_layers


@keras.saving.register_keras_serializable(package="recipes.translation.model")
class Seq2Seq(keras.Model):
    """Bidirectional recurrent encoder, attentional recurrent decoder.

    `model((source, target_in))`: int[b, Tx], int[b, Ty] -> logits float32[b, Ty, vocab].
    For decoding: `encode(source)` once, then `decode_step(tokens, carry, memory)` per step.
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        cell="lstm",
        attention="bahdanau",
        embedding_dim=32,
        encoder_units=64,
        encoder_layers=1,
        decoder_units=128,
        dropout=0.0,
        decoder_layers=1,
        scaled_scores=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if cell not in CELL_NAMES:
            raise ValueError(f"cell must be one of {CELL_NAMES}. Received: cell={cell!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}. Received: {attention!r}")
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.cell_name = cell
        self.attention = attention
        self.embedding_dim = embedding_dim
        self.encoder_units = encoder_units
        self.num_encoder_layers = encoder_layers
        self.decoder_units = decoder_units
        self.decoder_layers = decoder_layers
        self.dropout_rate = dropout
        self.scaled_scores = bool(scaled_scores)
        check_decoder_layers(decoder_layers, attention)

        self.source_embedding = layers.Embedding(
            source_vocab_size, embedding_dim, mask_zero=True, name="source_embedding"
        )
        self.encoders = [
            layers.Bidirectional(
                recurrent_layer(
                    cell,
                    encoder_units,
                    return_sequences=True,
                    return_state=(i == encoder_layers - 1),
                    name=f"encoder_{i}",
                ),
                name=f"bidirectional_{i}",
            )
            for i in range(encoder_layers)
        ]
        self.layer_states = 2 if cell == "lstm" else 1  # per decoder layer
        self.num_states = self.layer_states * decoder_layers
        self.bridges = [
            layers.Dense(decoder_units, activation="tanh", name=f"bridge_{k}")
            for k in range(self.num_states)
        ]
        self.target_embedding = layers.Embedding(
            target_vocab_size, embedding_dim, name="target_embedding"
        )
        if attention == "luong-parallel":
            # Recurrent layers over the whole target (training); their cells step (decoding).
            self.decoder_rnns = [
                recurrent_layer(
                    cell,
                    decoder_units,
                    return_sequences=True,
                    return_state=True,
                    name=f"decoder_{i}",
                )
                for i in range(decoder_layers)
            ]
        else:
            # The decoder steps a cell by hand: the cell of the `--cell` recurrent layer.
            self.decoder_cell = make_cell(cell, decoder_units)
        if attention == "bahdanau":
            self.attention_keys = layers.Dense(decoder_units, use_bias=False, name="attention_keys")
            self.attention_query = layers.Dense(decoder_units, name="attention_query")
            self.attention_energy = layers.Dense(1, use_bias=False, name="attention_energy")
            self.feature_dim = decoder_units + 2 * encoder_units + embedding_dim
        elif attention in ("luong", "luong-parallel"):
            self.attention_keys = layers.Dense(decoder_units, use_bias=False, name="attention_keys")
            self.attentional = layers.Dense(
                decoder_units, activation="tanh", use_bias=False, name="attentional"
            )
            self.feature_dim = decoder_units
        else:
            self.feature_dim = decoder_units
        self.dropout = layers.Dropout(dropout)
        self.readout = layers.Dense(target_vocab_size, name="readout")

    # ------------------------------------------------------------------ encoder

    def encode(self, source, training=False):
        """int[b, Tx] -> dict(memory float[b, Tx, 2e], keys, mask bool[b, Tx], carry)."""
        mask = ops.not_equal(source, 0)
        x = self.dropout(self.source_embedding(source), training=training)
        for i, encoder in enumerate(self.encoders):
            result = encoder(x, mask=mask, training=training)
            if i == len(self.encoders) - 1:
                x, states = result[0], result[1:]
            else:
                x = result
            x = self.dropout(x, training=training)
        memory = x
        forward, backward = states[: self.layer_states], states[self.layer_states :]
        final = [ops.concatenate([f, b], axis=-1) for f, b in zip(forward, backward, strict=True)]
        # Every decoder layer starts from the encoder's final states, through its own bridge.
        cell_states = [
            bridge(final[k % self.layer_states]) for k, bridge in enumerate(self.bridges)
        ]
        keys = self.attention_keys(memory) if self.attention != "none" else memory
        if self.scaled_scores and self.attention in ("luong", "luong-parallel"):
            keys = keys * (1.0 / self.decoder_units**0.5)  # e = s . W_a h / sqrt(d)
        batch = ops.shape(source)[0]
        features = ops.zeros((batch, self.feature_dim), dtype=memory.dtype)
        weights = ops.zeros(ops.shape(source), dtype=memory.dtype)
        return {
            "memory": memory,
            "keys": keys,
            "mask": mask,
            "carry": (*cell_states, features, weights),
        }

    # ------------------------------------------------------------------ decoder

    @staticmethod
    def _attention_weights(scores, mask, dtype):
        """Masked softmax over the last axis (source positions); `mask` broadcasts to `scores`."""
        scores = ops.cast(scores, "float32")
        scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        weights = ops.cast(ops.softmax(scores, axis=-1), dtype)
        return weights * ops.cast(mask, dtype)  # exact zeros on padding

    def _attend(self, scores, memory, mask):
        """One step: scores float[b, Tx] -> (context float[b, 2e], weights float[b, Tx])."""
        weights = self._attention_weights(scores, mask, memory.dtype)
        context = ops.sum(weights[:, :, None] * memory, axis=1)
        return context, weights

    def _step(self, y, carry, memory, keys, mask):
        """One decoder step: y float[b, emb] (embedded y_{t-1}) -> the new carry."""
        states = list(carry[: self.num_states])
        previous_features = carry[self.num_states]
        if self.attention == "bahdanau":
            query = self.attention_query(states[0])  # s_{t-1} (the LSTM's h)
            scores = ops.squeeze(self.attention_energy(ops.tanh(keys + query[:, None, :])), -1)
            context, weights = self._attend(scores, memory, mask)
            output, states = self.decoder_cell(ops.concatenate([y, context], axis=-1), states)
            features = ops.concatenate([output, context, y], axis=-1)
        elif self.attention in ("luong", "luong-parallel"):
            if self.attention == "luong":  # input feeding: h~_{t-1} goes in with y_{t-1}
                inputs = ops.concatenate([y, previous_features], -1)
                output, states = self.decoder_cell(inputs, states)
            else:  # the stacked decoder layers' cells, one step each
                output, new_states = y, []
                for i, rnn in enumerate(self.decoder_rnns):
                    output, layer_states = rnn.cell(output, self._layer(states, i))
                    new_states.extend(self._as_list(layer_states))
                states = new_states
            scores = ops.sum(keys * output[:, None, :], axis=-1)
            context, weights = self._attend(scores, memory, mask)
            features = self.attentional(ops.concatenate([context, output], axis=-1))
        else:
            output, states = self.decoder_cell(y, states)
            features = output
            weights = carry[-1]
        return (*self._as_list(states), features, weights)

    @staticmethod
    def _as_list(states):
        return list(states) if isinstance(states, (list, tuple)) else [states]

    def _layer(self, states, i):
        """Decoder layer i's states out of the flat list of all layers' states."""
        return list(states[i * self.layer_states : (i + 1) * self.layer_states])

    def _parallel_features(self, y, encoded, training):
        """luong-parallel, teacher forced: features float[b, Ty, d] for all steps at once."""
        x = y
        for i, rnn in enumerate(self.decoder_rnns):
            x = rnn(x, initial_state=self._layer(encoded["carry"], i), training=training)[0]
            if i < len(self.decoder_rnns) - 1:
                x = self.dropout(x, training=training)
        memory = encoded["memory"]
        scores = ops.einsum("btd,bsd->bts", x, encoded["keys"])
        weights = self._attention_weights(scores, encoded["mask"][:, None, :], memory.dtype)
        context = ops.einsum("bts,bsd->btd", weights, memory)
        return self.attentional(ops.concatenate([context, x], axis=-1))

    def call(self, inputs, training=False):
        source, target_in = inputs
        encoded = self.encode(source, training=training)
        y = self.dropout(self.target_embedding(target_in), training=training)
        if self.attention == "luong-parallel":
            features = self._parallel_features(y, encoded, training)
            features = self.dropout(features, training=training)
            return ops.cast(self.readout(features), "float32")
        memory, keys, mask = encoded["memory"], encoded["keys"], encoded["mask"]

        def step(carry, y_t):
            new = self._step(y_t, carry, memory, keys, mask)
            return new, new

        _, stacked = ops.scan(step, encoded["carry"], ops.transpose(y, (1, 0, 2)))
        features = ops.transpose(stacked[self.num_states], (1, 0, 2))
        features = self.dropout(features, training=training)
        return ops.cast(self.readout(features), "float32")

    def decode_step(self, tokens, carry, memory, keys, mask):
        """tokens int[b] (y_{t-1}) -> (log-probabilities float32[b, vocab], new carry).

        The new carry's last entry is this step's attention over the source, float[b, Tx].
        """
        y = self.target_embedding(tokens)
        carry = self._step(y, carry, memory, keys, mask)
        logits = ops.cast(self.readout(carry[self.num_states]), "float32")
        return ops.log_softmax(logits, axis=-1), carry

    def get_config(self):
        return {
            **super().get_config(),
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            "cell": self.cell_name,
            "attention": self.attention,
            "embedding_dim": self.embedding_dim,
            "encoder_units": self.encoder_units,
            "encoder_layers": self.num_encoder_layers,
            "decoder_units": self.decoder_units,
            "decoder_layers": self.decoder_layers,
            "dropout": self.dropout_rate,
            "scaled_scores": self.scaled_scores,
        }


@keras.saving.register_keras_serializable(package="recipes.translation.model")
class MaskedAccuracy(TokenAccuracy):
    """Token accuracy over the real target tokens (`common.metrics.TokenAccuracy`; label
    0, the padding, is ignored)."""

    def __init__(self, name="token_accuracy", ignore_class=0, **kwargs):
        super().__init__(name=name, ignore_class=ignore_class, **kwargs)


def build_model(cfg, source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
    """The model for a config and the two vocabulary sizes (uncompiled, built)."""
    model = Seq2Seq(
        source_vocab_size,
        target_vocab_size,
        cell=cfg.cell,
        attention=cfg.attention,
        embedding_dim=cfg.embedding_dim,
        encoder_units=cfg.encoder_units,
        encoder_layers=cfg.layers,
        decoder_units=cfg.decoder_units,
        decoder_layers=cfg.decoder_layers,
        dropout=cfg.dropout,
        scaled_scores=cfg.scaled_scores,
        name="seq2seq",
    )
    model((ops.ones((1, 2), "int32"), ops.ones((1, 2), "int32")))
    return model


def compile_model(model: Seq2Seq, optimizer) -> Seq2Seq:
    """Masked cross-entropy on the logits (padding ignored) and masked token accuracy."""
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
        metrics=[MaskedAccuracy()],
        # XLA cannot compile the decoder's while loop over a dynamic number of steps.
        jit_compile=False,
    )
    return model
