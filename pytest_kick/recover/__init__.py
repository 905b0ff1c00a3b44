"""Recovery of a compressed model: is lost knowledge forgotten, or only displaced?

Three methods add a few trainable parameters to the frozen compressed model and train them on a
language-modelling objective: ``prompt`` (soft-prompt tuning), ``idp`` (Inference-time Dynamic
Prompting: a pool of short soft prompts, one chosen per input by attention) and ``lora`` (low-rank
adapters on decoder-block linears, unmerged). :func:`recover` trains one (or loads it from the cache);
``Recovery.applied(model)`` puts it on the model around an evaluation and takes it off exactly.
No torch is imported until a method is built. The methods are the registry's (``extensions.recovery``:
``spec.BUNDLED``, plus the entry-point group ``pytest_kick.recovery``).
"""

from pytest_kick.recover.recovery import Recovery, parameter_count, recover
from pytest_kick.recover.spec import RecoverySpec, methods, parse_methods, parse_sizes

__all__ = ["Recovery", "RecoverySpec", "methods", "parameter_count", "parse_methods", "parse_sizes", "recover"]
