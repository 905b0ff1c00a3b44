"""The --kick-* options and their kick_* ini keys: names, defaults and help, and their registration with pytest.

Parsing and validation of the values is config.py's job. Help texts go through argparse's %-formatting
(``%(default)s``): a literal percent sign is written ``%%`` (see add_options).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_kick import compress, extensions, tasks


@dataclass(frozen=True)
class Option:
    name: str  # without the leading --kick-
    default: str | None
    help: str
    flag: bool = False  # a switch without a value (--kick-regen); ini: true/false

    @property
    def flag_name(self) -> str:
        return f"--kick-{self.name}"

    @property
    def ini(self) -> str:
        return "kick_" + self.name.replace("-", "_")

    @property
    def dest(self) -> str:
        return self.ini


OPTIONS = [
    Option(
        "model",
        None,
        "model to gate: an alias (smollm2-135m, gemma3-270m, tiny-random-llama, vicuna-7b, ...), "
        "a Hugging Face hub id or a local directory; a comma list runs several. Turns the plugin on.",
    ),
    Option("compressor", "magnitude", "comma list of compressors (" + ", ".join(compress.names()) + ")"),
    Option(
        "ratio",
        None,
        "comma list of what to ask of each compressor: sparsities in [0, 1) (0.3,0.5), N:M "
        "patterns (2:4, 4:8: N zeros per M weights) for pruners; quantization specs (w8, w4g128, w3g128) for "
        "gptq, rtn, awq; w8a8 for int8. Each compressor runs the ratios it accepts (default: pruners "
        "0.1,0.3,0.5; gptq/rtn w8,w4g128; awq w4g128; int8 w8a8)",
    ),
    Option(
        "tasks",
        ",".join(tasks.families()),
        "comma list of tasks, or task:variant (" + ", ".join(tasks.spellings()) + ")",
    ),
    Option(
        "task-file",
        None,
        "comma list of YAML or TOML files declaring your own tasks (multiple choice, "
        "generation, perplexity over a text file); see docs/tasks.md, 'Add your own task'",
    ),
    Option(
        "compressed",
        None,
        "directory of a compressed checkpoint of --kick-model (safetensors; "
        "compressed-tensors; GPTQ/AWQ packed) to gate with --kick-compressor checkpoint",
    ),
    Option("calib-samples", "128", "calibration sequences from C4 for wanda, sparsegpt, gptq and awq"),
    Option("calib-seqlen", "512", "tokens per calibration sequence"),
    Option("limit", None, "evaluate a deterministic, seeded subset of N items per task"),
    Option(
        "tolerance",
        "5%",
        "how far compressed may fall behind dense: 5%% (relative), 3pp (absolute), "
        "with per-task overrides, e.g. 5%%,factoid_qa=10%%",
    ),
    Option(
        "protocol",
        "strict",
        "scoring: strict (continuation only, normalised answers) or kick "
        "(the LLM-KICK repo's scoring, to compare with the paper)",
    ),
    Option(
        "shots",
        "0",
        "in-context examples (factoid QA, TriviaQA; MMLU uses K when K > 0, else its 5; 0 = the paper's setting)",
    ),
    Option("device", "auto", "auto, cpu, cuda, cuda:N or mps; with xdist, cuda gives each worker its own GPU"),
    Option("dtype", "auto", "auto (float32 on CPU, float16 on GPU), float32, float16 or bfloat16"),
    Option("batch-size", "16", "prompts per forward pass"),
    Option(
        "accelerate",
        "auto",
        "on: a compressed variant's greedy generation verifies its dense model's stored answers as drafts "
        "instead of generating token by token (the same answers; local engine), and strict perplexity scores "
        "the items of a block in one pass; off: plain decoding, each perplexity item computed on its own; "
        "auto: perplexity as on, drafting on a CUDA device only (on a CPU it measured slower)",
    ),
    Option(
        "cache-dir",
        ".kick",
        "where converted models, dense baselines, judge replies, recovery parameters and flip reports are kept",
    ),
    Option("seed", "0", "seed for item subsets and anything random"),
    Option("report", None, "write every case's result as JSON to this path"),
    Option(
        "data-dir",
        None,
        "directory with task data (e.g. DIR/freebaseqa/*.jsonl or FreebaseQA-eval.json) "
        "to use instead of the bundled samples",
    ),
    Option(
        "stat",
        None,
        "sequential: evaluate in rounds (32 items, doubling) and stop as soon as matching or not matching is "
        "shown with error <= --kick-alpha (default; point under --kick-protocol kick); point: judge the drop's "
        "point estimate on every item; ci: fail only when the drop is beyond tolerance with 95%% confidence",
    ),
    Option("alpha", "0.05", "sequential: the error rate of each decision (showing matching, showing not matching)"),
    Option(
        "undecided",
        "pass",
        "sequential: what a case whose budget ran out before a decision does: pass (with a warning) or fail",
    ),
    Option(
        "family",
        "case",
        "sequential: case (alpha per case) or session (alpha split over the session's compressed cases, so the "
        "chance that any lossless variant fails is <= alpha)",
    ),
    Option(
        "plan",
        None,
        "before anything is compressed, print per task the item budget and the smallest drop it can show",
        flag=True,
    ),
    Option(
        "baseline-dir",
        None,
        "keep dense baselines as reviewable files DIR/<model>/<task>.json (computed and written when missing)",
    ),
    Option("regen", None, "recompute and rewrite the baseline files of --kick-baseline-dir", flag=True),
    Option("strict-env", None, "a baseline file made in another environment is an error, not a warning", flag=True),
    Option("markdown", None, "write a Markdown summary (e.g. for a CI job summary) to this path"),
    Option(
        "plot",
        None,
        "draw score against sparsity per task (the paper's figure style) as PNGs into this "
        "directory (needs matplotlib)",
    ),
    Option(
        "search",
        None,
        "per (task, compressor), search for the largest sparsity (fewest bits for gptq, rtn, awq) "
        "that still matches dense: a coarse grid, then bisection; one test per (task, model, compressor). "
        "Replaces the default --kick-ratio grid of the compressors it searches",
        flag=True,
    ),
    Option("search-resolution", "0.05", "--kick-search: the sparsity step the bisection resolves to"),
    Option(
        "engine",
        "local",
        "what runs the model: "
        + " or ".join(f"{e.name} ({e.what})" for e in extensions.engines.entries().values())
        + "; a server: see --kick-base-url",
    ),
    Option("base-url", None, "openai-completions: the server of --kick-model (dense), e.g. http://localhost:8000/v1"),
    Option(
        "compressed-url",
        None,
        "openai-completions: the server of the compressed model, gated as the variant "
        "'served' against the dense one (e.g. what --kick-export wrote, served by vllm serve DIR)",
    ),
    Option(
        "from-lmeval",
        None,
        "DENSE_DIR,COMPRESSED_DIR: gate two lm-evaluation-harness runs (--output_path with --log_samples) "
        "item by item, one case per task both ran, without evaluating anything again; turns the plugin on",
    ),
    Option("timeout", "600", "openai-completions: seconds to wait for one reply before retrying"),
    Option(
        "judge",
        "rouge",
        "how summarization and instruction replies are scored: "
        + ", ".join(f"{e.form.split(' (')[0]} ({e.what})" for e in extensions.judges.entries().values())
        + "; openai: see --kick-judge-url, pip install 'pytest-kick[judge]'",
    ),
    Option("judge-url", None, "openai: judge: the chat-completions base URL (default: $OPENAI_BASE_URL)"),
    Option(
        "judge-key-env", None, "openai: judge: the environment variable holding the API key (default: OPENAI_API_KEY)"
    ),
    Option("judge-concurrency", "8", "openai: judge: requests in flight at once"),
    Option("judge-timeout", "120", "openai: judge: seconds to wait for one reply before retrying it"),
    Option(
        "judge-retries",
        "4",
        "openai: judge: retries of a failed request (5xx, 429, timeout, dropped connection, a reply that is not "
        "a chat completion) before its item is a judge error",
    ),
    Option(
        "judge-scoring",
        None,
        "probability (each score the judge's expected value over 1-10, the format forced; an openai: judge reads "
        "its reply's top_logprobs) or text (scores parsed from the judge's free reply) "
        "(default: probability for local:, text for openai:)",
    ),
    Option(
        "judge-explain",
        None,
        "local: judge with probability scoring: generate the judge's explanation after its scores "
        "(flip reports show it)",
        flag=True,
    ),
    Option(
        "export",
        None,
        "write each compressed variant as a checkpoint a serving engine loads "
        "(compressed-tensors where it applies, else safetensors) to DIR/<model>-<compressor>-<ratio>",
    ),
    # recovery (pytest_kick/recover): each compressed variant also evaluated after each method
    Option(
        "recover",
        "none",
        "comma list of recovery methods (none, "
        + ", ".join(extensions.recovery.names())
        + "): each compressed variant is "
        "also gated after training each method's added parameters on the frozen compressed model "
        "(test id ...-magnitude-0.3+lora); needs peft",
    ),
    Option(
        "recover-data",
        None,
        'directory of *.jsonl files with a "text" field to train recovery on '
        "(default: the C4 documents calibration uses)",
    ),
    Option("recover-steps", "100", "recovery training steps (4 windows each)"),
    Option("recover-lr", None, "recovery learning rate (default: 3e-2 for prompt and idp, 1e-3 for lora)"),
    Option(
        "recover-size",
        None,
        "method sizes, e.g. prompt.tokens=20,idp.prompts=4,idp.tokens=5,lora.rank=8,"
        "lora.alpha=16,lora.targets=q_proj+v_proj (these are the defaults)",
    ),
    Option("recover-seqlen", "256", "tokens per recovery training window"),
]


def add_options(parser) -> None:
    """Register the --kick-* options and their ini keys with pytest."""
    group = parser.getgroup("kick", "pytest-kick: gate compressed LLMs with LLM-KICK")
    for opt in OPTIONS:
        if opt.flag:
            group.addoption(
                opt.flag_name, dest=opt.dest, default=None, action="store_const", const="true", help=opt.help
            )
        else:
            group.addoption(
                opt.flag_name,
                dest=opt.dest,
                default=None,
                metavar="VALUE",
                help=opt.help + (f" (default: {opt.default.replace('%', '%%')})" if opt.default else ""),
            )
        parser.addini(opt.ini, help=opt.help.replace("%%", "%"), default=None)  # ini help is printed as is
