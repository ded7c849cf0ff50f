"""TensorFlow fast path for the LSTM and GRU sequence layers (CPU, XLA, hand-written BPTT).

``common.LSTM``/``common.GRU`` call :func:`lstm` / :func:`gru` instead of the generic cell loop
when the backend is TensorFlow and no GPU is used (see ``common.layers``). The arithmetic is the
one of ``common.cells.LSTMCell``/``GRUCell`` (Keras weight layouts), rearranged for speed::

    forward (XLA)                                 backward (XLA, tf.custom_gradient)
    for t = 0 .. T-1:                             for t = T-1 .. 0:
        z = x_t @ W + h @ U + b   per-step matmul     dZ_t = saved factors * (dh, dc)
        h, c = gates(z)                               dh  = dZ_t @ U^T     one matmul per step
        save the gates' derivative factors        then, by TensorFlow (oneDNN), after the loop:
                                                  dW = X^T dZ, dU = H_prev^T dZ, db = sum dZ,
                                                  dX = dZ W^T         single large matmuls

Shapes: ``x`` float[batch, time, features]; states float[batch, units]; ``mask`` bool[batch, time]
or None. Masked steps keep the previous state (any mask works, not only right padding); their
output is the previous output (zeros before the first valid step) or zeros when
``zero_output_for_mask`` (what ``Bidirectional`` asks for) -- the semantics of Keras's generic loop.
``go_backwards`` processes the sequence from the end and returns outputs in processing order.

Computation is in float32 whatever the layer's compute dtype (float64 stays float64); the caller
casts the results back, so mixed-precision models get float32 recurrences on CPU.

The batch is split in two halves that run as independent kernels, concurrently (see
``_split_batch``).

Two forward kernels exist: a training one (used when ``training=True``) that saves what the
hand-written backward pass needs, and an inference one that saves nothing (differentiating
it, outside training, re-runs the training kernel to get the saved activations, then the
hand-written backward pass). Each is one
``tf.function(jit_compile=True)``: XLA compiles it once per input shape and caches the result.
"""

from __future__ import annotations

import functools
import os

import tensorflow as tf

__all__ = ["lstm", "gru"]

TIME_BUCKET = 8
SPLIT_MIN_BATCH = 2  # smaller batches run as one kernel (see _split_batch)


def _compute_dtype(dtype):
    return tf.float64 if dtype == tf.float64 else tf.float32


def _time_major(x, go_backwards):
    """[batch, time, ...] -> [time, batch, ...] in processing order."""
    perm = [1, 0] + list(range(2, x.shape.rank))
    x = tf.transpose(x, perm)
    return tf.reverse(x, [0]) if go_backwards else x


def _from_time_major(x_tm, go_backwards):
    """Inverse of _time_major."""
    if go_backwards:
        x_tm = tf.reverse(x_tm, [0])
    return tf.transpose(x_tm, [1, 0] + list(range(2, x_tm.shape.rank)))


def _batch_major(x):
    return tf.transpose(x, [1, 0, 2])


def _mask_tm(mask, go_backwards):
    """bool[batch, time] -> bool[time, batch, 1] in processing order."""
    return _time_major(mask, go_backwards)[:, :, None]


def _output_weights(m, zero_output_for_mask):
    """Which saved states are outputs: the step itself, or any valid step so far.

    With ``zero_output_for_mask=False`` a masked step repeats the previous output, which is the
    carried state once a valid step has been seen (and zeros before that).
    """
    if zero_output_for_mask:
        return tf.cast(m, tf.float32)
    return tf.cast(tf.math.cumsum(tf.cast(m, tf.int32), axis=0) > 0, tf.float32)


def _outputs(states, m, zero_output_for_mask, return_sequences):
    """Layer outputs from the saved states [time, batch, units] (processing order)."""
    if m is not None:
        w = tf.cast(_output_weights(m, zero_output_for_mask), states.dtype)
        if return_sequences:
            return _batch_major(states * w)
        return states[-1] * w[-1]
    return _batch_major(states) if return_sequences else states[-1]


def _states_grad(dy, d_last, m, zero_output_for_mask, return_sequences, states_shape):
    """Gradient w.r.t. the saved states [time, batch, units] from the outputs' gradients.

    ``dy`` is the gradient of the layer output, ``d_last`` that of the final state h_T (which is
    the last saved state).
    """
    w = None if m is None else _output_weights(m, zero_output_for_mask)
    if return_sequences:
        d_states = _batch_major(dy)
        if w is not None:
            d_states = d_states * tf.cast(w, dy.dtype)
        last = d_last
    else:
        last = d_last + (dy if w is None else dy * tf.cast(w[-1], dy.dtype))
        d_states = tf.zeros(states_shape, dy.dtype)
    return tf.concat([d_states[:-1], d_states[-1:] + last[None]], axis=0)


def _flat(x):
    shape = tf.shape(x)
    return tf.reshape(x, [shape[0] * shape[1], shape[2]])


def _with_ones(*columns):
    """``[a, b, ..., 1]`` along the last axis: ``operand^T dZ`` then also yields ``sum(dZ)``."""
    ones = tf.ones(tf.concat([tf.shape(columns[0])[:-1], [1]], axis=0), columns[0].dtype)
    return tf.concat([*columns, ones], axis=-1)


def _lstm_matmul_grads(dz, states, h0, x, kernel, go_backwards):
    """dX, dW, dU, db from dZ [T*B, 4U], the states H [T, B, U] and h0: large matmuls.

    Run by TensorFlow outside XLA: its CPU matmuls (oneDNN) are faster than XLA:CPU's on large
    operands, and an unused dX (the layer reads the model's input) is pruned from the graph.
    dW, dU and db come from one matmul, ``[X, H_prev, 1]^T dZ`` (one pass over dZ, no separate
    ``reduce_sum`` for db).
    """
    shape = tf.shape(x)
    features = kernel.shape[0]
    units = states.shape[-1]
    h_prev = tf.concat([h0, _flat(states[:-1])], axis=0)
    d_all = tf.matmul(_with_ones(_flat(_time_major(x, go_backwards)), h_prev), dz, transpose_a=True)
    dx_tm = tf.reshape(tf.matmul(dz, kernel, transpose_b=True), [shape[1], shape[0], shape[2]])
    return (
        _from_time_major(dx_tm, go_backwards),
        d_all[:features],
        d_all[features : features + units],
        d_all[-1],
    )


def _lstm_forward(
    x_tm, m, h0, c0, kernel, recurrent_kernel, bias, peephole, *, save, keep_states=True
):
    """Runs the loop over time-major inputs in processing order.

    Each step does ``z = x_t @ W + h_{t-1} @ U + b`` (two matmuls: no per-step concat, and no
    hoisted ``X @ W`` to read back step by step). Returns ``(H, c_T, saved)``: H = the states h_t
    [T, B, U], or only h_T as [1, B, U] without ``keep_states`` (inference of a layer that
    returns no sequence, which then skips the per-step writes). With ``save``, ``saved`` holds
    what the backward pass needs, arranged so that its loop is a few element-wise kernels per
    step instead of recomputing the gates:

        P  = d(gates)/dz * [g, c_{t-1}, i, tanh(c_t)]               [T, B, 4U]
        Q  = o (1 - tanh(c_t)^2) (+ w_co P_o)     dc_t += dh_t Q
        R  = f (+ w_ci P_i + w_cf P_f)            dc_{t-1} = dc_t R
        C  = c_t (peepholes only, for their gradient)               [T, B, U]
    """
    steps = tf.shape(x_tm)[0]
    dtype = x_tm.dtype
    if peephole is not None:
        w_ci, w_cf, w_co = peephole[0], peephole[1], peephole[2]

    def body(t, h, c, ta_h, ta_p, ta_q, ta_r, ta_c):
        z = tf.matmul(x_tm[t], kernel) + tf.matmul(h, recurrent_kernel) + bias
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        if peephole is not None:
            z_i = z_i + w_ci * c
            z_f = z_f + w_cf * c
        i = tf.sigmoid(z_i)
        f = tf.sigmoid(z_f)
        g = tf.tanh(z_c)
        c_new = f * c + i * g
        if peephole is not None:
            z_o = z_o + w_co * c_new
        o = tf.sigmoid(z_o)
        tanh_c = tf.tanh(c_new)
        h_new = o * tanh_c
        if save:
            p_i = g * i * (1.0 - i)
            p_f = c * f * (1.0 - f)
            p_o = tanh_c * o * (1.0 - o)
            q = o * (1.0 - tanh_c * tanh_c)
            r = f
            if peephole is not None:
                q = q + w_co * p_o
                r = r + w_ci * p_i + w_cf * p_f
        if m is not None:
            h_new = tf.where(m[t], h_new, h)
            c_new = tf.where(m[t], c_new, c)
        if keep_states:
            ta_h = ta_h.write(t, h_new)
        if save:
            ta_p = ta_p.write(t, tf.concat([p_i, p_f, i * (1.0 - g * g), p_o], axis=-1))
            ta_q = ta_q.write(t, q)
            ta_r = ta_r.write(t, r)
            if peephole is not None:
                ta_c = ta_c.write(t, c_new)
        return t + 1, h_new, c_new, ta_h, ta_p, ta_q, ta_r, ta_c

    def ta(keep):
        return tf.TensorArray(dtype, size=steps if keep else 0)

    _, h_last, c_last, ta_h, *tas = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (
            tf.constant(0),
            h0,
            c0,
            ta(keep_states),
            ta(save),
            ta(save),
            ta(save),
            ta(save and peephole is not None),
        ),
        maximum_iterations=steps,
    )
    saved = None
    if save:
        saved = [a.stack() for a in tas[:3]]
        saved.append(tas[3].stack() if peephole is not None else tf.zeros([0], dtype))
    return (ta_h.stack() if keep_states else h_last[None]), c_last, saved


def _lstm_backward(d_states, dc_last, m, c0, recurrent_kernel, peephole, p, q, r, cells):
    """Hand-written BPTT; d_states = gradient w.r.t. H [T, B, U] (processing order).

    Per step: dh = dH_t + dh_{t+1}; dc = dc_{t+1} + dh Q_t; dz = P_t * [dc, dc, dc, dh];
    dc_{t-1} = dc R_t; dh_{t-1} = dz @ U^T. Returns (dZ [T*B, 4U], dh0, dc0, dP); the large
    matmuls with dZ are left to :func:`_lstm_matmul_grads`.
    """
    steps = tf.shape(p)[0]
    dtype = p.dtype
    units = recurrent_kernel.shape[0]
    zeros = tf.zeros([tf.shape(p)[1], units], dtype)

    def body(k, dh_next, dc_next, ta_dz):
        t = steps - 1 - k
        dh = d_states[t] + dh_next
        dc = dc_next + dh * q[t]
        dz = p[t] * tf.concat([dc, dc, dc, dh], axis=-1)
        dc_prev = dc * r[t]
        if m is not None:
            dz = tf.where(m[t], dz, tf.zeros_like(dz))
            dc_prev = tf.where(m[t], dc_prev, dc_next)
        dh_prev = tf.matmul(dz, recurrent_kernel, transpose_b=True)
        if m is not None:
            dh_prev = tf.where(m[t], dh_prev, dh)
        return k + 1, dh_prev, dc_prev, ta_dz.write(t, dz)

    _, dh0, dc0, ta_dz = tf.while_loop(
        lambda k, *_: k < steps,
        body,
        (tf.constant(0), zeros, dc_last, tf.TensorArray(dtype, size=steps)),
        maximum_iterations=steps,
    )
    dz3 = ta_dz.stack()
    d_peephole = None
    if peephole is not None:
        c_prev = tf.concat([c0[None], cells[:-1]], axis=0)
        dz_i, dz_f, _, dz_o = tf.split(dz3, 4, axis=-1)
        d_peephole = tf.stack(
            [
                tf.reduce_sum(dz_i * c_prev, axis=[0, 1]),
                tf.reduce_sum(dz_f * c_prev, axis=[0, 1]),
                tf.reduce_sum(dz_o * cells, axis=[0, 1]),
            ]
        )
    return _flat(dz3), dh0, dc0, d_peephole


@functools.cache
def _lstm_kernels(go_backwards, return_sequences, zero_output_for_mask, masked, peephole):
    """The XLA-compiled functions for one static configuration (traced once per shape)."""

    def unpack(x, mask, peephole_kernel):
        m = _mask_tm(mask, go_backwards) if masked else None
        return _time_major(x, go_backwards), m, (peephole_kernel if peephole else None)

    @tf.function(jit_compile=True, autograph=False)
    def infer(x, mask, h0, c0, kernel, recurrent_kernel, bias, peephole_kernel):
        x_tm, m, p = unpack(x, mask, peephole_kernel)
        states, c_last, _ = _lstm_forward(
            x_tm,
            m,
            h0,
            c0,
            kernel,
            recurrent_kernel,
            bias,
            p,
            save=False,
            keep_states=return_sequences,
        )
        return _outputs(states, m, zero_output_for_mask, return_sequences), states[-1], c_last

    @tf.function(jit_compile=True, autograph=False)
    def forward(x, mask, h0, c0, kernel, recurrent_kernel, bias, peephole_kernel):
        x_tm, m, p = unpack(x, mask, peephole_kernel)
        states, c_last, saved = _lstm_forward(
            x_tm, m, h0, c0, kernel, recurrent_kernel, bias, p, save=True
        )
        y = _outputs(states, m, zero_output_for_mask, return_sequences)
        return (y, states[-1], c_last, states, *saved)

    @tf.function(jit_compile=True, autograph=False)
    def backward(
        dy, dh_last, dc_last, mask, c0, recurrent_kernel, peephole_kernel, states, p_, q, r, cells
    ):
        m = _mask_tm(mask, go_backwards) if masked else None
        d_states = _states_grad(
            dy, dh_last, m, zero_output_for_mask, return_sequences, tf.shape(states)
        )
        return _lstm_backward(
            d_states,
            dc_last,
            m,
            c0,
            recurrent_kernel,
            peephole_kernel if peephole else None,
            p_,
            q,
            r,
            cells,
        )

    return infer, forward, backward


# --------------------------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------------------------


def _gru_matmul_grads(d_xw, h_prev, extra, x, kernel, *, reset_after, go_backwards):
    """dX, dW, dU, db from the gate gradients: large matmuls, run by TensorFlow (see LSTM).

    The biases' gradients come out of the matmuls through a column of ones (see _with_ones).
    """
    shape = tf.shape(x)
    features = kernel.shape[0]
    units = h_prev.shape[-1]
    x_flat = _flat(_time_major(x, go_backwards))
    dx_tm = tf.reshape(tf.matmul(d_xw, kernel, transpose_b=True), [shape[1], shape[0], shape[2]])
    if reset_after:
        d_input = tf.matmul(_with_ones(x_flat), d_xw, transpose_a=True)
        d_inner = tf.matmul(_with_ones(h_prev), extra, transpose_a=True)
        d_kernel, d_recurrent = d_input[:features], d_inner[:units]
        d_bias = tf.stack([d_input[-1], d_inner[-1]])
    else:
        d_all = tf.matmul(_with_ones(x_flat, h_prev), d_xw, transpose_a=True)
        d_kernel, d_bias = d_all[:features], d_all[-1]
        d_recurrent = tf.concat(
            [
                d_all[features:-1, : 2 * units],
                tf.matmul(extra, d_xw[:, 2 * units :], transpose_a=True),
            ],
            axis=1,
        )
    return _from_time_major(dx_tm, go_backwards), d_kernel, d_recurrent, d_bias


def _gru_forward(
    x_tm, m, h0, kernel, recurrent_kernel, bias, *, reset_after, save, keep_states=True
):
    """Runs the loop over time-major inputs in processing order.

    Per step two matmuls, ``x_t @ W`` and ``h_{t-1} @ U`` (no hoisted ``X @ W``, as in the
    LSTM; one zero-padded matmul would waste a third of the work). Returns ``(H, saved)``;
    with ``save``, ``saved = [P, Z, R]``, [T, B, 3U], [T, B, U], [T, B, U], with
    ``Bf = (1 - z)(1 - h~^2)`` and

        reset_after=True:  P = [(h_{t-1} - h~) z (1 - z), Bf (h@U_h + b'_h) r (1 - r), Bf]
        reset_after=False: P = [(h_{t-1} - h~) z (1 - z), h_{t-1} r (1 - r),        Bf]

    so that the gradient w.r.t. the gate pre-activations is P times (functions of) dh.
    """
    steps = tf.shape(x_tm)[0]
    dtype = x_tm.dtype
    units = recurrent_kernel.shape[0]
    if reset_after:
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias = bias
        u_zr, u_h = recurrent_kernel[:, : 2 * units], recurrent_kernel[:, 2 * units :]

    def body(t, h, ta_h, ta_p, ta_z, ta_r):
        xw = tf.matmul(x_tm[t], kernel) + input_bias
        x_z, x_r, x_h = tf.split(xw, 3, axis=-1)
        if reset_after:
            inner = tf.matmul(h, recurrent_kernel) + recurrent_bias
            i_z, i_r, i_h = tf.split(inner, 3, axis=-1)
            z = tf.sigmoid(x_z + i_z)
            r = tf.sigmoid(x_r + i_r)
            cand = tf.tanh(x_h + r * i_h)
        else:
            i_z, i_r = tf.split(tf.matmul(h, u_zr), 2, axis=-1)
            z = tf.sigmoid(x_z + i_z)
            r = tf.sigmoid(x_r + i_r)
            cand = tf.tanh(x_h + tf.matmul(r * h, u_h))
        h_new = z * h + (1.0 - z) * cand
        if save:
            bf = (1.0 - z) * (1.0 - cand * cand)
            reset_factor = (bf * i_h if reset_after else h) * r * (1.0 - r)
            ta_p = ta_p.write(t, tf.concat([(h - cand) * z * (1.0 - z), reset_factor, bf], -1))
            ta_z = ta_z.write(t, z)
            ta_r = ta_r.write(t, r)
        if m is not None:
            h_new = tf.where(m[t], h_new, h)
        if keep_states:
            ta_h = ta_h.write(t, h_new)
        return t + 1, h_new, ta_h, ta_p, ta_z, ta_r

    def ta(keep):
        return tf.TensorArray(dtype, size=steps if keep else 0)

    _, h_last, ta_h, *tas = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), h0, ta(keep_states), ta(save), ta(save), ta(save)),
        maximum_iterations=steps,
    )
    states = ta_h.stack() if keep_states else h_last[None]
    return states, ([a.stack() for a in tas] if save else None)


def _gru_backward(d_states, m, h0, recurrent_kernel, states, p, z, r, *, reset_after):
    """Hand-written BPTT; d_states = gradient w.r.t. H [T, B, U] (processing order).

    The loop keeps what is sequential, and what it computes anyway: dh, and d(h@U + b') for
    reset_after=True (the z and r columns of dXW are the same) or d(r h) for reset_after=False;
    the other gate gradients are computed after it, vectorized over time. Returns (dXW
    [T*B, 3U], dh0, H_prev [T*B, U], d(h@U + b') [T*B, 3U] if reset_after else R * H_prev
    [T*B, U]); the large matmuls are left to :func:`_gru_matmul_grads`.
    """
    steps = tf.shape(states)[0]
    dtype = states.dtype
    units = recurrent_kernel.shape[0]
    if not reset_after:
        u_zr, u_h = recurrent_kernel[:, : 2 * units], recurrent_kernel[:, 2 * units :]

    def body(k, dh_next, ta_dh, ta_drh):
        t = steps - 1 - k
        dh = d_states[t] + dh_next
        if m is not None:
            dh_gates = tf.where(m[t], dh, tf.zeros_like(dh))
        else:
            dh_gates = dh
        if reset_after:
            d_inner = p[t] * tf.concat([dh_gates, dh_gates, dh_gates * r[t]], axis=-1)
            dh_prev = dh_gates * z[t] + tf.matmul(d_inner, recurrent_kernel, transpose_b=True)
            ta_drh = ta_drh.write(t, d_inner)  # needed after the loop, and computed here anyway
        else:
            a, e, bf = tf.split(p[t], 3, axis=-1)
            d_rh = tf.matmul(dh_gates * bf, u_h, transpose_b=True)
            d_zr = tf.concat([dh_gates * a, d_rh * e], axis=-1)
            dh_prev = dh_gates * z[t] + d_rh * r[t] + tf.matmul(d_zr, u_zr, transpose_b=True)
            ta_drh = ta_drh.write(t, d_rh)
        if m is not None:
            dh_prev = tf.where(m[t], dh_prev, dh)
        return k + 1, dh_prev, ta_dh.write(t, dh_gates), ta_drh

    _, dh0, ta_dh, ta_drh = tf.while_loop(
        lambda k, *_: k < steps,
        body,
        (
            tf.constant(0),
            tf.zeros_like(h0),
            tf.TensorArray(dtype, size=steps),
            tf.TensorArray(dtype, size=steps),
        ),
        maximum_iterations=steps,
    )
    dh_all = ta_dh.stack()
    h_prev = tf.concat([h0[None], states[:-1]], axis=0)
    if reset_after:
        d_inner = ta_drh.stack()
        d_xw = tf.concat([d_inner[..., : 2 * units], dh_all * p[..., 2 * units :]], axis=-1)
        return _flat(d_xw), dh0, _flat(h_prev), _flat(d_inner)
    a, e, bf = tf.split(p, 3, axis=-1)
    d_xw = tf.concat([dh_all * a, ta_drh.stack() * e, dh_all * bf], axis=-1)
    return _flat(d_xw), dh0, _flat(h_prev), _flat(h_prev * r)


@functools.cache
def _gru_kernels(go_backwards, return_sequences, zero_output_for_mask, masked, reset_after):
    """The XLA-compiled functions for one static configuration (traced once per shape)."""

    def unpack(x, mask):
        m = _mask_tm(mask, go_backwards) if masked else None
        return _time_major(x, go_backwards), m

    @tf.function(jit_compile=True, autograph=False)
    def infer(x, mask, h0, kernel, recurrent_kernel, bias):
        x_tm, m = unpack(x, mask)
        states, _ = _gru_forward(
            x_tm,
            m,
            h0,
            kernel,
            recurrent_kernel,
            bias,
            reset_after=reset_after,
            save=False,
            keep_states=return_sequences,
        )
        return _outputs(states, m, zero_output_for_mask, return_sequences), states[-1]

    @tf.function(jit_compile=True, autograph=False)
    def forward(x, mask, h0, kernel, recurrent_kernel, bias):
        x_tm, m = unpack(x, mask)
        states, saved = _gru_forward(
            x_tm, m, h0, kernel, recurrent_kernel, bias, reset_after=reset_after, save=True
        )
        y = _outputs(states, m, zero_output_for_mask, return_sequences)
        return (y, states[-1], states, *saved)

    @tf.function(jit_compile=True, autograph=False)
    def backward(dy, dh_last, mask, h0, recurrent_kernel, states, p, z, r):
        m = _mask_tm(mask, go_backwards) if masked else None
        d_states = _states_grad(
            dy, dh_last, m, zero_output_for_mask, return_sequences, tf.shape(states)
        )
        return _gru_backward(
            d_states,
            m,
            h0,
            recurrent_kernel,
            states,
            p,
            z,
            r,
            reset_after=reset_after,
        )

    return infer, forward, backward


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def _zeros_if_none(grad, like):
    return tf.zeros_like(like) if grad is None else grad


def _no_tape(*tensors):
    return tuple(tf.stop_gradient(t) for t in tensors)


def _prepare(x, mask, tensors):
    dtype = _compute_dtype(x.dtype)
    cast = [tf.cast(t, dtype) for t in tensors]
    if mask is None:
        mask = tf.zeros([0, 0], tf.bool)  # placeholder argument, unused by the kernel
    else:
        mask = tf.cast(mask, tf.bool)
    return tf.cast(x, dtype), mask, cast


def _time_buckets(call, x, mask, *, go_backwards, return_sequences, zero_output_for_mask):
    """Runs ``call(x, mask)`` with the time axis padded to a multiple of TIME_BUCKET.

    XLA compiles once per input shape. When the traced time length is unknown (batches padded
    to their own longest sequence), every new length would cost a compilation; padding with
    masked steps (which change neither states nor the kept outputs) bounds that to
    max_length / TIME_BUCKET compilations.
    """
    if x.shape[1] is not None or (zero_output_for_mask and not return_sequences):
        return call(x, mask)
    steps = tf.shape(x)[1]
    pad = (steps + TIME_BUCKET - 1) // TIME_BUCKET * TIME_BUCKET - steps
    if mask is None:
        mask = tf.ones(tf.shape(x)[:2], tf.bool)
    x = tf.pad(x, [[0, 0], [0, pad], [0, 0]])
    mask = tf.pad(tf.cast(mask, tf.bool), [[0, 0], [0, pad]], constant_values=False)
    y, *states = call(x, mask)
    if return_sequences:  # outputs are in processing order: padding last, or first backwards
        y = y[:, pad:] if go_backwards else y[:, :steps]
    return (y, *states)


def _batch_parts():
    """Into how many independent kernels a batch is split: 2 when ops can run concurrently."""
    threads = tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count() or 1
    return 2 if threads >= 2 else 1


def _split_batch(call, x, mask, states):
    """Runs ``call(x, mask, *states)`` on the two halves of the batch and concatenates.

    The rows of a batch are independent recurrences, and the halves' kernels are independent
    ops, which TensorFlow runs concurrently: one XLA:CPU step loop is a chain of small kernels
    that run one after another and leaves a second core partly idle. Two parts, not more: more
    were slower on 2 cores (bench/results/fast_tf-notes.md).

    With an unknown batch size (Keras traces ``fit`` that way) the split is made at run time; a
    batch of one then has an empty second half, which costs nothing but a compilation.
    """
    batch = x.shape[0]
    if _batch_parts() < 2 or (batch is not None and batch < SPLIT_MIN_BATCH):
        return call(x, mask, *states)
    if batch is not None:
        sizes = [batch - batch // 2, batch // 2]
    else:
        n = tf.shape(x)[0]
        sizes = tf.stack([n - n // 2, n // 2])
    parts = [
        (None, None) if t is None else tf.split(t, sizes, num=2, axis=0) for t in (x, mask, *states)
    ]
    first, second = (call(*[p[i] for p in parts]) for i in range(2))
    return tuple(tf.concat([a, b], axis=0) for a, b in zip(first, second, strict=True))


def lstm(
    x,
    h0,
    c0,
    mask,
    kernel,
    recurrent_kernel,
    bias,
    peephole_kernel=None,
    *,
    go_backwards=False,
    return_sequences=False,
    zero_output_for_mask=False,
    training=False,
):
    """LSTM over a whole sequence (``common.cells.LSTMCell`` arithmetic).

    Args:
        x: float[batch, time, features]; h0, c0: float[batch, units]; mask: bool[batch, time]
            or None; kernel [features, 4u], recurrent_kernel [u, 4u], bias [4u] or None,
            peephole_kernel [3, u] or None (tensors, not variables).
        training: use the kernel with the hand-written gradient (saves activations).

    Returns:
        (y, h_T, c_T): y float[batch, time, u] if return_sequences else float[batch, u].
        float32 (float64 for float64 inputs).
    """
    options = dict(
        go_backwards=bool(go_backwards),
        return_sequences=bool(return_sequences),
        zero_output_for_mask=bool(zero_output_for_mask),
    )

    def run(x, mask, h0, c0):
        return _lstm(
            x,
            h0,
            c0,
            mask,
            kernel,
            recurrent_kernel,
            bias,
            peephole_kernel,
            training=training,
            **options,
        )

    return _time_buckets(lambda x, mask: _split_batch(run, x, mask, (h0, c0)), x, mask, **options)


def _lstm(
    x,
    h0,
    c0,
    mask,
    kernel,
    recurrent_kernel,
    bias,
    peephole_kernel,
    *,
    go_backwards,
    return_sequences,
    zero_output_for_mask,
    training,
):
    units = recurrent_kernel.shape[0]
    has_peephole = peephole_kernel is not None
    if bias is None:
        bias = tf.zeros([4 * units], x.dtype)
    if peephole_kernel is None:
        peephole_kernel = tf.zeros([3, units], x.dtype)
    x, mask_arg, (h0, c0, kernel, recurrent_kernel, bias, peephole_kernel) = _prepare(
        x, mask, (h0, c0, kernel, recurrent_kernel, bias, peephole_kernel)
    )
    infer, forward, backward = _lstm_kernels(
        bool(go_backwards),
        bool(return_sequences),
        bool(zero_output_for_mask),
        mask is not None,
        has_peephole,
    )

    @tf.custom_gradient
    def run(x, h0, c0, kernel, recurrent_kernel, bias, peephole_kernel):
        # stop_gradient: the tape must not differentiate the XLA calls themselves (their while
        # loops cannot export TensorLists); the gradient is `grad` below.
        args = _no_tape(x, mask_arg, h0, c0, kernel, recurrent_kernel, bias, peephole_kernel)
        if training:
            y, h_last, c_last, *saved = forward(*args)
        else:
            y, h_last, c_last = infer(*args)
            saved = []

        def grad(dy, dh_last, dc_last):
            if not training:  # differentiated outside training: recompute the saved activations
                saved[:] = forward(*args)[3:]
            dz, dh0, dc0, dp = backward(
                _zeros_if_none(dy, y),
                _zeros_if_none(dh_last, h_last),
                _zeros_if_none(dc_last, c_last),
                mask_arg,
                c0,
                recurrent_kernel,
                peephole_kernel,
                *saved,
            )
            dx, dk, drk, db = _lstm_matmul_grads(dz, saved[0], h0, x, kernel, go_backwards)
            if dp is None:
                dp = tf.zeros_like(peephole_kernel)
            return dx, dh0, dc0, dk, drk, db, dp

        return (y, h_last, c_last), grad

    return run(x, h0, c0, kernel, recurrent_kernel, bias, peephole_kernel)


def gru(
    x,
    h0,
    mask,
    kernel,
    recurrent_kernel,
    bias,
    *,
    reset_after=True,
    go_backwards=False,
    return_sequences=False,
    zero_output_for_mask=False,
    training=False,
):
    """GRU over a whole sequence (``common.cells.GRUCell`` arithmetic).

    Args:
        x: float[batch, time, features]; h0: float[batch, units]; mask: bool[batch, time] or
            None; kernel [features, 3u], recurrent_kernel [u, 3u], bias [2, 3u] if reset_after
            else [3u], or None.

    Returns:
        (y, h_T): y float[batch, time, u] if return_sequences else float[batch, u].
    """
    options = dict(
        go_backwards=bool(go_backwards),
        return_sequences=bool(return_sequences),
        zero_output_for_mask=bool(zero_output_for_mask),
    )

    def run(x, mask, h0):
        return _gru(
            x,
            h0,
            mask,
            kernel,
            recurrent_kernel,
            bias,
            reset_after=bool(reset_after),
            training=training,
            **options,
        )

    return _time_buckets(lambda x, mask: _split_batch(run, x, mask, (h0,)), x, mask, **options)


def _gru(
    x,
    h0,
    mask,
    kernel,
    recurrent_kernel,
    bias,
    *,
    reset_after,
    go_backwards,
    return_sequences,
    zero_output_for_mask,
    training,
):
    units = recurrent_kernel.shape[0]
    if bias is None:
        bias = tf.zeros([2, 3 * units] if reset_after else [3 * units], x.dtype)
    x, mask_arg, (h0, kernel, recurrent_kernel, bias) = _prepare(
        x, mask, (h0, kernel, recurrent_kernel, bias)
    )
    infer, forward, backward = _gru_kernels(
        bool(go_backwards),
        bool(return_sequences),
        bool(zero_output_for_mask),
        mask is not None,
        bool(reset_after),
    )

    @tf.custom_gradient
    def run(x, h0, kernel, recurrent_kernel, bias):
        args = _no_tape(x, mask_arg, h0, kernel, recurrent_kernel, bias)
        if training:
            y, h_last, *saved = forward(*args)
        else:
            y, h_last = infer(*args)
            saved = []

        def grad(dy, dh_last):
            if not training:  # differentiated outside training: recompute the saved activations
                saved[:] = forward(*args)[2:]
            d_xw, dh0, h_prev, extra = backward(
                _zeros_if_none(dy, y),
                _zeros_if_none(dh_last, h_last),
                mask_arg,
                h0,
                recurrent_kernel,
                *saved,
            )
            dx, dk, drk, db = _gru_matmul_grads(
                d_xw, h_prev, extra, x, kernel, reset_after=reset_after, go_backwards=go_backwards
            )
            return dx, dh0, dk, drk, db

        return (y, h_last), grad

    return run(x, h0, kernel, recurrent_kernel, bias)
