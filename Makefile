# edgeship: `make demo` and `make test` set up everything on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# Extras the full test suite needs (torch resolves to the local CPU wheel 2.13.0).
TEST_EXTRAS := convert,torch,audio,face,deploy,mcu,dev

.PHONY: demo test bench venv venv-test clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install when pyproject.toml changes (stamp files record what was installed).
$(VENV)/.stamp-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[convert]'
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[$(TEST_EXTRAS)]'
	touch $@ $(VENV)/.stamp-demo

# tflite-runtime 2.14 needs numpy<2, so its backend is tested from a side venv.
.venv-tflrt/.stamp: pyproject.toml
	test -x .venv-tflrt/bin/python || $(PY) -m venv .venv-tflrt
	.venv-tflrt/bin/python -m pip install -q "numpy<2" tflite-runtime==2.14.0
	.venv-tflrt/bin/python -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.stamp-demo
venv-test: $(VENV)/.stamp-test .venv-tflrt/.stamp

demo: venv
	$(BIN)/edgeship demo --out demo_out

test: venv-test
	$(BIN)/python -m pytest -q

bench: venv-test
	$(BIN)/python bench/predict_overhead.py
	$(BIN)/edgeship bench models/weights/shapes_cnn_int8.tflite --threads 1 --runs 200

clean:
	rm -rf $(VENV) .venv-tflrt demo_out .pytest_cache
