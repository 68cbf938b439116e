# featint task runner. The two commands a newcomer needs:
#   make run    set up .venv, then train and compare the models on the next-movie task
#   make test   set up .venv, then lint, unit tests (pair sync included), notebooks, book
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed before the package so pip does not pick a multi-GB CUDA build; 2.13.0 is
# the CPU wheel this project is developed with. Override with e.g. `make TORCH=torch setup`.
TORCH ?= torch==2.13.0
# The comparison's record ships with the package (featint/records): `make run` rewrites it.
RESULTS ?= featint/records/comparison
BOOK_FLAGS := --config book/_config.yml --toc book/_toc.yml -W -n --keep-going

.PHONY: setup setup-scale run bench scale tune window peers ablation test lint unit fast \
	notebooks book lab outputs clean

setup: $(VENV)/.ready

# The wheelhouse holds the wheels of featint's dependencies (torch included), so that the
# test of an installed featint (tests/test_installed.py) builds a fresh environment offline.
$(VENV)/.ready: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m pip download --quiet --dest $(VENV)/wheelhouse "$(TORCH)" ".[kernel]"
	touch $@

# TorchRec for chapter 10: the `scale` extra of pyproject.toml (tests/test_packaging.py keeps
# these pins the same). torchrec's metadata asks for the CUDA build fbgemm-gpu, so torchrec goes
# in alone with --no-deps, after fbgemm-gpu-cpu and its small requirements; naming the torch
# that is installed keeps pip from replacing it.
SCALE_DEPS := fbgemm-gpu-cpu==1.8.0 tensordict torchmetrics==1.0.3 pyre-extensions iopath
SCALE_NODEPS := torchrec==1.8.0
setup-scale: $(VENV)/.scale

$(VENV)/.scale: $(VENV)/.ready
	$(BIN)/python -m pip install $(SCALE_DEPS) \
		"torch==$$($(BIN)/python -c 'import torch; print(torch.__version__.split("+")[0])')"
	$(BIN)/python -m pip install --no-deps $(SCALE_NODEPS)
	touch $@

# All registered models, seeds 0 1 2, the shared budget (featint/config.py) and each model's
# tuned setting; writes the comparison's record (featint/records/comparison). Extra flags
# through COMPARE_FLAGS, e.g. `make run COMPARE_FLAGS=--resume` after an interruption.
run: setup
	$(BIN)/featint compare --out $(RESULTS) $(COMPARE_FLAGS)

# Training throughput, full test ranking time, peak memory and size per model against the
# targets, FM's naive vs sum-square pairwise term, and the one-seed time of the main command
# read from the comparison's record (`make bench BENCH_FLAGS="--main run"` times it here instead: long).
# Quote figures from an idle machine.
bench: setup
	$(BIN)/python benchmarks/bench.py $(BENCH_FLAGS)

# Past MovieLens 100K: epoch, full ranking and memory of every model at ML-1M and ML-20M size
# (synthetic, CPU time), and how they grow with users, movies and history length; writes
# results/scale/scale.json (about half an hour on 2 cores). `python benchmarks/scale.py
# --markdown` prints the README's tables from it.
scale: setup
	$(BIN)/python benchmarks/scale.py $(SCALE_FLAGS)

# The same tuning budget for every model: each setting of its search space (featint/tuning.py)
# trained with seed 0 and scored on validation; every trial goes to featint/records/tuning,
# which training reads (long; trials on record are not rerun;
# `make tune TUNE_FLAGS="--device cuda"` on a GPU).
tune: setup
	$(BIN)/python benchmarks/tune.py $(TUNE_FLAGS)

# Protocol v3's history window, chosen on validation with FM and MF over seeds 0-2
# (featint/records/protocol/window.json; book/protocol.md shows the curve).
window: setup
	$(BIN)/python benchmarks/window.py $(WINDOW_FLAGS)

# The libraries a reader would use instead (DeepCTR-Torch, pytorch-fm) on featint's task
# under featint's rules, every twin beside its featint model (benchmarks/peers.py; writes
# featint/records/peers; long). The optional `peers` extra is installed first, with the installed torch
# held fixed so pip never swaps it. Flags through PEERS_FLAGS, e.g. "--twins deepctr_deepfm".
peers: $(VENV)/.peers
	$(BIN)/python benchmarks/peers.py $(PEERS_FLAGS)

$(VENV)/.peers: $(VENV)/.ready pyproject.toml
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/torch.txt
	$(BIN)/python -m pip install -e ".[peers]" -c $(VENV)/torch.txt
	touch $@

# featint's DeepFM and NFM moved one training detail at a time towards DeepCTR-Torch's, three
# seeds each (benchmarks/ablation.py; writes featint/records/ablation; long).
ablation: setup
	$(BIN)/python benchmarks/ablation.py $(ABLATION_FLAGS)

# Everything, the book built once (by tests/test_book.py, inside `unit`); the optional extras
# the tests exercise are installed first: the peers (their smoke test) and TorchRec (the
# two-process test and chapter 10).
test: setup $(VENV)/.peers setup-scale lint precommit unit notebooks

lint: setup
	$(BIN)/ruff check .

unit: setup
	$(BIN)/pytest tests

# The fast unit tests, about a minute: what to run while you work (CONTRIBUTING.md).
fast: setup
	OMP_NUM_THREADS=1 $(BIN)/pytest tests -m "not slow" -q

# Every notebook executes top to bottom in quick mode; asserts inside the notebooks check the
# numbers, so outputs are not compared (--nbval-lax).
notebooks: setup
	FEATINT_QUICK=1 OMP_NUM_THREADS=1 TQDM_DISABLE=1 MPLBACKEND=Agg \
		$(BIN)/pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 notebooks

# The book renders the outputs stored in the notebooks (nothing is executed); MathJax comes
# from the sphinx-mathjax-offline package and is copied into the site, so it reads offline.
book: setup
	rm -rf _build/html
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)

# Re-execute every notebook in full mode and store its outputs (slow: trains every model).
# Chapters read their trained models from the model cache (featint/training.py) that `make run`
# fills, so after `make run` this mostly ranks and plots. No progress bars in stored outputs.
outputs: setup
	for nb in notebooks/*.ipynb; do \
		TQDM_DISABLE=1 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.record_timing=False $$nb \
		&& $(BIN)/jupytext --sync $$nb || exit 1; done

# JupyterLab on the repository, opened at the notebooks; jupytext keeps each .py twin in sync.
lab: setup
	$(BIN)/jupyter lab notebooks

# The pre-commit hooks (ruff, jupytext pair sync) on every tracked file. They are local
# `language: system` hooks, so they run offline with the tools of $(VENV).
.PHONY: precommit
precommit: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pre-commit run --all-files --show-diff-on-failure

# Build outputs only: the records in featint/records are the project's results, kept.
clean:
	rm -rf _build .pytest_cache
