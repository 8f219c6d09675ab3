# The README commands. Each creates or reuses the virtual environment (scripts/setup_env.sh).
.PHONY: demo test compare

demo:
	@venv=$$(bash scripts/setup_env.sh) && "$$venv/bin/python" scripts/run_demo.py

compare:
	@venv=$$(bash scripts/setup_env.sh) && "$$venv/bin/python" scripts/run_compare.py

test:
	@venv=$$(bash scripts/setup_env.sh) && "$$venv/bin/python" -m pytest tests -q -p no:cacheprovider
