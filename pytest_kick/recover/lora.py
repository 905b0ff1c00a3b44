"""``lora``: LoRA (Hu et al., 2021) on decoder-block linears, through peft, kept unmerged.

peft's ``inject_adapter_in_model`` wraps each target ``nn.Linear`` in a LoRA layer that computes
``base(x) + B(A(x)) * alpha / r`` with the base layer untouched, so the compressed weights — their zeros and
their quantization grid — stay exactly as compressed while the adapter is on. Removing it puts the very
same ``nn.Linear`` objects back and undoes what peft changed besides (``requires_grad`` flags, the
``peft_config`` attribute), so the model is the compressed model again, module for module and bit for bit.

Targets are named by their last component (``q_proj,v_proj``, peft's default for LLaMA-style models) or
``all`` (every linear inside a decoder block); embeddings and lm_head never get an adapter.
"""

from __future__ import annotations

from pytest_kick.compress.base import compressible_linears
from pytest_kick.errors import KickError

ADAPTER = "kick"


def target_names(model, targets: str) -> list[str]:
    """Qualified names of the decoder-block linears ``targets`` selects."""
    linears = list(compressible_linears(model))
    wanted = {t.strip() for t in targets.split(",") if t.strip()}
    if "all" in wanted:
        return linears
    found = [name for name in linears if name.rsplit(".", 1)[-1] in wanted]
    missing = wanted - {name.rsplit(".", 1)[-1] for name in found}
    if missing or not found:
        kinds = sorted({name.rsplit(".", 1)[-1] for name in linears})
        raise KickError(
            f"LoRA targets {', '.join(sorted(missing or wanted))} are not linears of "
            f"{type(model).__name__}'s decoder blocks; choose from all, {', '.join(kinds)}"
        )
    return found


class Adapter:
    """LoRA layers injected into a model; ``remove()`` restores the model exactly."""

    def __init__(self, model, names: list[str], rank: int, alpha: int, params: dict | None):
        import torch
        from peft import LoraConfig, inject_adapter_in_model

        self.model = model
        self.names = names
        self._had_config = "peft_config" in vars(model)
        self._grad = {name: p.requires_grad for name, p in model.named_parameters()}
        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none", target_modules=list(names))
        inject_adapter_in_model(config, model, adapter_name=ADAPTER)
        self.injected = True
        if params is not None:  # use the caller's tensors themselves: training updates them in place
            for name in names:
                layer = model.get_submodule(name)
                for part in ("lora_A", "lora_B"):
                    tensor = params[f"{name}.{part}"]
                    if not isinstance(tensor, torch.nn.Parameter):
                        tensor = torch.nn.Parameter(tensor, requires_grad=False)
                    getattr(layer, part)[ADAPTER].weight = tensor

    def parameters(self) -> dict:
        """{``<linear>.lora_A`` / ``.lora_B``: the live weight}."""
        return {
            f"{name}.{part}": getattr(self.model.get_submodule(name), part)[ADAPTER].weight
            for name in self.names
            for part in ("lora_A", "lora_B")
        }

    def remove(self) -> None:
        if not self.injected:
            return
        for name in self.names:
            parent_name, _, child = name.rpartition(".")
            parent = self.model.get_submodule(parent_name)
            layer = getattr(parent, child)
            base = getattr(layer, "base_layer", None)
            if base is None:
                raise KickError(
                    f"{name} lost its LoRA wrapper while the adapter was on; the model is not the "
                    "compressed model any more"
                )
            setattr(parent, child, base)
        if not self._had_config:
            vars(self.model).pop("peft_config", None)
        for name, p in self.model.named_parameters():
            p.requires_grad_(self._grad.get(name, p.requires_grad))
        self.injected = False


class LoRA:
    name = "lora"
    input_dependent = False

    def __init__(self, spec):
        self.rank = spec.size["rank"]
        self.alpha = spec.size["alpha"]
        self.targets = spec.size["targets"]

    def parameter_count(self, model) -> int:
        """rank x (in + out) per targeted linear: the A and B matrices."""
        linears = [model.get_submodule(name) for name in target_names(model, self.targets)]
        return sum(self.rank * (linear.in_features + linear.out_features) for linear in linears)

    def initial(self, model, seed: int) -> dict:
        """peft's initialisation (A: Kaiming-uniform from ``seed``, B: zeros), float32, detached."""
        import torch

        with torch.random.fork_rng(devices=[]):  # peft draws A from the global generator
            torch.manual_seed(seed)
            adapter = Adapter(model, target_names(model, self.targets), self.rank, self.alpha, None)
        try:
            return {k: v.detach().to(torch.float32).clone() for k, v in adapter.parameters().items()}
        finally:
            adapter.remove()

    def attach(self, model, params: dict) -> Adapter:
        names = sorted({k.rsplit(".", 1)[0] for k in params})
        return Adapter(model, names, self.rank, self.alpha, params)
