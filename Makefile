# Two entry points on a fresh clone: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: demo test test-fast install clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU build on this disk. A bare `torch` requirement would pull a CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# `make test` runs everything; `make test-fast` leaves out the tests marked slow (subprocesses, kills, torchrun).
test: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

# Pretrain a small model on the bundled corpus (a few minutes on 2 cores), score it and sample it; then, with the
# packaged Korean model, compare the vectors of 연패 in its two senses and run the 연패 probe against Word2Vec.
demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/contextemb pretrain contextemb/resources/demo/corpus.txt --out $(DEMO_DIR) \
		--valid contextemb/resources/demo/heldout.txt --vocab-size 1000 --hidden 256 --proj 128 \
		--epochs 4 --batch-tokens 1024 --eval-every 200 --warmup-steps 100 --no-progress
	$(BIN)/contextemb perplexity $(DEMO_DIR) contextemb/resources/demo/heldout.txt
	$(BIN)/contextemb sample $(DEMO_DIR) --prompt "영화가" --seed 1 -n 2
	$(BIN)/contextemb sample $(DEMO_DIR) --prompt "The bank" --seed 1
	$(BIN)/contextemb similarity ko-general 연패 "삼성, 사상 첫 통합우승 4연패" "한화, 악몽같은 연패 언제 탈출하나"
	$(BIN)/contextemb word2vec contextemb/resources/demo/corpus.txt --out $(DEMO_DIR)/w2v.bin \
		--model ko-general --dim 100 --min-count 2
	$(BIN)/contextemb probe ko-general --word 연패 --w2v $(DEMO_DIR)/w2v.bin --plot $(DEMO_DIR)/probe-연패.png

clean-demo:
	rm -rf $(DEMO_DIR)
