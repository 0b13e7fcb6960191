# Two commands a reader needs:  make book   and   make test
# Both create .venv (Python 3.10+) and install everything they need first.
# The notebooks are stored WITH their outputs: `make book` renders them as they are (no notebook
# runs), `make notebooks` re-executes them and stores new outputs, and `make test` executes each
# notebook once with nbval and checks that it still shows what is stored.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
SHELL   = /bin/bash
.SHELLFLAGS = -eo pipefail -c
# make notebooks NB=notebooks/21-first-tiny-slm.ipynb: one notebook (default: all of them).
NB ?=
# Seconds one cell may run, in make notebooks and in make test's nbval run. A notebook's total
# is limited too (180 s, see notebooks/conftest.py; SLM_NOTEBOOK_BUDGET=600 on a slow machine).
CELL_TIMEOUT ?= 120
# nbval mode: --nbval compares every cell's output with the stored one (tests/nbval_sanitize.cfg
# masks timings and the like). On a GPU/MPS machine, or a CPU whose numbers differ in the last
# digits, `make test NBVAL=--nbval-lax` executes the notebooks without comparing outputs.
NBVAL ?= --nbval

# The stored notebook outputs were computed with AVX2 kernels; an x86 CPU with AVX-512 (or AMX)
# sums the same products in another order, and GPTQ's rounding can turn that last-digit noise into
# a different quantized model (measured: notebook 73's W3 GPTQ row and its hidden claims changed
# on an AVX-512 EPYC). On x86-64, `make notebooks` and `make test` therefore pin PyTorch's and
# MKL's kernels to AVX2, which every such CPU runs; CPU_KERNELS= uses the CPU's best (as `make
# bench` always does: it measures speed). oneDNN is left alone: capped at AVX2 on a CPU with VNNI,
# its int8 matmul saturated (torch._int_mm no longer exact: tests/test_quant_methods.py).
CPU_KERNELS ?= $(if $(filter x86_64,$(shell uname -m)),avx2)
ifneq ($(CPU_KERNELS),)
test notebooks: export ATEN_CPU_CAPABILITY = $(CPU_KERNELS)
test notebooks: export MKL_ENABLE_INSTRUCTIONS = AVX2
endif

.PHONY: book test test-fast test-min notebooks site bench student-book clean

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e ".[all]"
	# llm-compressor: the library twin of slmlab.prune's SparseGPT and Wanda (tests/test_prune.py
	# loads the two files that hold them). Without its dependencies: it pins transformers<=5.17.
	$(BIN)/pip install -q -c constraints.txt --no-deps llmcompressor loguru
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## Build the book from the stored notebook outputs (nothing is executed) and say where to open it.
book: $(STAMP)
	$(BIN)/jupyter-book build . -W --keep-going
	@echo "Open the book: file://$(CURDIR)/_build/html/index.html"

## Build the student edition: the same site and notebooks, from the same stored outputs, without
## solutions (the exercises and the check cells that grade the reader's answers stay).
student-book: $(STAMP)
	SLM_STUDENT_BUILD=1 $(BIN)/jupyter-book build . -W --keep-going --path-output _build/student
	$(BIN)/python tools/student_notebooks.py --out _build/student/notebooks
	@echo "Open the student book: file://$(CURDIR)/_build/student/_build/html/index.html"
	@echo "Hand out the student notebooks: $(CURDIR)/_build/student/notebooks/"

## Re-execute the notebooks in place (fresh kernel each, cwd notebooks/) and store their outputs.
notebooks: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py --cell-timeout $(CELL_TIMEOUT) $(NB)

## Run the whole test suite: ruff (lint and format) over package, tests and notebooks, unit tests and the built site in a browser, then every notebook
## executed once by nbval, its outputs compared with the stored ones (the ten slowest are listed).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q $(NBVAL) --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider notebooks

## Only the unit tests (no notebooks, no site).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests -m "not slow and not site"

## The unit tests in a second environment, .venv-min, with the lowest versions pyproject.toml
## allows (constraints-min.txt, which tools/min_versions.py writes from its lower bounds; torch is
## CI's CPU build). Left out: the tests that build the book (-m site: they need the book extra)
## and test_quant_claims.py (slow, and torch alone: the same torch as .venv's, run by make test).
VENV_MIN  ?= .venv-min
STAMP_MIN  = $(VENV_MIN)/.installed
$(STAMP_MIN): pyproject.toml constraints-min.txt
	$(PYTHON) tools/min_versions.py --check
	rm -rf $(VENV_MIN)
	$(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/pip install -q --upgrade pip
	# torch first, pinned: the CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(VENV_MIN)/bin/pip install -q -c constraints-min.txt torch
	$(VENV_MIN)/bin/pip install -q -c constraints-min.txt -e ".[hf,test]"
	touch $(STAMP_MIN)

test-min: $(STAMP_MIN)
	$(VENV_MIN)/bin/python -m pytest -q tests -m "not site" --ignore=tests/test_quant_claims.py \
	  -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m slmlab bench

clean:
	rm -rf _build .jupyter_cache
