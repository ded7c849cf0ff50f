"""The learning-rate schedule of the recipes: a cosine decay whose length `fit` can re-plan.

`PlannedCosineDecay` is Keras's `CosineDecay` (no warm-up) with `decay_steps` held in a
variable, so that `common.runtime.fit` can shorten it once, after the first epoch, to the
epochs that fit a time budget: the compiled training step reads the new value without
being traced again. Keras only, so a saved optimizer loads on any backend.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="common")
class PlannedCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = lr0 * ((1 - alpha) * (1 + cos(pi * min(step, D) / D)) / 2 + alpha), D = decay_steps.

    Equal to `keras.optimizers.schedules.CosineDecay(lr0, D, alpha)`; `plan(D)` sets a new D.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="planned_cosine_decay"):
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be > 0. Received: decay_steps={decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.alpha = float(alpha)
        self.name = name
        self.decay_steps = keras.Variable(
            float(decay_steps), dtype="float32", trainable=False, name="decay_steps"
        )

    def plan(self, decay_steps: int) -> None:
        """Decay over `decay_steps` steps (counted from the start of training) from now on."""
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be > 0. Received: decay_steps={decay_steps}")
        self.decay_steps.assign(float(decay_steps))

    def __call__(self, step):
        steps = ops.convert_to_tensor(self.decay_steps)
        progress = ops.minimum(ops.cast(step, "float32"), steps) / steps
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": int(round(float(ops.convert_to_numpy(self.decay_steps)))),
            "alpha": self.alpha,
            "name": self.name,
        }
