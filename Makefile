# residual-suite: every target bootstraps .venv first, so `make demo` and `make test`
# are the only two commands a user types on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: venv data demo test test-gpu gpu-check test-all bench lint clean

venv: $(STAMP) data

# Tested versions live in constraints.txt (pip freeze of the stack CI runs).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

# Fashion-MNIST (the classification default and the detection scenes' objects) is a
# Debian package; install it when apt is usable, otherwise say the one command to run.
data:
	@if [ -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null)) \
		|| echo "note: could not install dataset-fashion-mnist; tests fall back to scikit-learn digits"; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null || true; \
	else \
		echo "note: Fashion-MNIST is missing; run: sudo apt-get install dataset-fashion-mnist"; \
	fi

demo: venv
	$(BIN)/python -m tasks.demo

# Two pytest workers, one per core (pytest-xdist): the suite is mostly single-threaded tiny models,
# so this cuts its wall time by about 40% on 2 cores (819 s -> 471 s, 2-core dev machine). TEST_WORKERS=0 runs it in
# one process.
TEST_WORKERS ?= 2
test: venv
	$(BIN)/python -m pytest -m "not gpu and not slow" -q -n $(TEST_WORKERS) --dist worksteal

test-gpu: venv
	$(BIN)/python -m pytest -m gpu -q

# The first thing to run on a GPU (<= 8 minutes): ResNet-50 ours vs torchvision, every task's loader vs
# step, compile health, box-decode precision, NCCL smoke. `--dry-run` checks the script on a CPU.
gpu-check: venv
	$(BIN)/python benchmarks/gpu_check.py

test-all: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python benchmarks/backbone_throughput.py

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
