# One command each on a fresh machine: `make test`, `make demo`. Both create .venv when missing.
VENV ?= .venv
TPU_AOT ?= 1
# pytest workers (pytest-xdist); whole test files go to one worker, so a file's module fixtures are built once
TEST_WORKERS ?= 2
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TPU_STAMP := $(VENV)/.installed-tpu-aot

.PHONY: test demo install clean-demo

install: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# OpenAI's CLIP BPE vocabulary ships inside open_clip; --no-deps keeps torchvision out.
	$(PY) -m pip install -q --no-deps open_clip_torch==3.3.0
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# libtpu (the tpu-aot extra, ~700 MB) lets the --topology dry-run tests compile for TPU slices on this CPU;
# without it they are skipped. Only the tests install it (the demo does not need it); TPU_AOT=0 leaves it out.
$(TPU_STAMP): $(STAMP)
	if [ "$(TPU_AOT)" != 0 ]; then $(PY) -m pip install -q "$$(grep -o 'libtpu==[^"]*' setup.py)"; fi
	touch $(TPU_STAMP)

test: $(STAMP) $(TPU_STAMP)
	$(VENV)/bin/lint-imports  # the one-way layers (setup.cfg): an upward import fails here
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

demo: $(STAMP)
	$(VENV)/bin/sfr-jax demo

clean-demo:
	rm -rf checkpoints/demo
