# stnas: the two commands are `make demo` and `make test`; both install what is missing first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
NJ     ?= 2
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint format bench clean

install:
	bash tools/install.sh --venv $(VENV)

demo: install
	PATH=$(abspath $(VENV))/bin:$$PATH bash run.sh --corpus tts --nj $(NJ)

test: install
	$(PY) -m pytest tests $(PYTEST_ARGS)

# ruff (lint + format check) and mypy on pipeline/ (settings: pyproject.toml)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-fast: install
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

# the stand-alone benchmarks, then those that need `make demo`'s model: decode.py, and
# train_data.py's augmentation arms (the demo's architecture retrained with and without)
bench: install
	for b in prep ctc_crf nas_cost stages; do $(PY) bench/$$b.py || exit 1; done
	if [ -f exp/tts/st/retrain/avg.pt ]; then \
	  $(PY) bench/decode.py && $(PY) bench/train_data.py --name augment \
	    --arch exp/tts/st/search/arch.json --arm none='--augment none' \
	    --arm augmented='--augment noise,reverb,telephone' && \
	  $(PY) -m bench.real_speech --model exp/tts/st/retrain/avg.pt \
	    --name "the demo's searched network (exp/tts/st/retrain/avg.pt)"; \
	else echo "bench: decode.py, train_data.py and real_speech skipped: run 'make demo' first"; fi

clean:
	rm -rf build *.egg-info
