# The README's two commands: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install data browser bench clean

$(BIN)/zoo: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,serving]"
	touch $(BIN)/zoo

install: $(BIN)/zoo

# Fashion-MNIST's original IDX files from Debian's dataset-fashion-mnist, and the
# English fortune cookies of Debian's fortunes (with fortunes-min) for the text dataset
# `fortunes` (needs root and apt; elsewhere set ZOO_FASHION_MNIST_DIR and
# ZOO_FORTUNES_DIR, or let tfds download Fashion-MNIST with a network).
DATA_PACKAGES := dataset-fashion-mnist fortunes fortunes-min
data:
	@if [ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] \
	  && [ -f /usr/share/games/fortunes/cookie ] && [ -f /usr/share/games/fortunes/fortunes ]; then \
	  echo "$(DATA_PACKAGES) are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DATA_PACKAGES) \
	  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DATA_PACKAGES); }; \
	else \
	  echo "make data: needs root and apt-get (sudo apt-get install $(DATA_PACKAGES))" >&2; exit 1; \
	fi

# Debian's chromium and chromedriver, for the test that opens `zoo compare`'s report
# page in a headless browser (needs root and apt, like `data`).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
	  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }; \
	else \
	  echo "make browser: needs root and apt-get (sudo apt-get install chromium chromium-driver)" >&2; exit 1; \
	fi

demo: install
	$(BIN)/zoo demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/realnvp_speed.py

clean:
	rm -rf $(VENV) runs build *.egg-info
