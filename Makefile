# Two commands for a newcomer:   make run   (set up, index docs/, start the UI)   make test
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: run test test-fast setup index eval bench tune encoder reranker ranker accuracy clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch first, from the pinned CPU build, so nothing pulls a CUDA build
	$(VENV)/bin/pip install --quiet "torch==2.13.0"
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/qa serve

index: setup
	$(VENV)/bin/qa index

test: setup
	bash scripts/browser-deps.sh
	$(VENV)/bin/python -m pytest -q

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow and not browser"

# the performance harness: `make bench` (quick, < 5 min) or `make bench MODE=full` (1M clauses, ~1 h)
MODE ?= quick
bench: setup
	$(VENV)/bin/qa models build
	$(VENV)/bin/python bench/run.py --$(MODE)

# fusion weights and the no-match line, chosen on the dev splits only -> bench/results/{tuning,nomatch}.json
tune: setup
	$(VENV)/bin/qa models build
	$(VENV)/bin/python bench/tune.py
	$(VENV)/bin/python bench/nomatch.py

# the encoder's LoRA adapter -> qa/models/e5-policy (~15 min on 2 cores). XQUAD: a folder holding
# xquad.zh.json and xquad.en.json from github.com/google-deepmind/xquad (CC BY-SA 4.0)
XQUAD ?= ../xquad
encoder: setup
	$(VENV)/bin/python bench/train_encoder.py --xquad $(XQUAD) --out qa/models/e5-policy

# the cross-encoder second stage -> qa/models/cross-policy, as shipped (qa/models/cross-policy/card.json):
# groups mined by our retriever (~5 min), the float16 base cut to their word pieces (what the shipped
# adapter was trained over), then training: ~70 s on a GPU (DEVICE=cuda), hours on 2 CPU cores (a
# checkpoint every 20 steps: stopped, the same command goes on from it); chosen on dev by
# bench/cross_tune.py and bench/cross_unseen.py
DEVICE ?= cpu
reranker: setup
	$(VENV)/bin/python bench/train_reranker.py mine --xquad $(XQUAD) --out bench/.cache/reranker-groups.json
	$(VENV)/bin/python bench/train_reranker.py pack --groups bench/.cache/reranker-groups.json \
		--out bench/.cache/reranker-model
	$(VENV)/bin/python bench/train_reranker.py train --groups bench/.cache/reranker-groups.json \
		--model bench/.cache/reranker-model --out qa/models/cross-policy --layers 12 --epochs 3 --batch 16 \
		--device $(DEVICE) --checkpoint bench/.cache/reranker-checkpoint.pt

# the learned ranker, trained on the dev parts only -> qa/models/ranker.{txt,json} (~10 min with built indexes);
# also judges the newest feature groups by leaving each out, and the monotone constraints by dropping them
# (stopping part and 5-fold cross-validation)
# -> bench/results/ranker-features.json
WITHOUT := asked,asked_gap;doc_share,doc_gap
ranker: setup
	$(VENV)/bin/python bench/train_ranker.py --limit 0 --cv 5 --without "$(WITHOUT)" --unconstrained

# the README's accuracy figures, on the test splits -> bench/results/accuracy/*/report.json
SHARED ?= ../shared
RESULTS := bench/results/accuracy
accuracy: setup
	$(VENV)/bin/qa models build
	$(VENV)/bin/qa eval --split test --passages --out $(RESULTS)/labelled-test
	$(VENV)/bin/qa eval --questions docs/eval/reading.jsonl --split test --passages --out $(RESULTS)/reading-test
	$(VENV)/bin/qa eval --questions docs/eval/outside.jsonl --split test --passages --out $(RESULTS)/outside-test
	$(VENV)/bin/qa eval --benchmark $(SHARED)/benchmarks/cmrc2018 --split test --passages --out $(RESULTS)/cmrc2018-test
	$(VENV)/bin/qa eval --benchmark $(SHARED)/benchmarks/drcd_zhs --split test --passages --out $(RESULTS)/drcd_zhs-test
	$(VENV)/bin/qa eval --benchmark $(SHARED)/benchmarks/cmrc2018 --split all --out $(RESULTS)/cmrc2018-all
	$(VENV)/bin/qa eval --benchmark $(SHARED)/benchmarks/drcd_zhs --split all --out $(RESULTS)/drcd_zhs-all
	$(VENV)/bin/python bench/long_documents.py --shared $(SHARED)
	$(VENV)/bin/python bench/accuracy.py --write

clean:
	rm -rf $(VENV) index/main index/.main.* index/cache
