# Long-running checks that are not part of the CI test run.
#   make soak   the engine against the simulated exchange under faults for $(MINUTES) minutes,
#               then $(CRASH_CYCLES) kill -9 / restart cycles; prints the tables, exit 1 on FAIL
#   make bench  the benchmarks: figures and a verdict against each target (pytest-benchmark,
#               the performance tests with --benchmark-enable, the kill switch / sim scripts)
PYTHON ?= python
MINUTES ?= 30
SEED ?= 7
CRASH_CYCLES ?= 40

.PHONY: soak bench

soak:
	$(PYTHON) scripts/soak.py --minutes $(MINUTES) --seed $(SEED) --crash-cycles $(CRASH_CYCLES)

bench:
	$(PYTHON) -m pytest tests/performance --benchmark-enable -q -s
	$(PYTHON) scripts/bench_kill_switch.py
	$(PYTHON) scripts/bench_sim.py
