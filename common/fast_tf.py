"""TensorFlow fast path for the LSTM and GRU sequence layers (CPU, XLA, hand-written BPTT).

``common.LSTM``/``common.GRU`` call :func:`lstm` / :func:`gru` instead of the generic cell loop
when the backend is TensorFlow and no GPU is used (see ``common.layers``). The arithmetic is the
one of ``common.cells.LSTMCell``/``GRUCell`` (Keras weight layouts), rearranged for speed::

    forward (XLA)                                backward (XLA, tf.custom_gradient)
    XW = X @ W + b         one matmul, all steps  for t = T-1 .. 0:
    for t = 0 .. T-1:                                 dZ_t = gates' derivative (element-wise)
        z = XW_t + h @ U   one matmul per step        dh  = dZ_t @ U^T     one matmul per step
        h, c = gates(z)                           dW = X^T @ dZ, dU = H_prev^T @ dZ, db = sum dZ,
        save h, c, gates                          dX = dZ @ W^T        single large matmuls

Shapes: ``x`` float[batch, time, features]; states float[batch, units]; ``mask`` bool[batch, time]
or None. Masked steps keep the previous state (any mask works, not only right padding); their
output is the previous output (zeros before the first valid step) or zeros when
``zero_output_for_mask`` (what ``Bidirectional`` asks for) -- the semantics of Keras's generic loop.
``go_backwards`` processes the sequence from the end and returns outputs in processing order.

Computation is in float32 whatever the layer's compute dtype (float64 stays float64); the caller
casts the results back, so mixed-precision models get float32 recurrences on CPU.

Two forward kernels exist: a training one (used when ``training=True``) that saves what the
hand-written backward pass needs, and an inference one that saves nothing (it is still
differentiable by TensorFlow's autodiff, only slower to differentiate). Each is one
``tf.function(jit_compile=True)``: XLA compiles it once per input shape and caches the result.
"""

from __future__ import annotations

import functools

import tensorflow as tf

__all__ = ["lstm", "gru"]

JIT = True
FWD_MODE = "concat"


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
    return tf.tensor_scatter_nd_add(d_states, [[states_shape[0] - 1]], last[None])


def _project(x_tm, kernel, bias):
    """x_tm [time, batch, d] @ kernel [d, k] + bias -> [time, batch, k] in one matmul."""
    shape = tf.shape(x_tm)
    xw = tf.matmul(tf.reshape(x_tm, [shape[0] * shape[1], shape[2]]), kernel)
    if bias is not None:
        xw = xw + bias
    return tf.reshape(xw, [shape[0], shape[1], tf.shape(kernel)[1]])


def _flat(x):
    shape = tf.shape(x)
    return tf.reshape(x, [shape[0] * shape[1], shape[2]])


def _input_grads(x_tm, d_xw, kernel, go_backwards, batch_major_shape):
    """dX (batch-major, original order) and dW for xw = x @ W."""
    d_xw2 = _flat(d_xw)
    d_kernel = tf.matmul(_flat(x_tm), d_xw2, transpose_a=True)
    dx_tm = tf.reshape(tf.matmul(d_xw2, kernel, transpose_b=True), tf.shape(x_tm))
    if go_backwards:
        dx_tm = tf.reverse(dx_tm, [0])
    dx = tf.transpose(dx_tm, [1, 0, 2])
    return tf.reshape(dx, batch_major_shape), d_kernel


def _prev_matmul(h0, states, dz):
    """sum_t H_prev[t]^T @ dz[t] with H_prev = [h0, states[:-1]], without building H_prev."""
    return tf.matmul(h0, dz[0], transpose_a=True) + tf.matmul(
        _flat(states[:-1]), _flat(dz[1:]), transpose_a=True
    )


# --------------------------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------------------------


def _lstm_forward(x_tm, m, h0, c0, kernel, recurrent_kernel, bias, peephole, *, save):
    """Runs the loop over time-major inputs in processing order.

    Each step is ONE matmul, ``[x_t, h_{t-1}] @ [W; U]`` (on CPU XLA runs this faster than a
    hoisted ``X @ W`` read back step by step). Returns ``(H, c_T, saved)``: H = the states h_t
    [T, B, U]. With ``save``, ``saved`` holds what the backward pass needs, arranged so that its
    loop is a few element-wise kernels per step (XLA:CPU pays per kernel launched):

        XH = [x_t, h_{t-1}]                                         [T, B, D + U]
        P  = d(gates)/dz * [g, c_{t-1}, i, tanh(c_t)]               [T, B, 4U]
        Q  = o (1 - tanh(c_t)^2) (+ w_co P_o)     dc_t += dh_t Q
        R  = f (+ w_ci P_i + w_cf P_f)            dc_{t-1} = dc_t R
        C  = c_t (peepholes only, for their gradient)               [T, B, U]
    """
    steps = tf.shape(x_tm)[0]
    dtype = x_tm.dtype
    stacked = tf.concat([kernel, recurrent_kernel], axis=0)
    if peephole is not None:
        w_ci, w_cf, w_co = peephole[0], peephole[1], peephole[2]

    def body(t, h, c, ta_h, ta_xh, ta_p, ta_q, ta_r, ta_c):
        xh = tf.concat([x_tm[t], h], axis=-1)
        z = tf.matmul(xh, stacked) + bias
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
        ta_h = ta_h.write(t, h_new)
        if save:
            ta_xh = ta_xh.write(t, xh)
            ta_p = ta_p.write(t, tf.concat([p_i, p_f, i * (1.0 - g * g), p_o], axis=-1))
            ta_q = ta_q.write(t, q)
            ta_r = ta_r.write(t, r)
            if peephole is not None:
                ta_c = ta_c.write(t, c_new)
        return t + 1, h_new, c_new, ta_h, ta_xh, ta_p, ta_q, ta_r, ta_c

    def ta(keep):
        return tf.TensorArray(dtype, size=steps if keep else 0)

    _, _, c_last, ta_h, *tas = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), h0, c0, ta(True), ta(save), ta(save), ta(save), ta(save),
         ta(save and peephole is not None)),
        maximum_iterations=steps,
    )
    saved = None
    if save:
        saved = [a.stack() for a in tas[:4]]
        saved.append(tas[4].stack() if peephole is not None else tf.zeros([0], dtype))
    return ta_h.stack(), c_last, saved


def _lstm_backward(d_states, dc_last, m, c0, kernel, recurrent_kernel, peephole, xh, p, q, r,
                   cells):
    """Hand-written BPTT; d_states = gradient w.r.t. H [T, B, U] (processing order).

    Per step: dh = dH_t + dh_{t+1}; dc = dc_{t+1} + dh Q_t; dz = P_t * [dc, dc, dc, dh];
    dc_{t-1} = dc R_t; dh_{t-1} = dz @ U^T. After the loop: d[W; U] = XH^T @ dZ, dX = dZ @ W^T,
    db = sum dZ. Returns (dX time-major, dh0, dc0, dW, dU, db, dP).
    """
    steps = tf.shape(xh)[0]
    dtype = xh.dtype
    units = recurrent_kernel.shape[0]
    zeros = tf.zeros([tf.shape(xh)[1], units], dtype)

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
    dz = _flat(dz3)
    d_stacked = tf.matmul(_flat(xh), dz, transpose_a=True)
    features = kernel.shape[0]
    d_kernel, d_recurrent = d_stacked[:features], d_stacked[features:]
    dx_tm = tf.reshape(tf.matmul(dz, kernel, transpose_b=True), [steps, -1, features])
    d_bias = tf.reduce_sum(dz, axis=0)
    d_peephole = None
    if peephole is not None:
        c_prev = tf.concat([c0[None], cells[:-1]], axis=0)
        dz_i, dz_f, _, dz_o = tf.split(dz3, 4, axis=-1)
        d_peephole = tf.stack([
            tf.reduce_sum(dz_i * c_prev, axis=[0, 1]),
            tf.reduce_sum(dz_f * c_prev, axis=[0, 1]),
            tf.reduce_sum(dz_o * cells, axis=[0, 1]),
        ])
    return dx_tm, dh0, dc0, d_kernel, d_recurrent, d_bias, d_peephole


@functools.lru_cache(maxsize=None)
def _lstm_kernels(go_backwards, return_sequences, zero_output_for_mask, masked, peephole):
    """The XLA-compiled functions for one static configuration (traced once per shape)."""

    def unpack(x, mask, peephole_kernel):
        m = _mask_tm(mask, go_backwards) if masked else None
        return _time_major(x, go_backwards), m, (peephole_kernel if peephole else None)

    @tf.function(jit_compile=JIT, autograph=False)
    def infer(x, mask, h0, c0, kernel, recurrent_kernel, bias, peephole_kernel):
        x_tm, m, p = unpack(x, mask, peephole_kernel)
        states, c_last, _ = _lstm_forward(x_tm, m, h0, c0, kernel, recurrent_kernel, bias, p,
                                          save=False)
        return _outputs(states, m, zero_output_for_mask, return_sequences), states[-1], c_last

    @tf.function(jit_compile=JIT, autograph=False)
    def forward(x, mask, h0, c0, kernel, recurrent_kernel, bias, peephole_kernel):
        x_tm, m, p = unpack(x, mask, peephole_kernel)
        states, c_last, saved = _lstm_forward(x_tm, m, h0, c0, kernel, recurrent_kernel, bias,
                                              p, save=True)
        y = _outputs(states, m, zero_output_for_mask, return_sequences)
        return (y, states[-1], c_last, c0, *saved)

    @tf.function(jit_compile=JIT, autograph=False)
    def backward(dy, dh_last, dc_last, x, mask, kernel, recurrent_kernel, peephole_kernel, c0,
                 xh, p_, q, r, cells):
        _, m, p = unpack(x[:, :0], mask, peephole_kernel)
        units = recurrent_kernel.shape[0]
        states_shape = tf.concat([tf.shape(xh)[:2], [units]], axis=0)
        d_states = _states_grad(dy, dh_last, m, zero_output_for_mask, return_sequences,
                                states_shape)
        dx_tm, *rest = _lstm_backward(d_states, dc_last, m, c0, kernel, recurrent_kernel, p, xh,
                                      p_, q, r, cells)
        return (_from_time_major(dx_tm, go_backwards), *rest)

    return infer, forward, backward


# --------------------------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------------------------


def _gru_forward(x, m, h0, kernel, recurrent_kernel, bias, *, reset_after, save, go_backwards):
    """Runs the loop; returns (H, G): states [T, B, U] and, if save, saved gate values.

    reset_after=True saves [z, r, h~, h@U_h + b'_h] ([T, B, 4U]); reset_after=False saves
    [z, r, h~] ([T, B, 3U]).
    """
    x_tm = _time_major(x, go_backwards)
    if reset_after:
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, None
    xw = _project(x_tm, kernel, input_bias)
    steps = tf.shape(xw)[0]
    units = recurrent_kernel.shape[0]
    if not reset_after:
        u_zr, u_h = recurrent_kernel[:, : 2 * units], recurrent_kernel[:, 2 * units :]

    def body(t, h, ta_h, ta_g):
        x_z, x_r, x_h = tf.split(xw[t], 3, axis=-1)
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
        if m is not None:
            h_new = tf.where(m[t], h_new, h)
        ta_h = ta_h.write(t, h_new)
        if save:
            saved = [z, r, cand, i_h] if reset_after else [z, r, cand]
            ta_g = ta_g.write(t, tf.concat(saved, axis=-1))
        return t + 1, h_new, ta_h, ta_g

    _, _, ta_h, ta_g = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (
            tf.constant(0),
            h0,
            tf.TensorArray(xw.dtype, size=steps),
            tf.TensorArray(xw.dtype, size=steps if save else 0),
        ),
        maximum_iterations=steps,
    )
    return ta_h.stack(), (ta_g.stack() if save else None)


def _gru_backward(d_states, x, m, h0, kernel, recurrent_kernel, states, gates, *, reset_after,
                  go_backwards):
    steps = tf.shape(states)[0]
    units = recurrent_kernel.shape[0]
    x_tm = _time_major(x, go_backwards)
    h_prev_all = tf.concat([h0[None], states[:-1]], axis=0)
    if not reset_after:
        u_zr, u_h = recurrent_kernel[:, : 2 * units], recurrent_kernel[:, 2 * units :]

    def body(k, dh_next, ta_d):
        t = steps - 1 - k
        dh = d_states[t] + dh_next
        h_prev = h_prev_all[t]
        if reset_after:
            z, r, cand, i_h = tf.split(gates[t], 4, axis=-1)
        else:
            z, r, cand = tf.split(gates[t], 3, axis=-1)
        dz = dh * (h_prev - cand) * z * (1.0 - z)
        da_h = dh * (1.0 - z) * (1.0 - cand * cand)
        if reset_after:
            dr = da_h * i_h * r * (1.0 - r)
            d_inner = tf.concat([dz, dr, da_h * r], axis=-1)
            dh_prev = dh * z + tf.matmul(d_inner, recurrent_kernel, transpose_b=True)
        else:
            d_rh = tf.matmul(da_h, u_h, transpose_b=True)
            dr = d_rh * h_prev * r * (1.0 - r)
            dh_prev = dh * z + d_rh * r + tf.matmul(
                tf.concat([dz, dr], axis=-1), u_zr, transpose_b=True
            )
        d_xw = tf.concat([dz, dr, da_h], axis=-1)
        if m is not None:
            d_xw = tf.where(m[t], d_xw, tf.zeros_like(d_xw))
            dh_prev = tf.where(m[t], dh_prev, dh)
        return k + 1, dh_prev, ta_d.write(t, d_xw)

    _, dh0, ta_d = tf.while_loop(
        lambda k, *_: k < steps,
        body,
        (tf.constant(0), tf.zeros_like(h0), tf.TensorArray(states.dtype, size=steps)),
        maximum_iterations=steps,
    )
    d_xw = ta_d.stack()
    dx, d_kernel = _input_grads(x_tm, d_xw, kernel, go_backwards, tf.shape(x))
    d_input_bias = tf.reduce_sum(d_xw, axis=[0, 1])
    if reset_after:
        r_all = gates[:, :, units : 2 * units]
        d_inner = tf.concat([d_xw[:, :, : 2 * units], d_xw[:, :, 2 * units :] * r_all], axis=-1)
        d_recurrent = _prev_matmul(h0, states, d_inner)
        d_bias = tf.stack([d_input_bias, tf.reduce_sum(d_inner, axis=[0, 1])])
    else:
        r_all = gates[:, :, units : 2 * units]
        d_zr = _prev_matmul(h0, states, d_xw[:, :, : 2 * units])
        d_h = tf.matmul(_flat(h_prev_all * r_all), _flat(d_xw[:, :, 2 * units :]),
                        transpose_a=True)
        d_recurrent = tf.concat([d_zr, d_h], axis=-1)
        d_bias = d_input_bias
    return dx, dh0, d_kernel, d_recurrent, d_bias


@functools.lru_cache(maxsize=None)
def _gru_kernels(go_backwards, return_sequences, zero_output_for_mask, masked, reset_after):
    """The XLA-compiled functions for one static configuration (traced once per shape)."""

    def mask_tm(mask):
        return _mask_tm(mask, go_backwards) if masked else None

    @tf.function(jit_compile=JIT, autograph=False)
    def infer(x, mask, h0, kernel, recurrent_kernel, bias):
        m = mask_tm(mask)
        states, _ = _gru_forward(x, m, h0, kernel, recurrent_kernel, bias,
                                 reset_after=reset_after, save=False, go_backwards=go_backwards)
        return _outputs(states, m, zero_output_for_mask, return_sequences), states[-1]

    @tf.function(jit_compile=JIT, autograph=False)
    def forward(x, mask, h0, kernel, recurrent_kernel, bias):
        m = mask_tm(mask)
        states, gates = _gru_forward(x, m, h0, kernel, recurrent_kernel, bias,
                                     reset_after=reset_after, save=True,
                                     go_backwards=go_backwards)
        y = _outputs(states, m, zero_output_for_mask, return_sequences)
        return y, states[-1], states, gates

    @tf.function(jit_compile=JIT, autograph=False)
    def backward(dy, dh_last, x, mask, h0, kernel, recurrent_kernel, states, gates):
        m = mask_tm(mask)
        d_states = _states_grad(dy, dh_last, m, zero_output_for_mask, return_sequences,
                                tf.shape(states))
        return _gru_backward(d_states, x, m, h0, kernel, recurrent_kernel, states, gates,
                             reset_after=reset_after, go_backwards=go_backwards)

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


def lstm(x, h0, c0, mask, kernel, recurrent_kernel, bias, peephole_kernel=None, *,
         go_backwards=False, return_sequences=False, zero_output_for_mask=False, training=False):
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
        bool(go_backwards), bool(return_sequences), bool(zero_output_for_mask),
        mask is not None, has_peephole,
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
            dx, dh0, dc0, dk, drk, db, dp = backward(
                _zeros_if_none(dy, y), _zeros_if_none(dh_last, h_last),
                _zeros_if_none(dc_last, c_last), x, mask_arg, kernel, recurrent_kernel,
                peephole_kernel, *saved,
            )
            if dp is None:
                dp = tf.zeros_like(peephole_kernel)
            return dx, dh0, dc0, dk, drk, db, dp

        return (y, h_last, c_last), grad

    return run(x, h0, c0, kernel, recurrent_kernel, bias, peephole_kernel)


def gru(x, h0, mask, kernel, recurrent_kernel, bias, *, reset_after=True, go_backwards=False,
        return_sequences=False, zero_output_for_mask=False, training=False):
    """GRU over a whole sequence (``common.cells.GRUCell`` arithmetic).

    Args:
        x: float[batch, time, features]; h0: float[batch, units]; mask: bool[batch, time] or
            None; kernel [features, 3u], recurrent_kernel [u, 3u], bias [2, 3u] if reset_after
            else [3u], or None.

    Returns:
        (y, h_T): y float[batch, time, u] if return_sequences else float[batch, u].
    """
    units = recurrent_kernel.shape[0]
    if bias is None:
        bias = tf.zeros([2, 3 * units] if reset_after else [3 * units], x.dtype)
    x, mask_arg, (h0, kernel, recurrent_kernel, bias) = _prepare(
        x, mask, (h0, kernel, recurrent_kernel, bias)
    )
    infer, forward, backward = _gru_kernels(
        bool(go_backwards), bool(return_sequences), bool(zero_output_for_mask),
        mask is not None, bool(reset_after),
    )

    @tf.custom_gradient
    def run(x, h0, kernel, recurrent_kernel, bias):
        args = _no_tape(x, mask_arg, h0, kernel, recurrent_kernel, bias)
        if training:
            y, h_last, states, gates = forward(*args)
        else:
            y, h_last = infer(*args)

        def grad(dy, dh_last):
            if training:
                saved = (states, gates)
            else:  # differentiated outside training: recompute the saved activations
                saved = forward(*args)[2:]
            return backward(
                _zeros_if_none(dy, y), _zeros_if_none(dh_last, h_last), x, mask_arg, h0,
                kernel, recurrent_kernel, *saved,
            )

        return (y, h_last), grad

    return run(x, h0, kernel, recurrent_kernel, bias)
