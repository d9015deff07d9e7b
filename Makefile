# The two commands a new user runs (as root, on Debian/Ubuntu):
#   make demo   set everything up and show pycni wiring a network namespace
#   make test   set everything up and run the whole test suite
.PHONY: setup demo test unit integration lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	.venv/bin/python -m pytest -n 2 tests
	@echo "== the plugin integration tests again, every pycni plugin call through a warm executor"
	PYCNI_TEST_EXECUTOR=1 .venv/bin/python -m pytest -n 2 tests/integration

unit: setup
	.venv/bin/python -m pytest -q tests/unit

integration: setup
	.venv/bin/python -m pytest -q -n 2 tests/integration

lint: setup
	.venv/bin/ruff check pycni tests benchmarks scripts
	.venv/bin/mypy
	.venv/bin/lint-imports
	.venv/bin/python scripts/check_module_size.py

bench: setup
	.venv/bin/python benchmarks/run.py
	.venv/bin/python benchmarks/cold.py
	.venv/bin/python benchmarks/policy.py
	.venv/bin/python benchmarks/containerd.py
	.venv/bin/python benchmarks/dhcp.py
	.venv/bin/python benchmarks/wireguard.py
