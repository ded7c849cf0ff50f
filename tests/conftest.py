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

# pytest-xdist (`make test`: --dist loadfile) hands whole files to the workers in
# collection order. The longest files go first (about 40 to 150 s each on the 2-core
# development machine) so that the short ones fill the end and both workers finish at
# about the same time, instead of one waiting for the other's last long file.
LONGEST_FIRST = (
    "recipes/test_translation.py",
    "recipes/test_char_lm.py",
    "test_crash_resume.py",
    "recipes/test_dna.py",
    "common/test_runtime.py",
    "recipes/test_ner.py",
    "recipes/test_activity.py",
    "recipes/test_speech.py",
    "common/test_fast_path.py",
    "recipes/test_music.py",
    "recipes/test_protein.py",
    "common/test_layers.py",
    "test_demo_browser.py",
    "recipes/test_video.py",
    "recipes/test_sentiment.py",
    "common/test_backends.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0].removeprefix("tests/")
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order inside a file is kept
