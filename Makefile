# The verbs users type. Set-up is automatic: every target depends on the virtualenv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
EIE    := $(VENV)/bin/eie
STAMP  := $(VENV)/.installed
MNIST  ?= $(EIE_MNIST_DIR)

.PHONY: all setup test sim sim-mnist sim-board fuzz demo verilog synth bench lint clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## make test: the fast test suite (what CI runs)
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadgroup

## make sim: the main job -- verify the RTL (AlexNet FC layers at 64 PEs, MNIST slice) vs golden
sim: $(STAMP)
	$(EIE) sim $(if $(MNIST),--data $(MNIST))

## make sim-mnist: all 10,000 MNIST test images through the RTL
sim-mnist: $(STAMP)
	$(EIE) sim --layers none --mnist 10000 $(if $(MNIST),--data $(MNIST))

## make sim-board: the whole system behind its UART under Verilator (cocotb + cocotbext-uart, the
## board's driver code): bad input over the link, LeNet-300-100 loaded and 100 MNIST images
sim-board: $(STAMP)
	@test -n "$(MNIST)" || { echo "make sim-board: set EIE_MNIST_DIR (or MNIST=<dir>) to the MNIST files"; exit 2; }
	@test -f build/lenet300/model.eie || { echo "make sim-board: no build/lenet300/model.eie (make demo)"; exit 2; }
	EIE_MNIST_DIR=$(MNIST) $(PY) -m pytest -q -s -p no:xdist -m slow tests/test_uart_bridge.py

## make fuzz: 1,000 random layer configurations through the RTL
fuzz: $(STAMP)
	$(EIE) sim --fuzz 1000

## make demo: compress LeNet-300-100 on real MNIST (needs EIE_MNIST_DIR or MNIST=<dir>)
demo: $(STAMP)
	$(EIE) compress --model lenet300 $(if $(MNIST),--data $(MNIST)) --out build/lenet300

## make verilog: the accelerator's Verilog (CONFIG=<preset or JSON file>, default eie64)
verilog: $(STAMP)
	$(EIE) verilog --config $(or $(CONFIG),eie64) --out build/eie.v

## make synth: Yosys + nextpnr-ecp5 resources and Fmax (CONFIG=<preset or JSON file>, default tiny)
synth: $(STAMP)
	$(EIE) synth --config $(or $(CONFIG),tiny) --xilinx --out build/synth

## make formal: SymbiYosys proofs of the broadcast network (queue, LNZD tree, central control)
.PHONY: formal
formal: $(STAMP)
	$(EIE) formal

## make bench: benchmarks that print figures (slow, not in CI)
bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check sw hw sim eie tests

clean:
	rm -rf build sim_build .pytest_cache
