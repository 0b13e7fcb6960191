# Two commands a reader needs:  make book   and   make test
# Both create .venv (Python 3.10+) and install everything they need first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
SHELL   = /bin/bash
.SHELLFLAGS = -eo pipefail -c

.PHONY: book test test-fast notebooks site bench student-book clean

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e ".[all]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## Build the book (executes every notebook, cached) and say where to open it.
book: $(STAMP)
	$(BIN)/jupyter-book build . -W --keep-going
	@echo "Open the book: file://$(CURDIR)/_build/html/index.html"

## Build the student edition: the same site with every solution removed.
student-book: $(STAMP)
	SLM_STUDENT_BUILD=1 $(BIN)/jupyter-book build . -W --keep-going --path-output _build/student
	@echo "Open the student book: file://$(CURDIR)/_build/student/_build/html/index.html"

## Run the whole test suite: unit tests, every notebook (nbval), the built site in a browser.
test: $(STAMP)
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

## Only the unit tests (no notebooks, no site).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests -m "not slow and not site"

bench: $(STAMP)
	$(BIN)/python -m slmlab bench

clean:
	rm -rf _build .jupyter_cache
