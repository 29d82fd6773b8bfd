# Two commands a user needs: `make demo` and `make test`. Both create .venv and install the
# pinned dependencies (requirements.lock) on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The main job: PPO on CartPole-v1 (pure-JAX backend), 300 updates of 4 envs x 128 steps, 2 seeds
# in one vmapped program; leaves runs/demo/{summary.json,metrics.csv,curve.png,checkpoint/}.
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/fnrl train ppo --env CartPole-v1 --steps 153600 --seeds 2 \
		--set normalize_observations=true --set normalize_rewards=true --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.returns_bench
	$(BIN)/python -m benchmarks.env_bench
	$(BIN)/python -m benchmarks.replay_bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
