"""Recurrent cells written with ``keras.ops`` only (TensorFlow, JAX and PyTorch backends).

A cell computes ONE time step; ``keras.layers.RNN(cell)`` (or ``common.LSTM``/``common.GRU``)
runs the loop over time, handles masks (a masked step keeps the previous state), ``go_backwards``
and stacking (``keras.layers.RNN([cell_a, cell_b])``)::

    x_1        x_2        x_3        x_4 (padding, mask=False)
     |          |          |          |
    cell ----> cell ----> cell ----> (skipped: state and output of step 3 are carried over)
     |          |          |
    y_1        y_2        y_3

Shapes for one step (``b`` = batch, ``d`` = input features, ``u`` = units)::

    inputs: float[b, d]    states: list of float[b, u]    output: float[b, u]

Weight layouts are those of the Keras built-ins (same names, shapes, gate order and creation
order: ``kernel``, ``recurrent_kernel``, ``bias``), so ``cell.set_weights(keras_cell.get_weights())``
copies a trained ``keras.layers.SimpleRNNCell``/``GRUCell``/``LSTMCell`` (or the ``cell`` of a
``keras.layers.SimpleRNN``/``GRU``/``LSTM``) into these cells. Extra weights (the LSTM peepholes)
are created after them. There is no dropout inside the cells: apply ``keras.layers.Dropout`` (or
``SpatialDropout1D``) to the sequence outside the recurrent layer.

Notation: ``@`` matrix product, ``*`` element-wise product, ``sigma`` the logistic sigmoid.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["SimpleRNNCell", "MinimalGRUCell", "GRUCell", "LSTMCell"]

_SIMPLE_ACTIVATIONS = ("tanh", "relu")


def _check_units(units):
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"units must be a positive integer. Received: units={units!r}")
    return units


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False. Received: {name}={value!r}")
    return value


class _RecurrentCell(keras.layers.Layer):
    """Shared constructor arguments, config and initial state of the cells (not public).

    Subclasses set ``self._gates`` (how many ``units``-wide blocks the kernels hold) and implement
    ``call``. ``state_size`` is ``units`` (one state) unless the subclass overrides it.
    """

    _gates = 1

    def __init__(
        self,
        units,
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
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _check_units(units)
        self.use_bias = _check_bool("use_bias", use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.state_size = self.units
        self.output_size = self.units

    def _build_kernels(self, input_shape, bias_shape=None, bias_initializer=None):
        """Creates kernel (d, k*u), recurrent_kernel (u, k*u) and bias, in the Keras order."""
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"{type(self).__name__} needs a known feature dimension. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        width = self._gates * self.units
        self.kernel = self.add_weight(
            shape=(input_dim, width),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=bias_shape or (width,),
                name="bias",
                initializer=bias_initializer or self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None

    def get_initial_state(self, batch_size=None):
        """Zeros, one ``[batch_size, units]`` tensor per state, in ``self.compute_dtype``."""
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    def get_config(self):
        config = {
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }
        return {**super().get_config(), **config}


def _previous_state(states):
    """The single state of a one-state cell, whether RNN passed a list or a bare tensor."""
    return states[0] if isinstance(states, (list, tuple)) else states


@keras.saving.register_keras_serializable(package="common")
class SimpleRNNCell(_RecurrentCell):
    """Elman RNN cell: ``a_t = g(x_t @ W_ax + a_{t-1} @ W_aa + b_a)``, ``g`` = tanh or relu.

    Weights (as ``keras.layers.SimpleRNNCell``): ``kernel`` = W_ax float[d, u],
    ``recurrent_kernel`` = W_aa float[u, u], ``bias`` = b_a float[u].

    Args:
        units: positive int, size of the state ``a_t``.
        activation: ``"tanh"`` (default) or ``"relu"``.
        use_bias, *_initializer, *_regularizer, *_constraint: as in Keras.

    Call:
        inputs: float32[batch, features]; states: [float32[batch, units]] (a_{t-1}).
        Returns ``(a_t, [a_t])`` with a_t: float32[batch, units].
    """

    _gates = 1

    def __init__(self, units, activation="tanh", **kwargs):
        if activation not in _SIMPLE_ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {_SIMPLE_ACTIVATIONS}. Received: activation={activation!r}"
            )
        super().__init__(units, **kwargs)
        self.activation = activation
        self._activation_fn = keras.activations.get(activation)

    def build(self, input_shape):
        self._build_kernels(input_shape)

    def call(self, inputs, states, training=False):
        a_prev = _previous_state(states)
        z = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            z = ops.add(z, self.bias)
        a = self._activation_fn(ops.add(z, ops.matmul(a_prev, self.recurrent_kernel)))
        return a, [a]

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@keras.saving.register_keras_serializable(package="common")
class MinimalGRUCell(_RecurrentCell):
    """Simplified GRU with a single update gate (no reset gate)::

        u_t  = sigma(x_t @ W_ux + c_{t-1} @ W_uc + b_u)     update gate
        c~_t = tanh (x_t @ W_cx + c_{t-1} @ W_cc + b_c)     candidate
        c_t  = u_t * c~_t + (1 - u_t) * c_{t-1}

    i.e. ``c~ = tanh(W_c[c_{t-1}, x_t] + b_c)``, ``u = sigma(W_u[c_{t-1}, x_t] + b_u)``. Note the
    gate convention: ``u`` weights the NEW candidate (Keras's GRU ``z`` weights the OLD state).

    Weights (layout in the Keras style, blocks in the order u, c): ``kernel`` = [W_ux | W_cx]
    float[d, 2u], ``recurrent_kernel`` = [W_uc | W_cc] float[u, 2u], ``bias`` = [b_u | b_c] float[2u].

    Args:
        units: positive int, size of the memory cell ``c_t``.
        use_bias, *_initializer, *_regularizer, *_constraint: as in Keras.

    Call:
        inputs: float32[batch, features]; states: [float32[batch, units]] (c_{t-1}).
        Returns ``(c_t, [c_t])`` with c_t: float32[batch, units].
    """

    _gates = 2

    def build(self, input_shape):
        self._build_kernels(input_shape)

    def call(self, inputs, states, training=False):
        c_prev = _previous_state(states)
        z = ops.add(ops.matmul(inputs, self.kernel), ops.matmul(c_prev, self.recurrent_kernel))
        if self.use_bias:
            z = ops.add(z, self.bias)
        z_u, z_c = ops.split(z, 2, axis=-1)
        u = ops.sigmoid(z_u)
        candidate = ops.tanh(z_c)
        c = u * candidate + (1.0 - u) * c_prev
        return c, [c]


@keras.saving.register_keras_serializable(package="common")
class GRUCell(_RecurrentCell):
    """Gated recurrent unit with update gate ``z`` and reset (relevance) gate ``r``.

    ``reset_after=True`` (default; the Keras/cuDNN convention)::

        z_t  = sigma(x_t @ W_z + b_z + h_{t-1} @ U_z + b'_z)
        r_t  = sigma(x_t @ W_r + b_r + h_{t-1} @ U_r + b'_r)
        h~_t = tanh (x_t @ W_h + b_h + r_t * (h_{t-1} @ U_h + b'_h))
        h_t  = z_t * h_{t-1} + (1 - z_t) * h~_t

    ``reset_after=False`` (the classic equation of Cho et al. 2014: reset before the matmul)::

        z_t, r_t as above without the recurrent biases b'
        h~_t = tanh (x_t @ W_h + b_h + (r_t * h_{t-1}) @ U_h)

    Weights (as ``keras.layers.GRUCell``, blocks in the order z, r, h): ``kernel`` = [W_z|W_r|W_h]
    float[d, 3u], ``recurrent_kernel`` = [U_z|U_r|U_h] float[u, 3u], ``bias`` float[2, 3u] (row 0
    input biases b, row 1 recurrent biases b') when ``reset_after=True``, float[3u] otherwise.

    Args:
        units: positive int, size of the state ``h_t``.
        reset_after: bool, see above.
        use_bias, *_initializer, *_regularizer, *_constraint: as in Keras.

    Call:
        inputs: float32[batch, features]; states: [float32[batch, units]] (h_{t-1}).
        Returns ``(h_t, [h_t])`` with h_t: float32[batch, units].
    """

    _gates = 3

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = _check_bool("reset_after", reset_after)

    def build(self, input_shape):
        bias_shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        self._build_kernels(input_shape, bias_shape=bias_shape)

    def call(self, inputs, states, training=False):
        h_prev = _previous_state(states)
        u = self.units
        x = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            x = ops.add(x, self.bias[0] if self.reset_after else self.bias)
        x_z, x_r, x_h = ops.split(x, 3, axis=-1)
        if self.reset_after:
            inner = ops.matmul(h_prev, self.recurrent_kernel)
            if self.use_bias:
                inner = ops.add(inner, self.bias[1])
            inner_z, inner_r, inner_h = ops.split(inner, 3, axis=-1)
            z = ops.sigmoid(x_z + inner_z)
            r = ops.sigmoid(x_r + inner_r)
            candidate = ops.tanh(x_h + r * inner_h)
        else:
            inner = ops.matmul(h_prev, self.recurrent_kernel[:, : 2 * u])
            inner_z, inner_r = ops.split(inner, 2, axis=-1)
            z = ops.sigmoid(x_z + inner_z)
            r = ops.sigmoid(x_r + inner_r)
            candidate = ops.tanh(x_h + ops.matmul(r * h_prev, self.recurrent_kernel[:, 2 * u :]))
        h = z * h_prev + (1.0 - z) * candidate
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


@keras.saving.register_keras_serializable(package="common")
class LSTMCell(_RecurrentCell):
    """Long short-term memory cell, optionally with diagonal peepholes (Gers & Schmidhuber 2000)::

        [z_i, z_f, z_c, z_o] = x_t @ W + h_{t-1} @ U + b
        i_t = sigma(z_i + w_ci * c_{t-1})        input (update) gate
        f_t = sigma(z_f + w_cf * c_{t-1})        forget gate
        c_t = f_t * c_{t-1} + i_t * tanh(z_c)    cell state
        o_t = sigma(z_o + w_co * c_t)            output gate (peeps at the NEW cell state)
        h_t = o_t * tanh(c_t)

    Without peepholes (default) the ``w_c*`` terms are absent: exactly ``keras.layers.LSTMCell``.

    Weights (as ``keras.layers.LSTMCell``, blocks in the order i, f, c, o): ``kernel`` = W
    float[d, 4u], ``recurrent_kernel`` = U float[u, 4u], ``bias`` = b float[4u]; with
    ``peephole=True`` also ``peephole_kernel`` = [w_ci; w_cf; w_co] float[3, u], created last
    (initialised to zeros by default, i.e. training starts from a plain LSTM).

    Args:
        units: positive int, size of ``h_t`` and ``c_t``.
        peephole: bool, add the diagonal peephole weights.
        unit_forget_bias: bool, initialise the forget-gate slice of the bias to 1 (as Keras).
        use_bias, *_initializer, *_regularizer, *_constraint: as in Keras;
        peephole_initializer/regularizer/constraint for ``peephole_kernel``.

    Call:
        inputs: float32[batch, features]; states: [h_{t-1}, c_{t-1}], each float32[batch, units].
        Returns ``(h_t, [h_t, c_t])``, each float32[batch, units].
    """

    _gates = 4

    def __init__(
        self,
        units,
        peephole=False,
        unit_forget_bias=True,
        peephole_initializer="zeros",
        peephole_regularizer=None,
        peephole_constraint=None,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.peephole = _check_bool("peephole", peephole)
        self.unit_forget_bias = _check_bool("unit_forget_bias", unit_forget_bias)
        self.peephole_initializer = keras.initializers.get(peephole_initializer)
        self.peephole_regularizer = keras.regularizers.get(peephole_regularizer)
        self.peephole_constraint = keras.constraints.get(peephole_constraint)
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        units = self.units
        base_initializer = self.bias_initializer

        def forget_bias_initializer(shape, dtype=None):
            # Same as Keras: [bias_init(u), ones(u), bias_init(2u)].
            return ops.concatenate(
                [
                    base_initializer((units,), dtype=dtype),
                    ops.ones((units,), dtype=dtype),
                    base_initializer((2 * units,), dtype=dtype),
                ]
            )

        self._build_kernels(
            input_shape,
            bias_initializer=forget_bias_initializer if self.unit_forget_bias else None,
        )
        if self.peephole:
            self.peephole_kernel = self.add_weight(
                shape=(3, units),
                name="peephole_kernel",
                initializer=self.peephole_initializer,
                regularizer=self.peephole_regularizer,
                constraint=self.peephole_constraint,
            )
        else:
            self.peephole_kernel = None

    def call(self, inputs, states, training=False):
        h_prev, c_prev = states[0], states[1]
        z = ops.matmul(inputs, self.kernel)
        z = ops.add(z, ops.matmul(h_prev, self.recurrent_kernel))
        if self.use_bias:
            z = ops.add(z, self.bias)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        if self.peephole:
            w = self.peephole_kernel
            z_i = z_i + w[0] * c_prev
            z_f = z_f + w[1] * c_prev
        i = ops.sigmoid(z_i)
        f = ops.sigmoid(z_f)
        c = f * c_prev + i * ops.tanh(z_c)
        if self.peephole:
            z_o = z_o + w[2] * c
        o = ops.sigmoid(z_o)
        h = o * ops.tanh(c)
        return h, [h, c]

    def get_config(self):
        config = {
            "peephole": self.peephole,
            "unit_forget_bias": self.unit_forget_bias,
            "peephole_initializer": keras.initializers.serialize(self.peephole_initializer),
            "peephole_regularizer": keras.regularizers.serialize(self.peephole_regularizer),
            "peephole_constraint": keras.constraints.serialize(self.peephole_constraint),
        }
        return {**super().get_config(), **config}
