"""The reusable layers in a Keras program on JAX with TensorFlow not installed (issue 37).

`from common import ...` and `common.register_layers()` must not import TensorFlow, and a
`.keras` file saved on one backend must load on the other with the same outputs.
"""

from __future__ import annotations

import keras
import numpy as np

from tests.common.jax_backend import run_on_jax

PUBLIC = ("CRF", "GRU", "LSTM", "GRUCell", "LSTMCell", "MinimalGRUCell", "SimpleRNNCell")

# Builds the same model on either backend: every public layer and cell, and the CRF on top.
BUILD = """
import keras
import numpy as np
import common


def build_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((7, 5))
    x = common.LSTM(6, return_sequences=True, peephole=True)(inputs)
    x = keras.layers.Bidirectional(common.GRU(4, return_sequences=True))(x)
    x = keras.layers.RNN(common.GRUCell(5, reset_after=False), return_sequences=True)(x)
    x = keras.layers.RNN(
        [common.MinimalGRUCell(4), common.SimpleRNNCell(4), common.LSTMCell(3)],
        return_sequences=True,
    )(x)
    scores = keras.layers.Dense(3)(x)
    return keras.Model(inputs, common.CRF(3)(scores))


X = np.random.default_rng(0).normal(size=(2, 7, 5)).astype("float32")
"""


BUILD_NS: dict = {}
exec(BUILD, BUILD_NS)


def _outputs(model):
    return keras.ops.convert_to_numpy(model(BUILD_NS["X"]))


def test_public_names_import_and_register_without_tensorflow():
    result = run_on_jax(
        f"""
        import sys
        import common
        names = {PUBLIC!r}
        loaded = {{name: getattr(common, name).__name__ for name in names}}
        common.register_layers()
        registered = [
            name for name in names
            if keras.saving.get_registered_object("common>" + name) is not None
        ]
        try:
            import common.tokenization
            text_layers = "imported"
        except ImportError as error:
            text_layers = str(error)
        result = {{
            "loaded": loaded,
            "registered": registered,
            "tensorflow": "tensorflow" in sys.modules,
            "text_layers": text_layers,
        }}
        """,
        without_tensorflow=True,
    )
    assert result["loaded"] == {name: name for name in PUBLIC}
    assert sorted(result["registered"]) == sorted(PUBLIC)
    assert result["tensorflow"] is False
    # The text layers stay TensorFlow-only and say so in one line.
    assert result["text_layers"].startswith("common.tokenization needs TensorFlow")
    assert "\n" not in result["text_layers"]


def test_keras_files_load_across_backends(tmp_path):
    # Saved here (TensorFlow), loaded on JAX without TensorFlow; and the other way round.
    model = BUILD_NS["build_model"]()
    from_tensorflow = tmp_path / "tensorflow.keras"
    model.save(from_tensorflow)
    from_jax = tmp_path / "jax.keras"
    result = run_on_jax(
        BUILD
        + f"""
common.register_layers()
model = keras.saving.load_model({str(from_tensorflow)!r})
loaded = keras.ops.convert_to_numpy(model(X))
other = build_model()
other.set_weights([w * 0.5 for w in model.get_weights()])
other.save({str(from_jax)!r})
result = {{
    "loaded": loaded.tolist(),
    "other": keras.ops.convert_to_numpy(other(X)).tolist(),
}}
""",
        without_tensorflow=True,
    )
    np.testing.assert_allclose(result["loaded"], _outputs(model), atol=1e-5)
    import common

    common.register_layers()
    back = keras.saving.load_model(from_jax)
    np.testing.assert_allclose(_outputs(back), result["other"], atol=1e-5)
    for mine, theirs in zip(back.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs * 0.5, rtol=1e-6)


def test_a_gpu_on_jax_delegates_to_keras_cudnn_layer_on_the_same_variables():
    # There is no GPU here: the test pretends there is one. Keras's own layer then finds no
    # cuDNN and runs its loop, so what is tested is the decision and the plumbing (the Keras
    # layer is called, on this layer's variables, with the generic loop's results).
    result = run_on_jax(
        """
        import numpy as np
        from common import layers

        layers._gpu_available = lambda: True
        calls = []
        for name in ("LSTM", "GRU"):
            builtin = getattr(keras.layers, name)
            original = builtin.inner_loop

            def counting(self, *args, _original=original, _name=name, **kwargs):
                calls.append(_name)
                return _original(self, *args, **kwargs)

            builtin.inner_loop = counting
        x = np.random.default_rng(1).normal(size=(3, 6, 4)).astype("float32")
        result = {"loops": {}, "diffs": {}}
        cases = {
            "lstm": (layers.LSTM, {}),
            "lstm-peephole": (layers.LSTM, {"peephole": True}),
            "gru": (layers.GRU, {}),
            "gru-reset-before": (layers.GRU, {"reset_after": False}),
            "gru-no-bias": (layers.GRU, {"use_bias": False}),
            "lstm-generic": (layers.LSTM, {"implementation": "generic"}),
        }
        for case, (cls, options) in cases.items():
            keras.utils.set_random_seed(0)
            layer = cls(5, return_sequences=True, go_backwards=True, **options)
            generic = cls.from_config({**layer.get_config(), "implementation": "generic"})
            before = len(calls)
            out = keras.ops.convert_to_numpy(layer(x))
            generic.build(x.shape)
            generic.set_weights(layer.get_weights())
            reference = keras.ops.convert_to_numpy(generic(x))
            result["loops"][case] = [layer._select_loop(), len(calls) - before]
            result["diffs"][case] = float(np.abs(out - reference).max())
        """
    )
    loops = result["loops"]
    assert loops["lstm"] == ["cudnn", 1] and loops["gru"] == ["cudnn", 1], loops
    for case in ("lstm-peephole", "gru-reset-before", "gru-no-bias", "lstm-generic"):
        assert loops[case] == ["generic", 0], (case, loops)
    assert max(result["diffs"].values()) <= 1e-6, result["diffs"]
