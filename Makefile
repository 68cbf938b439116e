# featint task runner. The two commands a newcomer needs:
#   make run    set up .venv, then train and compare the models on the next-movie task
#   make test   set up .venv, then lint, unit tests (pair sync included), notebooks, book
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed before the package so pip does not pick a multi-GB CUDA build; 2.13.0 is
# the CPU wheel this project is developed with. Override with e.g. `make TORCH=torch setup`.
TORCH ?= torch==2.13.0
RESULTS ?= results
BOOK_FLAGS := --config book/_config.yml --toc book/_toc.yml -W -n --keep-going

.PHONY: setup run test lint unit notebooks book lab outputs clean

setup: $(VENV)/.ready

$(VENV)/.ready: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

run: setup
	$(BIN)/featint compare --out $(RESULTS)

test: setup lint unit notebooks book

lint: setup
	$(BIN)/ruff check .

unit: setup
	$(BIN)/pytest tests

# Every notebook executes top to bottom in quick mode; asserts inside the notebooks check the
# numbers, so outputs are not compared (--nbval-lax).
notebooks: setup
	FEATINT_QUICK=1 OMP_NUM_THREADS=1 TQDM_DISABLE=1 MPLBACKEND=Agg \
		$(BIN)/pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 notebooks

book: setup
	rm -rf _build/html
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)

# Re-execute every notebook in full mode and store its outputs (slow: trains every model).
outputs: setup
	for nb in notebooks/*.ipynb; do \
		MPLBACKEND=Agg $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.record_timing=False $$nb \
		&& $(BIN)/jupytext --sync $$nb || exit 1; done

lab: setup
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf _build $(RESULTS) .pytest_cache
