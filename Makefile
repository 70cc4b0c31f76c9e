# Fresh machine: `make demo` or `make test` is the whole set-up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Retries: a download cut off mid-file resumes instead of failing the set-up.
PIP := $(PY) -m pip install --quiet --retries 10 --resume-retries 10
DEMO_DIR ?= demo_data
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-fast lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --retries 10 --upgrade pip

# Extras (pyproject.toml): the demo uses every part of rlds_hub; the tests also need the peers
# they compare with and the dev tools. torch (rlds_hub.data.torch's tests): the CPU-only wheel
# when the package index has it (~14 s here), else PyPI's (with CUDA libraries, ~2.5 GB).
DEMO_EXTRAS := tf,beam,plots,envs,jax,server,learners,lerobot
TEST_EXTRAS := $(DEMO_EXTRAS),torch,remote,peers,dev
TORCH_CPU ?= torch==2.13.0+cpu

$(VENV)/.stamp-demo: pyproject.toml | $(PY)
	$(PIP) -e '.[$(DEMO_EXTRAS)]'
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(PY)
	$(PIP) '$(TORCH_CPU)' || echo "no $(TORCH_CPU): torch from PyPI"
	$(PIP) -e '.[$(TEST_EXTRAS)]'
	touch $@ $(VENV)/.stamp-demo

# LeRobot's own library judges the LeRobot bridge (tests, benchmarks). lerobot 0.4.4 (the newest
# release for Python 3.11) pins torch < 2.11, which PyPI has only as a CUDA build of ~3 GB to
# download (a CI run once failed on it): LeRobot lives in its own venv, with the torch and
# torchvision on this machine's disk (scripts/lerobot_venv.sh; ~2 min here), and the tests run
# it as a subprocess (RLDS_HUB_LEROBOT_PYTHON).
LEROBOT_VENV ?= .venv-lerobot
LEROBOT ?= lerobot==0.4.4
export RLDS_HUB_LEROBOT_PYTHON ?= $(abspath $(LEROBOT_VENV))/bin/python

$(LEROBOT_VENV)/.stamp: scripts/lerobot_venv.sh
	bash scripts/lerobot_venv.sh $(LEROBOT_VENV) '$(LEROBOT)'
	touch $@

# Debian packages for the service's tests (PostgreSQL, Chromium): see scripts/system_deps.sh.
$(VENV)/.stamp-system: scripts/system_deps.sh | $(PY)
	bash scripts/system_deps.sh
	touch $@

demo: $(VENV)/.stamp-demo
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/rlds-hub record --env dm_control/point_mass-easy --policy expert \
	    --episodes 20 --seed 0 --out $(DEMO_DIR)/point_mass_expert
	$(VENV)/bin/rlds-hub validate $(DEMO_DIR)/point_mass_expert
	$(VENV)/bin/rlds-hub info $(DEMO_DIR)/point_mass_expert --plot $(DEMO_DIR)/point_mass_expert.png
	$(VENV)/bin/rlds-hub stats $(DEMO_DIR)/point_mass_expert --runner DirectRunner --save --quiet
	$(VENV)/bin/rlds-hub reshard --input $(DEMO_DIR)/point_mass_expert \
	    --output $(DEMO_DIR)/point_mass_expert_array_record --file-format array_record \
	    --num-shards 4 --quiet
	$(VENV)/bin/rlds-hub validate $(DEMO_DIR)/point_mass_expert_array_record --quiet
	$(VENV)/bin/rlds-hub export --input $(DEMO_DIR)/point_mass_expert \
	    --output $(DEMO_DIR)/point_mass_expert_parquet --quiet
	$(VENV)/bin/rlds-hub export --format lerobot --input $(DEMO_DIR)/point_mass_expert \
	    --output $(DEMO_DIR)/point_mass_expert_lerobot --quiet
	$(VENV)/bin/rlds-hub train bc --dataset $(DEMO_DIR)/point_mass_expert \
	    --env dm_control/point_mass-easy --out $(DEMO_DIR)/runs/bc --steps 5000
	@echo "serving the demo datasets (the runs' evaluation episodes too): open the URL printed below; Ctrl-C stops"
	$(VENV)/bin/rlds-hub serve --root $(DEMO_DIR)

test: $(VENV)/.stamp-test $(VENV)/.stamp-system $(LEROBOT_VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -q

# The edit loop: the same checks without the tests marked slow (those over ~5 s; CI runs `make test`).
test-fast: $(VENV)/.stamp-test $(VENV)/.stamp-system $(LEROBOT_VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -q -m "not slow"

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.stamp-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.stamp-test
	$(PY) -m benchmarks.record_overhead

clean:
	rm -rf $(VENV) $(LEROBOT_VENV) $(DEMO_DIR) build *.egg-info
