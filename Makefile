# edgeship: `make demo` and `make test` set up everything on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# Extras the full test suite needs (torch resolves to the local CPU wheel 2.13.0).
TEST_EXTRAS := convert,torch,audio,speech,face,deploy,mcu,sign,dev

.PHONY: demo test bench bench-convert bench-kws fuzz soak venv venv-test clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install when pyproject.toml changes (stamp files record what was installed).
# The demo: converters (convert), FLAC clips (audio), the face app (face), TFLM arena (mcu).
DEMO_EXTRAS := convert,audio,face,mcu

$(VENV)/.stamp-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[$(DEMO_EXTRAS)]'
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

# onnx2tf and litert-torch pin packages that would break the main venv (converters/onnx_tflite.py,
# converters/torch_tflite.py say why), so each lives in a side folder made with `pip --target
# --no-deps` that only the tests' subprocesses put on PYTHONPATH (tests/test_overlay_exporters.py);
# torch, TensorFlow and numpy always come from the main venv. Non-fatal: a failed install leaves no
# stamp and those tests skip with the reason. The stamp holds the pin list, so editing it rebuilds.
# xdsl and torchao ship top-level tests/, test/, docs/, scripts/ folders that would shadow ours: pruned.
ONNX2TF_PINS := onnx2tf==1.29.24 tf-keras==2.21.0 onnx-graphsurgeon==0.6.1 sne4onnx==2.0.1 \
	sng4onnx==2.0.1 psutil==7.2.2
LITERT_TORCH_PINS := litert-torch==0.10.0 litert-converter==0.5.0 ai-edge-quantizer==0.10.0 \
	anyio==4.14.2 click==8.5.1 fire==0.7.1 h11==0.16.0 hf-xet==1.8.0 httpcore2==2.16.2 httpx2==2.16.2 \
	huggingface-hub==2.4.0 immutabledict==4.2.1 jax==0.10.2 jaxlib==0.10.2 jaxtyping==0.3.11 \
	kagglehub==1.0.2 kagglesdk==0.1.37 lark==1.3.1 litert-lm-builder==0.18.1 multipledispatch==1.0.0 \
	ordered-set==4.1.0 regex==2026.11.15 safetensors==0.8.0 scipy==1.17.1 sentencepiece==0.2.3 \
	tabulate==0.10.0 tokenizers==0.23.3 torchao==0.18.0 transformers==5.23.0 truststore==0.10.5 \
	wadler-lindig==0.1.8 xdsl==0.28.0
OVERLAY_PRUNE := tests test docs scripts

# A stamp whose pins differ from the Makefile's is phony, so its recipe runs again.
ifneq ($(strip $(shell cat .overlay-onnx2tf/.stamp 2>/dev/null)),$(strip $(ONNX2TF_PINS)))
.PHONY: .overlay-onnx2tf/.stamp
endif
ifneq ($(strip $(shell cat .overlay-litert-torch/.stamp 2>/dev/null)),$(strip $(LITERT_TORCH_PINS)))
.PHONY: .overlay-litert-torch/.stamp
endif

.overlay-onnx2tf/.stamp: | $(BIN)/python
	-rm -rf $(@D) && $(BIN)/python -m pip install -q --no-deps --target $(@D) $(ONNX2TF_PINS) \
		&& cd $(@D) && rm -rf $(OVERLAY_PRUNE) && echo '$(strip $(ONNX2TF_PINS))' > .stamp

.overlay-litert-torch/.stamp: | $(BIN)/python
	-rm -rf $(@D) && $(BIN)/python -m pip install -q --no-deps --target $(@D) $(LITERT_TORCH_PINS) \
		&& cd $(@D) && rm -rf $(OVERLAY_PRUNE) && echo '$(strip $(LITERT_TORCH_PINS))' > .stamp

.PHONY: overlays
overlays: .overlay-onnx2tf/.stamp .overlay-litert-torch/.stamp

venv: $(VENV)/.stamp-demo
venv-test: $(VENV)/.stamp-test .venv-tflrt/.stamp .overlay-onnx2tf/.stamp .overlay-litert-torch/.stamp

demo: venv
	$(BIN)/edgeship demo --out demo_out

# Refresh README.md's demo table and docs/demo_*.png from a demo run (demo_out/).
.PHONY: readme-figures
readme-figures: demo
	$(BIN)/python bench/readme_figures.py demo_out

test: venv-test
	$(BIN)/python -m pytest -q

bench: venv-test
	$(BIN)/python bench/predict_overhead.py
	$(BIN)/python bench/predict_overhead.py --kws --rounds 3000
	$(BIN)/python bench/load_speed.py
	$(BIN)/edgeship bench models/weights/shapes_cnn_int8.tflite --threads 1 --runs 200

# YuNet and UltraFace (ONNX) -> calibrated int8 TFLite on LFW faces -> Edge TPU check, parity per output.
.PHONY: bench-onnx-int8
bench-onnx-int8: venv-test
	PYTHONPATH=.overlay-onnx2tf $(BIN)/python bench/onnx_int8_detectors.py --n 100 -o /tmp/edgeship-onnx-int8 \
		--only yunet --summary bench/results/onnx_int8_yunet.json
	PYTHONPATH=.overlay-onnx2tf $(BIN)/python bench/onnx_int8_detectors.py --n 100 -o /tmp/edgeship-onnx-int8 \
		--only ultraface --calibration-method percentile --summary bench/results/onnx_int8_ultraface.json

# Rebuild the zoo keyword-spotting model (models/weights/kws_dscnn*) from ../shared; see models/cards/kws_dscnn.md.
.PHONY: train-kws kws-figures
train-kws: venv-test
	nice $(BIN)/python bench/train_kws.py zoo install

# The synthetic-only figures of the model card (12 classes; --keywords marvin,sheila,house).
kws-figures: venv-test
	nice $(BIN)/python bench/train_kws.py synth synth-seeds synth-distill keywords voices

# The keyword app's noise and false-alarm figures (examples/keyword_spotting/README.md), a few minutes.
bench-kws: venv-test
	$(BIN)/python bench/kws_snr_accuracy.py --out bench/results/kws_snr_accuracy.json
	$(BIN)/python bench/listen_memory.py --hours 1 --out bench/results/listen_memory.json
	$(BIN)/python bench/kws_false_alarms.py --model mlperf_kws_int8 --out bench/results/kws_false_alarms_mlperf_kws_int8.json
	$(BIN)/python bench/kws_false_alarms.py --model mlperf_kws_int8 --snr 10:30 \
		--out bench/results/kws_false_alarms_mlperf_kws_int8_snr10-30.json
	$(BIN)/python bench/kws_false_alarms.py --model kws_dscnn_int8 --zoo-validation-only \
		--out bench/results/kws_false_alarms_kws_dscnn_int8.json
	$(BIN)/python bench/kws_false_alarms.py --model kws_dscnn_int8 --zoo-validation-only --snr 10:30 \
		--out bench/results/kws_false_alarms_kws_dscnn_int8_snr10-30.json

# Long fuzzing (issue 11): 50,000 mutants per format; crashing inputs land in fuzz_out/crashes.
fuzz: venv-test
	$(BIN)/python bench/fuzz.py --n 50000 --out fuzz_out

# 8 threads x 10,000 predicts on one shared Model (TFLite and ONNX): wrong answers, errors, throughput;
# then 1 h of generated audio through the KWS streaming path: RSS growth <= 5 MB, no dropped chunk.
soak: venv-test
	$(BIN)/python bench/soak_threads.py --threads 8 --calls 10000
	$(BIN)/python bench/soak_kws_stream.py --audio-s 3600

clean:
	rm -rf $(VENV) .venv-tflrt .overlay-onnx2tf .overlay-litert-torch demo_out fuzz_out .pytest_cache

# issue 12: edgeship convert vs the raw TFLiteConverter (MobileNetV2 fp32/int8, MLPerf KWS int8), side by side
bench-convert: venv-test
	nice -n 0 $(BIN)/python bench/convert_speed.py --repeats 2
