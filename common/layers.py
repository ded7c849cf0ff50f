"""LSTM and GRU sequence layers that pick the fastest correct implementation at run time.

``LSTM``/``GRU`` are ``keras.layers.RNN`` over ``common.cells.LSTMCell``/``GRUCell`` with
Keras-like constructor arguments and Keras's weight layout, so
``layer.set_weights(keras.layers.LSTM(...).get_weights())`` gives the same outputs. What runs the
loop is chosen on every call (``implementation="auto"``)::

    backend TensorFlow, no GPU            -> common.fast_tf: XLA step loops, hand-written
                                             backward pass, the two halves of a batch run
                                             concurrently (masks, go_backwards,
                                             initial/stateful states, peepholes, both GRU
                                             variants, mixed precision)
    any backend, GPU, cuDNN-able          -> keras.layers.LSTM/GRU on this layer's variables:
                                             Keras's cuDNN kernel where Keras runs one for
                                             that backend and call (TensorFlow: masks must
                                             be right-padded; JAX: no mask), else its loop
    anything else (JAX or PyTorch on CPU,  -> the generic cell loop of keras.layers.RNN
    unroll, peepholes on a GPU)

``implementation="generic"`` forces the cell loop, ``implementation="fast"`` forces the TensorFlow
fast path (a ValueError says why when it cannot run).

Shapes: inputs float[batch, time, features]; output float[batch, time, units] with
``return_sequences`` else float[batch, units]; with ``return_state`` the final states follow
(LSTM: h, c; GRU: h), each float[batch, units].

Dropout (``dropout=``) is applied to the inputs outside the cell, one mask per sequence shared by
all time steps (``noise_shape=(batch, 1, features)``), during training only.
"""

from __future__ import annotations

import keras

from common import cells as cells_lib

__all__ = [
    "LSTM",
    "GRU",
    "CellRNN",
    "recurrent_layer",
    "recurrent_stack",
    "CELL_NAMES",
    "IMPLEMENTATIONS",
]

IMPLEMENTATIONS = ("auto", "generic", "fast")
# The `--cell` names, as common.cli.CELL_NAMES (tested equal): this module needs Keras only.
CELL_NAMES = ("lstm", "gru", "minimal-gru", "simple")
_FAST_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _gpu_available():
    """True when the Keras backend computes on a GPU (then Keras's cuDNN kernel is preferred)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def _check_rate(dropout):
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a float in [0, 1). Received: dropout={dropout!r}")
    return float(dropout)


class _Untracked:
    """Holds an object out of Keras's attribute tracking (its variables are not ours to save)."""

    def __init__(self, value=None):
        self.value = value


@keras.saving.register_keras_serializable(package="common")
class CellRNN(keras.layers.RNN):
    """``keras.layers.RNN`` with time-constant input dropout applied outside the cell.

    Used by :func:`recurrent_layer` for the cells without a dedicated layer
    (``MinimalGRUCell``, ``SimpleRNNCell``). Arguments as ``keras.layers.RNN`` plus ``dropout``
    (fraction of input features zeroed, the same for all time steps of a sequence) and ``seed``.
    """

    def __init__(self, cell, dropout=0.0, seed=None, **kwargs):
        super().__init__(cell, **kwargs)
        self.dropout = _check_rate(dropout)
        self.seed = seed
        self.input_dropout = (
            keras.layers.Dropout(self.dropout, noise_shape=(None, 1, None), seed=seed)
            if self.dropout
            else None
        )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if self.input_dropout is not None and training:
            sequences = self.input_dropout(sequences, training=training)
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout, "seed": self.seed}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.RNN.from_config pops "cell" from the dict it is given: pass a copy.
        return super().from_config(dict(config), custom_objects=custom_objects)


class _FastRNN(CellRNN):
    """Shared machinery of LSTM and GRU: flat config, implementation choice, fast paths."""

    _kind = None  # "lstm" | "gru"
    _cell_class = None
    _builtin_name = None  # name of the Keras built-in layer with the same weights

    def __init__(
        self,
        units,
        *,
        cell_kwargs,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        dropout=0.0,
        seed=None,
        implementation="auto",
        **kwargs,
    ):
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}. "
                f"Received: implementation={implementation!r}"
            )
        cell = self._cell_class(
            units,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=f"{self._kind}_cell",
            **cell_kwargs,
        )
        super().__init__(
            cell,
            dropout=dropout,
            seed=seed,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.implementation = implementation
        self._cell_kwargs = dict(cell_kwargs)
        self._twin = _Untracked()
        if implementation == "fast":
            problem = self._fast_path_problem()
            if problem:
                raise ValueError(f"implementation='fast' is not possible: {problem}.")
        if keras.backend.backend() == "tensorflow" and self._cudnn_wanted():
            self.supports_jit = False  # TF's cuDNN ops cannot be XLA-compiled (as Keras's)

    # -- configuration ----------------------------------------------------------------------

    @property
    def units(self):
        return self.cell.units

    def get_config(self):
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype", "units"):
            cell_config.pop(key, None)
        config = {
            "units": self.units,
            **cell_config,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "dropout": self.dropout,
            "seed": self.seed,
            "implementation": self.implementation,
        }
        base = keras.layers.Layer.get_config(self)
        return {**base, **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)

    def build(self, sequences_shape, initial_state_shape=None):
        super().build(sequences_shape, initial_state_shape)
        if self._cudnn_wanted():
            self._keras_builtin()  # created here, outside any tf.function being traced

    # -- implementation choice --------------------------------------------------------------

    def _fast_path_problem(self):
        """Why the TensorFlow fast path cannot run this layer, or None."""
        if keras.backend.backend() != "tensorflow":
            return f"it needs the TensorFlow backend (backend={keras.backend.backend()!r})"
        if self.unroll:
            return "unroll=True is only supported by the generic loop"
        if self.compute_dtype not in _FAST_DTYPES:
            return f"compute dtype {self.compute_dtype!r} is not a float type"
        return None

    def _cudnn_eligible(self):
        return self.cell.use_bias

    def _cudnn_wanted(self):
        return (
            self.implementation == "auto"
            and not self.unroll
            and self._cudnn_eligible()
            and _gpu_available()
        )

    def _select_loop(self):
        """ "fast" | "cudnn" | "generic" for this call."""
        if self.implementation == "generic":
            return "generic"
        if self.implementation == "fast":
            return "fast"
        if _gpu_available():
            return "cudnn" if self._cudnn_wanted() else "generic"
        if self._fast_path_problem():
            return "generic"
        return "fast"

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        path = self._select_loop()
        if path == "fast":
            return self._fast_loop(sequences, initial_state, mask, training)
        if path == "cudnn":
            return self._keras_builtin().inner_loop(sequences, initial_state, mask, training=False)
        return super().inner_loop(sequences, initial_state, mask, training=training)

    def _weights(self):
        """The cell's weights as tensors (the XLA functions cannot take Keras variables)."""
        cell = self.cell
        convert = keras.ops.convert_to_tensor
        bias = convert(cell.bias) if cell.bias is not None else None
        return convert(cell.kernel), convert(cell.recurrent_kernel), bias

    def _keras_builtin(self):
        """A ``keras.layers.LSTM``/``GRU`` running on this layer's variables (for cuDNN).

        Created once, kept out of tracking; its flags follow this layer's on every call.
        """
        twin = self._twin.value
        if twin is None:
            builtin_class = getattr(keras.layers, self._builtin_name)
            twin = builtin_class(self.units, dtype=self.dtype_policy, **self._builtin_kwargs())
            twin.cell.kernel = self.cell.kernel
            twin.cell.recurrent_kernel = self.cell.recurrent_kernel
            twin.cell.bias = self.cell.bias
            twin.cell.built = True
            twin.built = True
            self._twin.value = twin
        twin.return_sequences = self.return_sequences
        twin.go_backwards = self.go_backwards
        twin.zero_output_for_mask = self.zero_output_for_mask
        return twin

    def _builtin_kwargs(self):
        return {}

    def _fast_loop(self, sequences, initial_state, mask, training):
        raise NotImplementedError

    @staticmethod
    def _is_training(training):
        # A symbolic training flag takes the kernel with the hand-written gradient (always right).
        return training if isinstance(training, bool) else training is not None


@keras.saving.register_keras_serializable(package="common")
class LSTM(_FastRNN):
    """Long short-term memory layer (``common.cells.LSTMCell``, optional peepholes).

    Args:
        units: positive int, size of the states h and c.
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask:
            as ``keras.layers.RNN``.
        dropout: input dropout rate (time-constant mask, outside the cell).
        peephole: add diagonal peephole weights (see ``LSTMCell``).
        implementation: ``"auto"`` (fastest correct), ``"generic"`` (cell loop) or ``"fast"``
            (TensorFlow XLA path).
        use_bias, unit_forget_bias, *_initializer, *_regularizer, *_constraint: as
            ``keras.layers.LSTM``.

    Call:
        inputs float[batch, time, features], ``initial_state=[h0, c0]``, ``mask`` bool[batch,
        time]. Returns the output, followed by h and c with ``return_state``.
    """

    _kind = "lstm"
    _cell_class = cells_lib.LSTMCell
    _builtin_name = "LSTM"

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        dropout=0.0,
        peephole=False,
        implementation="auto",
        use_bias=True,
        unit_forget_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        peephole_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        peephole_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        peephole_constraint=None,
        unroll=False,
        zero_output_for_mask=False,
        seed=None,
        **kwargs,
    ):
        cell_kwargs = dict(
            peephole=peephole,
            use_bias=use_bias,
            unit_forget_bias=unit_forget_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            peephole_initializer=peephole_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            peephole_regularizer=peephole_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            peephole_constraint=peephole_constraint,
        )
        super().__init__(
            units,
            cell_kwargs=cell_kwargs,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            dropout=dropout,
            seed=seed,
            implementation=implementation,
            **kwargs,
        )

    @property
    def peephole(self):
        return self.cell.peephole

    def _cudnn_eligible(self):
        return self.cell.use_bias and not self.cell.peephole

    def _fast_loop(self, sequences, initial_state, mask, training):
        from common import fast_tf

        kernel, recurrent_kernel, bias = self._weights()
        peephole = (
            keras.ops.convert_to_tensor(self.cell.peephole_kernel) if self.cell.peephole else None
        )
        y, h, c = fast_tf.lstm(
            sequences,
            initial_state[0],
            initial_state[1],
            mask,
            kernel,
            recurrent_kernel,
            bias,
            peephole,
            go_backwards=self.go_backwards,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask,
            training=self._is_training(training),
        )
        return (h if self.return_sequences else y), y, [h, c]


@keras.saving.register_keras_serializable(package="common")
class GRU(_FastRNN):
    """Gated recurrent unit layer (``common.cells.GRUCell``).

    Args:
        units: positive int, size of the state h.
        reset_after: reset gate after the recurrent matmul (True, Keras/cuDNN convention) or
            before it (False, Cho et al. 2014).
        Other arguments as :class:`LSTM` (no peephole, no unit_forget_bias).

    Call:
        inputs float[batch, time, features], ``initial_state=[h0]``, ``mask`` bool[batch,
        time]. Returns the output, followed by h with ``return_state``.
    """

    _kind = "gru"
    _cell_class = cells_lib.GRUCell
    _builtin_name = "GRU"

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        dropout=0.0,
        reset_after=True,
        implementation="auto",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        unroll=False,
        zero_output_for_mask=False,
        seed=None,
        **kwargs,
    ):
        cell_kwargs = dict(
            reset_after=reset_after,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
        )
        super().__init__(
            units,
            cell_kwargs=cell_kwargs,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            dropout=dropout,
            seed=seed,
            implementation=implementation,
            **kwargs,
        )

    @property
    def reset_after(self):
        return self.cell.reset_after

    def _cudnn_eligible(self):
        return self.cell.use_bias and self.cell.reset_after

    def _builtin_kwargs(self):
        return {"reset_after": True}

    def _fast_loop(self, sequences, initial_state, mask, training):
        from common import fast_tf

        kernel, recurrent_kernel, bias = self._weights()
        y, h = fast_tf.gru(
            sequences,
            initial_state[0],
            mask,
            kernel,
            recurrent_kernel,
            bias,
            reset_after=self.cell.reset_after,
            go_backwards=self.go_backwards,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask,
            training=self._is_training(training),
        )
        return (h if self.return_sequences else y), y, [h]


def make_cell(cell, units):
    """The one-step cell for ``--cell`` (one of :data:`CELL_NAMES`), e.g. for a decoder that is
    stepped by hand; :func:`recurrent_layer` wraps the same cells in a sequence layer."""
    cell_classes = {
        "lstm": cells_lib.LSTMCell,
        "gru": cells_lib.GRUCell,
        "minimal-gru": cells_lib.MinimalGRUCell,
        "simple": cells_lib.SimpleRNNCell,
    }
    if cell not in cell_classes:
        raise ValueError(f"cell must be one of {CELL_NAMES}. Received: cell={cell!r}")
    return cell_classes[cell](units)


def recurrent_layer(
    cell,
    units,
    *,
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    stateful=False,
    dropout=0.0,
    name=None,
):
    """The recurrent layer for ``--cell``: one of :data:`CELL_NAMES`.

    ``"lstm"`` -> :class:`LSTM`, ``"gru"`` -> :class:`GRU`, ``"minimal-gru"``/``"simple"`` ->
    :class:`CellRNN` (a ``keras.layers.RNN``) over ``MinimalGRUCell``/``SimpleRNNCell``, all with
    input dropout outside the cell. With ``return_state`` the states follow the output: lstm
    (out, h, c), the others (out, h).
    """
    options = dict(
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        stateful=stateful,
        dropout=dropout,
        name=name,
    )
    if cell == "lstm":
        return LSTM(units, **options)
    if cell == "gru":
        return GRU(units, **options)
    return CellRNN(make_cell(cell, units), **options)


@keras.saving.register_keras_serializable(package="common")
class ConvFeatures(keras.layers.Layer):
    """`layers` x Conv1D(filters, kernel, same, relu) over time, then max-pooling by `pool`.

    (x float[batch, time, channels], mask bool[batch, time]) ->
    (float[batch, ceil(time / pool), filters], mask bool[batch, ceil(time / pool)]).
    Every convolution's output is set to 0 at the padded steps, so the next one sees
    there what it sees past the end of a sequence: padded steps change nothing. Used on
    sensor windows (activity) and one-hot DNA (dna, where the first convolution's
    filters are the motif scanners). (Outputs
    are ReLUs, >= 0, so a pooled pair of a real and a padded step keeps the real value.)
    """

    def __init__(self, filters=64, kernel=5, layers=2, pool=2, **kwargs):
        super().__init__(**kwargs)
        if min(filters, kernel, layers, pool) < 1:
            raise ValueError(
                f"filters, kernel, layers and pool must be positive. Received: {filters=}, "
                f"{kernel=}, {layers=}, {pool=}"
            )
        self.filters, self.kernel, self.depth, self.pool = filters, kernel, layers, pool
        self.convs = [
            keras.layers.Conv1D(
                filters, kernel, padding="same", activation="relu", name=f"conv_{i}"
            )
            for i in range(layers)
        ]

    def build(self, input_shape):
        shape = tuple(input_shape[0])
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)

    def call(self, inputs):
        x, mask = inputs
        keep = keras.ops.expand_dims(keras.ops.cast(mask, x.dtype), -1)
        for conv in self.convs:
            x = conv(x) * keep
        if self.pool > 1:
            x = keras.ops.max_pool(x, self.pool, self.pool, padding="same")
            mask = mask[:, :: self.pool]
        return x, mask

    def compute_output_shape(self, input_shape):
        batch, time, _ = input_shape[0]
        steps = None if time is None else -(-time // self.pool)
        return (batch, steps, self.filters), (batch, steps)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel": self.kernel,
            "layers": self.depth,
            "pool": self.pool,
        }


def recurrent_stack(x, cell, units, layers, *, bidirectional=False, dropout=0.0, mask=None):
    """``layers`` recurrent layers over ``x`` (bidirectional if asked); the last returns one
    vector per sequence: float32[batch, time, features] -> [batch, units (x2 if bidirectional)].

    ``mask`` bool[batch, time] (true = a real step, right-padded) goes to every layer.

    ``dropout`` after every layer, the same units at every step between layers
    (``noise_shape=(batch, 1, features)``), never inside a cell.
    """
    for i in range(layers):
        last = i == layers - 1
        layer = recurrent_layer(
            cell, units, return_sequences=not last, name=f"{cell.replace('-', '_')}_{i}"
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")
        x = layer(x) if mask is None else layer(x, mask=mask)
        if dropout:
            noise = None if last else (None, 1, x.shape[-1])
            x = keras.layers.Dropout(dropout, noise_shape=noise, name=f"dropout_{i}")(x)
    return x
