# The README commands. Each creates or reuses the virtual environment (scripts/setup_env.sh).
.PHONY: demo test compare

demo:
	@venv=$$(bash scripts/setup_env.sh) && "$$venv/bin/python" scripts/run_demo.py

compare:
	@venv=$$(bash scripts/setup_env.sh) && "$$venv/bin/python" scripts/run_compare.py

# Two pytest workers (pytest-xdist), one file each at a time, the longest files first (tests/conftest.py,
# LONGEST_FIRST), each torch process on one thread: two threads per process on two busy cores wait on each other
# (docs/demo.md#threads-and-the-demo-under-load). TEST_WORKERS=0 runs the files one after the other in this process.
# A worker that goes down fails the run, naming its test (--max-worker-restart=0): pytest-xdist 3.8's replacement
# worker can hang a loadfile run. The browser of the real-browser test is installed first, when it is missing
# (scripts/install_browser.sh): the tests install nothing.
TEST_WORKERS ?= 2
test:
	@venv=$$(bash scripts/setup_env.sh) && bash scripts/install_browser.sh && \
		OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} "$$venv/bin/python" -m pytest \
		tests -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--max-worker-restart=0
