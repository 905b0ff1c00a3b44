"""The only code that runs the model: batched greedy generation and batched log-likelihood.

Requests are sorted longest-first (the batch's slowest member sets the pace, and padding stays small),
answered in batches, and returned in the caller's order. Generation pads on the left and passes explicit
position ids, so a prompt gets the same tokens whatever else shares its batch (tested: batch size 1 and 16
give identical outputs).
"""

from __future__ import annotations

from typing import Callable, Sequence

from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest

Progress = Callable[[int, int], None]  # (items done, items total)


def _batches(order: list[int], size: int):
    for start in range(0, len(order), size):
        yield order[start:start + size]


class Engine:
    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int = 16):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        eos = getattr(model.generation_config, "eos_token_id", None)
        eos = eos if isinstance(eos, (list, tuple)) else [eos]
        self.eos_ids = {e for e in [*eos, tokenizer.eos_token_id] if e is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)

    def _encode(self, text: str, special: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def _start(self) -> list[int]:
        """What an empty prompt becomes: the BOS token (or, lacking one, EOS), so the model has a position 0."""
        bos = self.tokenizer.bos_token_id
        return [bos if bos is not None else min(self.eos_ids, default=self.pad_id)]

    def uses_chat(self, request: GenerationRequest) -> bool:
        return bool(request.messages) and bool(getattr(self.tokenizer, "chat_template", None))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """Token ids of a request: through the chat template when it has messages and the model has one."""
        if self.uses_chat(request):
            messages = [{"role": role, "content": content} for role, content in request.messages]
            rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return self._encode(rendered, special=False)  # the template already holds any BOS
        return self._encode(request.prompt) or self._start()

    # --- generation ----------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest], progress: Progress | None = None) -> list[str]:
        """Greedy continuations (new text only, special tokens dropped), cut at each request's stop strings."""
        tokens = self.generate_ids(requests, progress)
        return [self._cut(self._decode(t), r.stop) for t, r in zip(tokens, requests)]

    def generate_ids(self, requests: Sequence[GenerationRequest], progress: Progress | None = None) -> list[list[int]]:
        """The new token ids of each request (EOS excluded), in the caller's order."""
        encoded = [self.prompt_ids(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: (-len(encoded[i]), i))
        outputs: list[list[int]] = [[] for _ in requests]
        done = 0
        for batch in _batches(order, self.batch_size):
            new = self._generate_batch([encoded[i] for i in batch], [requests[i] for i in batch])
            for i, tokens in zip(batch, new):
                outputs[i] = tokens
            done += len(batch)
            if progress:
                progress(done, len(requests))
        return outputs

    def _generate_batch(self, prompts: list[list[int]], requests: list[GenerationRequest]) -> list[list[int]]:
        import torch

        budgets = [
            min(r.max_new_tokens, r.length_factor * len(p)) if r.length_factor > 0 else r.max_new_tokens
            for r, p in zip(requests, prompts)
        ]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):  # left padding: the last prompt token of every row is aligned
            ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [B, T] real positions, 0 on padding

        new_tokens: list[list[int]] = [[] for _ in prompts]
        finished = [b <= 0 for b in budgets]
        past = None
        step_ids, step_pos = ids, positions
        with torch.inference_mode():
            for _ in range(max(budgets)):
                if all(finished):
                    break
                out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos,
                                 past_key_values=past, use_cache=True, logits_to_keep=1)
                past = out.past_key_values
                next_ids = out.logits[:, -1, :].argmax(dim=-1)  # [B]
                for row, token in enumerate(next_ids.tolist()):
                    if finished[row]:
                        continue
                    if token in self.eos_ids:
                        finished[row] = True
                        continue
                    new_tokens[row].append(token)
                    if len(new_tokens[row]) >= budgets[row] or self._hit_stop(new_tokens[row], requests[row].stop):
                        finished[row] = True
                step_ids = next_ids[:, None]
                step_pos = step_pos[:, -1:] + 1
                mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=1)
        return new_tokens

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _hit_stop(self, tokens: list[int], stop: tuple[str, ...]) -> bool:
        if not stop:
            return False
        text = self._decode(tokens[-16:])  # a stop string completes within the last few tokens
        return any(s in text for s in stop)

    @staticmethod
    def _cut(text: str, stop: tuple[str, ...]) -> str:
        cut = len(text)
        for s in stop:
            found = text.find(s)
            if found != -1:
                cut = min(cut, found)
        return text[:cut]

    # --- log-likelihood ------------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[tuple[float, bool]]:
        """(sum of log-probabilities of the continuation tokens, whether greedy decoding would produce them)."""
        import torch

        pairs = []
        for r in requests:
            context = self._encode(r.context) or self._start()
            continuation = self._encode(r.continuation, special=False)
            pairs.append((context, continuation))
        order = sorted(range(len(pairs)), key=lambda i: (-(len(pairs[i][0]) + len(pairs[i][1])), i))
        results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        done = 0
        for batch in _batches(order, self.batch_size):
            seqs = [pairs[i][0] + pairs[i][1] for i in batch]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, s in enumerate(seqs):  # right padding: real tokens keep positions 0..len-1
                ids[row, :len(s)] = torch.tensor(s, dtype=torch.long)
                mask[row, :len(s)] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()  # [B, T, V]
            for row, i in enumerate(batch):
                context, continuation = pairs[i]
                start = len(context) - 1  # logits at position t predict token t + 1
                span = logprobs[row, start:start + len(continuation)]  # [C, V]
                target = torch.tensor(continuation, dtype=torch.long)
                total = span.gather(1, target[:, None]).sum().item()
                greedy = bool((span.argmax(dim=-1) == target).all().item())
                results[i] = (total, greedy)
            done += len(batch)
            if progress:
                progress(done, len(pairs))
        return results
