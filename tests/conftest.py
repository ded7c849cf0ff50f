"""Test-wide environment: CPU only, TensorFlow backend, quiet logs, a private cache."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""

# The demo tests: Gradio's uploads and generated files go to a private directory, and
# nothing may try to reach the network.
os.environ.setdefault("GRADIO_TEMP_DIR", __import__("tempfile").mkdtemp(prefix="gradio-tests-"))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
