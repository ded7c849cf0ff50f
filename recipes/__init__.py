"""The runnable recipes, one package each: `python -m recipes.<name> --help`."""

import os

# Quieter TensorFlow start-up for the command lines; must be set before TensorFlow loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
