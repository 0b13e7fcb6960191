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

.PHONY: book test test-fast notebooks site bench student-book clean

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e ".[all]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## Build the book from the stored notebook outputs (nothing is executed) and say where to open it.
book: $(STAMP)
	$(BIN)/jupyter-book build . -W --keep-going
	@echo "Open the book: file://$(CURDIR)/_build/html/index.html"

## Build the student edition: the same site, from the same stored outputs, without solutions.
student-book: $(STAMP)
	SLM_STUDENT_BUILD=1 $(BIN)/jupyter-book build . -W --keep-going --path-output _build/student
	@echo "Open the student book: file://$(CURDIR)/_build/student/_build/html/index.html"

## Re-execute the notebooks in place (fresh kernel each, cwd notebooks/) and store their outputs.
notebooks: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py --cell-timeout $(CELL_TIMEOUT) $(NB)

## Run the whole test suite: unit tests and the built site in a browser, then every notebook
## executed once by nbval, its outputs compared with the stored ones (the ten slowest are listed).
test: $(STAMP)
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q $(NBVAL) --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider notebooks

## Only the unit tests (no notebooks, no site).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests -m "not slow and not site"

bench: $(STAMP)
	$(BIN)/python -m slmlab bench

clean:
	rm -rf _build .jupyter_cache
