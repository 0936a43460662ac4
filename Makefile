# The two commands of the README: `make demo` (the main job) and `make test`.
# Each does its own set-up on a fresh machine: a virtual environment, the pip install,
# and the embedded Fashion-MNIST data (Debian package dataset-fashion-mnist).
PYTHON ?= python3
VENV ?= .venv
FMNIST ?= /usr/share/datasets/fashion-mnist
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench data venv tools detectron2

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --progress-bar off -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Installs Debian's dataset-fashion-mnist when the files are missing and apt is usable;
# otherwise says how to get them (or pass FMNIST=/path/to/idx/files).
data:
	@if [ -f "$(FMNIST)/train-images-idx3-ubyte.gz" ] || [ -f "$(FMNIST)/train-images-idx3-ubyte" ]; then exit 0; fi; \
	if [ "$(FMNIST)" = /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  echo "Fashion-MNIST missing: installing Debian's dataset-fashion-mnist"; \
	  $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null; } && exit 0; \
	fi; \
	echo "Fashion-MNIST not found in $(FMNIST)." >&2; \
	echo "Install it with 'sudo apt-get install dataset-fashion-mnist', or put the four IDX files" >&2; \
	echo "(train-images-idx3-ubyte.gz, ...) in a folder and run with FMNIST=/that/folder." >&2; \
	exit 1

# git: the hub tests serve local git repositories through a Hub mirror (olah, in the dev extra).
tools:
	@command -v git >/dev/null && exit 0; \
	if command -v apt-get >/dev/null; then \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  echo "git missing: installing Debian's git"; \
	  $$SUDO apt-get install -y -q git >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q git >/dev/null; } && exit 0; \
	fi; \
	echo "git not found: install it (Debian: apt-get install git); the hub tests need it" >&2; exit 1

# detectron2, the engine of the papers' detection numbers, is not on PyPI: it is built from
# source against the venv's torch, once per machine (the wheel is cached outside the clone, in
# ~/.cache/siamhub/wheels, keyed by source, torch and Python), and installed into the venv.
# The default source is the vendored archive beside the clone (../shared/vendor/); without it
# the detectron2 tests skip. DETECTRON2_SOURCE=<git URL | archive | folder> names another.
DETECTRON2_SOURCE ?= $(firstword $(wildcard $(abspath $(CURDIR)/../shared/vendor)/detectron2-*.tar.gz) $(abspath $(CURDIR)/../shared/vendor)/detectron2-*.tar.gz)
detectron2: $(STAMP)
	$(PY) -m transfer.detection.install_detectron2 --if-present --source "$(DETECTRON2_SOURCE)"

demo: $(STAMP) data
	$(PY) pretrain/run.py data.root=$(FMNIST)

# The order is shuffled on every run (pytest-randomly prints its seed; replay an order with
# PYTEST_ARGS="--randomly-seed=N", keep the file order with
# PYTEST_ARGS="-p no:randomly").
PYTEST_ARGS ?=
test: $(STAMP) data tools detectron2
	FMNIST=$(FMNIST) $(PY) -m pytest -m "not slow and not gpu" -q $(PYTEST_ARGS)

test-slow: $(STAMP) data tools detectron2
	FMNIST=$(FMNIST) $(PY) -m pytest -m "slow" -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(STAMP) data
	$(PY) -m pip install --quiet --progress-bar off -e '.[bench]'
	$(PY) benchmarks/pretrain_throughput.py
	$(PY) benchmarks/data_pipeline.py
	$(PY) benchmarks/linear_probe.py  # the latest runs/ encoder, else the recipe's random init
