# The README's two commands: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install bench clean

$(BIN)/zoo: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/zoo

install: $(BIN)/zoo

demo: install
	$(BIN)/zoo demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/realnvp_speed.py

clean:
	rm -rf $(VENV) runs build *.egg-info
