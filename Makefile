# spikeport needs Python 3.10 (lava-nc 0.10.0 fails on 3.11). Override with: make PYTHON=/path/to/python3.10
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= $(shell \
  for c in python3.10 "$$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.10"*/bin/python3.10; do \
    if [ -n "$$c" ] && "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then echo "$$c"; break; fi; \
  done)

.PHONY: demo test test-slow test-peers verify venv netx clean bench

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
	$(PY) -m pip install -q --no-deps lava-dl==0.6.0 opencv-python-headless==5.1.0.95
	@touch $@

netx: $(VENV)/.netx

# Peers whose pins clash with ours get their own environment; tests/peers/ runs them in a subprocess.
# Sinabs 3.1.3 pins nir<=1.0.4 (ours: 1.0.8) and its to_nir needs nirtorch 1.0 (nirtorch 2.6 needs a newer
# nir). .venv-sinabs holds only those (a few hundred kB) and reaches torch, numpy and h5py through a .pth
# line naming .venv's site-packages, which Python appends after its own site-packages: its nir shadows ours.
SINABS_VENV ?= .venv-sinabs
SINABS_PKGS := sinabs==3.1.3 nir==1.0.4 nirtorch==1.0 pbr==7.1.3
SITE := import sysconfig; print(sysconfig.get_paths()["purelib"])

$(SINABS_VENV)/.installed: $(VENV)/.installed
	rm -rf $(SINABS_VENV)
	"$$($(PY) -c 'import os, sys; print(os.path.realpath(sys.executable))')" -m venv --without-pip $(SINABS_VENV)
	$(PY) -m pip --python $(SINABS_VENV)/bin/python install -q --no-deps $(SINABS_PKGS)
	$(PY) -c '$(SITE)' > "$$($(SINABS_VENV)/bin/python -c '$(SITE)')/spikeport-shared.pth"
	$(SINABS_VENV)/bin/python -c 'import nir, sinabs.layers, torch; assert nir.__version__ == "1.0.4", nir.__file__'
	@touch $@

# A failing peer test fails this target; so does "no tests collected" (pytest exit 5) and, under CI=true,
# a missing peer environment (tests/conftest.py need_peer_env).
test-peers: $(VENV)/.installed $(SINABS_VENV)/.installed
	SPIKEPORT_SINABS_VENV=$(abspath $(SINABS_VENV)) $(PY) -m pytest -q -m 'not slow' tests/peers

# Everything a README command needs, netx included (spikeport parity --backend netx runs lava-dl's loader).
demo: $(VENV)/.installed $(VENV)/.netx
	$(VENV)/bin/spikeport demo --out runs/demo

test: $(VENV)/.installed $(VENV)/.netx
	$(PY) -m pytest -q -m 'not slow' --ignore=tests/peers

# The headline figures of README.md and docs/, regenerated (reduced where a full run would not fit; each
# entry says how) and compared with what the docs print: fails on a stale or unreproducible figure.
# <= 40 min on 2 cores (benchmarks/claims.py; .ci/run runs it after make test and make test-peers).
verify: $(VENV)/.installed $(VENV)/.netx
	$(PY) benchmarks/claims.py

test-slow: $(VENV)/.installed $(VENV)/.netx $(SINABS_VENV)/.installed
	SPIKEPORT_SINABS_VENV=$(abspath $(SINABS_VENV)) $(PY) -m pytest -q -m slow

# SpikingJelly 2.x needs Python >= 3.11 and torch >= 2.6: the training-speed benchmark runs its workers in
# their own environment, with the same torch release as $(VENV) (like for like). Override: make SJ_PYTHON=...
SJ_VENV ?= .venv-sj
SJ_PYTHON ?= $(shell \
  for c in python3.11 "$$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.11"*/bin/python3.11; do \
    if [ -n "$$c" ] && "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; then echo "$$c"; break; fi; \
  done)

$(SJ_VENV)/.installed: $(VENV)/.installed
	@if [ -z "$(SJ_PYTHON)" ]; then echo "SpikingJelly 2.0 needs Python 3.11: make SJ_PYTHON=/path/to/python3.11 bench"; exit 2; fi
	rm -rf $(SJ_VENV)
	"$(SJ_PYTHON)" -m venv $(SJ_VENV)
	$(SJ_VENV)/bin/python -m pip install -q spikingjelly==2.0.0 \
	  "torch==$$($(PY) -c 'import torch; print(torch.__version__.split("+")[0])')"
	@touch $@

bench: $(VENV)/.installed $(SJ_VENV)/.installed
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) benchmarks/lava_vs_emulator.py
	$(PY) benchmarks/train_speed.py --rounds 3 --iters 10 --threads 2 --malloc keep --nets mlp mlp-direct conv \
	  --sj-python $(SJ_VENV)/bin/python
	$(PY) benchmarks/sparse_input.py --torch-csr

clean:
	rm -rf $(VENV) $(SINABS_VENV) $(SJ_VENV) runs .pytest_cache
