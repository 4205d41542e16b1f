# tradeloop: `make demo` runs a backtest on the bundled sample (the core install is enough);
# `make test` installs every extra and runs everything.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean constraints

# Every install takes its versions from constraints.txt, so a new upstream release cannot
# change what CI runs; `make constraints` regenerates the file on purpose.
$(BIN)/tradeloop: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11+)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $@

$(VENV)/.dev: $(BIN)/tradeloop pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,all]'
	@touch $@

constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --upgrade pip
	.venv-constraints/bin/python -m pip install --quiet torch==2.13.0
	.venv-constraints/bin/python -m pip install --quiet -e '.[dev,all]'
	{ echo "# Pinned versions for 'make demo' and 'make test' (pip install -c constraints.txt)."; \
	  echo "# Regenerate on purpose: make constraints (a fresh venv with every extra, then pip freeze)."; \
	  .venv-constraints/bin/python -m pip freeze --exclude-editable | grep -v '^tradeloop'; \
	} > constraints.txt
	rm -rf .venv-constraints

demo: $(BIN)/tradeloop
	$(BIN)/tradeloop backtest --strategy sma_cross --data samples/BTC_USDT-1h.csv.gz \
		--timeframe 4h --fee 0.001 --param fast=10 --param slow=30 --balance 10000 \
		--out output/demo

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

test: $(VENV)/.dev
	./scripts/ensure_services.sh
	./scripts/ensure_chromium.sh
	./scripts/ensure_tools.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q --doctest-modules src tests

bench: $(VENV)/.dev
	$(BIN)/python bench/backtest_throughput.py

clean:
	rm -rf $(VENV) output .pytest_cache .ruff_cache .mypy_cache
