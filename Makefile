# Two commands do all set-up: `make recipe-<name>` and `make test` create .venv
# from requirements.txt (and requirements-nodeps.txt, data-only wheels installed without
# their dependencies) when it is missing or older than those files, then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

RECIPES := char-lm sentiment ner translation activity video music speech dna protein
RECIPE_TARGETS := $(addprefix recipe-,$(RECIPES))

.PHONY: help venv test demo recipes bench bench-rnn bench-inference bench-translation lint $(RECIPE_TARGETS)

help: ## Show this help
	@grep -hE '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'
	@echo "  recipe-<name>        Train one recipe on its default preset: $(RECIPES)"
	@echo "                       (extra options: make recipe-char-lm ARGS='--epochs 2')"

$(STAMP): requirements.txt requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

venv: $(STAMP) ## Create or update the virtual environment

# -n auto: one pytest-xdist worker per CPU core (about 1.4x faster on 2 cores than one process;
# most of a test is Python, tracing and start-up, which one process runs on one core).
# --dist loadfile: a file's tests run in one worker, so a module's trained-run fixture is
# trained once, not once per worker. --durations: the slowest tests, for keeping it fast.
test: $(STAMP) ## Run the test suite (CPU, no network; one worker per core)
	$(PY) -m pytest -q -n auto --dist loadfile --durations=15 tests

# A static pattern rule: GNU Make ignores plain pattern rules named in .PHONY.
$(filter-out recipe-speech,$(RECIPE_TARGETS)): recipe-%: $(STAMP)
	$(PY) -m recipes.$(subst -,_,$*) train $(ARGS)

# Speech: install the default recordings (Debian packages) when they are missing, then
# train a character language model on the training transcripts and the acoustic model,
# which scores greedy, beam and beam + LM decoding side by side (ARGS go to `train`).
recipe-speech: $(STAMP)
	$(PY) -m recipes.speech install-data
	$(PY) -m recipes.speech train --train-lm $(ARGS)

recipes: $(RECIPE_TARGETS) ## Run every recipe on its default preset

demo: $(STAMP) ## A live page (Gradio) with a tab per finished run under runs/ (ARGS: --port, --host, --runs)
	$(PY) -m common.demo $(ARGS)

bench: bench-rnn bench-inference bench-translation ## The benchmarks below, one after the other; writes bench/results/

bench-rnn: $(STAMP) ## Time common.LSTM/GRU against keras.layers.LSTM/GRU (ARGS: --rounds, --shapes, --cells)
	$(PY) -m bench.rnn_bench $(ARGS)

bench-inference: $(STAMP) ## Time sampling, decoding, transcription, dna and protein prediction, --help (ARGS: --rounds, --cases)
	$(PY) -m bench.inference_bench $(ARGS)

bench-translation: $(STAMP) ## Translation training steps/s: luong-parallel against bahdanau (ARGS: --rounds, --steps)
	$(PY) -m bench.translation_bench $(ARGS)

lint: $(STAMP) ## Lint and check formatting with ruff (fix: ruff format common recipes tests bench)
	$(PY) -m ruff check common recipes tests bench
	$(PY) -m ruff format --check common recipes tests bench
