# stnas: the two commands are `make demo` and `make test`; both install what is missing first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
NJ     ?= 2
PYTEST_ARGS ?=

.PHONY: install demo test test-fast bench clean

install:
	bash tools/install.sh --venv $(VENV)

demo: install
	PATH=$(abspath $(VENV))/bin:$$PATH bash run.sh --corpus tts --nj $(NJ)

test: install
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

bench: install
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf build *.egg-info
