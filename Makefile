# spikeport needs Python 3.10 (lava-nc 0.10.0 fails on 3.11). Override with: make PYTHON=/path/to/python3.10
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= $(shell \
  for c in python3.10 "$$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.10"*/bin/python3.10; do \
    if [ -n "$$c" ] && "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then echo "$$c"; break; fi; \
  done)

.PHONY: demo test test-slow venv netx clean bench

$(VENV)/.installed: pyproject.toml
	@if [ ! -x "$(PY)" ]; then \
	  if [ -z "$(PYTHON)" ]; then \
	    echo "spikeport needs Python 3.10 (lava-nc 0.10.0 does not run on 3.11+)."; \
	    echo "Install it (e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv')"; \
	    echo "or point to it: make PYTHON=/path/to/python3.10 $(MAKECMDGOALS)"; exit 2; fi; \
	  echo "creating $(VENV) with $(PYTHON)"; "$(PYTHON)" -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed $(VENV)/.netx

# lava-dl 0.6.0 (netx: the Loihi 2 file format) pins torch < 2.4 in its metadata but its netx loader and
# slayer run with ours: installed without its dependencies (tests/test_netx.py checks it on Lava).
$(VENV)/.netx: $(VENV)/.installed
	$(PY) -m pip install -q --no-deps lava-dl==0.6.0 opencv-python-headless
	@touch $@

netx: $(VENV)/.netx

demo: $(VENV)/.installed
	$(VENV)/bin/spikeport demo --out runs/demo

test: $(VENV)/.installed $(VENV)/.netx
	$(PY) -m pytest -q -m 'not slow'

test-slow: $(VENV)/.installed $(VENV)/.netx
	$(PY) -m pytest -q -m slow

bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) benchmarks/lava_vs_emulator.py
	$(PY) benchmarks/train_speed.py --threads 1 --ratio-by cpu

clean:
	rm -rf $(VENV) runs .pytest_cache
