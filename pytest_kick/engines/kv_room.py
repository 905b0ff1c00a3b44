"""Key/value cache layers that grow in place, for the decode loop (engines/decode.py).

transformers' ``DynamicLayer`` appends a step's keys and values with ``torch.cat``: every decode step copies every
layer's whole cache into a new tensor one position longer. For SmolLM2-135M decoding 16 rows at about 1,000
positions that is 700 MB copied a step, and the freed blocks fragment the heap (docs/serving-and-scale.md#memory).
Here a layer keeps its keys and values in a buffer with ROOM spare positions and writes each step into it: a copy
only when the room runs out, once every ROOM steps. ``keys`` and ``values`` are views of the buffer's filled
positions, so everything that reads them (attention) or replaces them (joining rows, dropping rows, cropping,
restoring a saved cache) works as with a plain layer: a layer whose keys were replaced by another tensor starts a
new buffer at its next step. A step's values are written, never computed differently, so answers are unchanged.

Only plain ``DynamicLayer`` layers are made roomy; sliding-window layers (Gemma 3) keep their own update.
"""

from __future__ import annotations

ROOM = 64  # spare positions a layer's buffer gains each time it grows


def make_roomy(cache):
    """``cache`` (a transformers ``DynamicCache``) with each plain layer replaced by one that grows in place."""
    from transformers.cache_utils import DynamicLayer

    for k, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer:
            roomy = _roomy_class()()
            for name, value in vars(layer).items():
                setattr(roomy, name, value)
            cache.layers[k] = roomy
    return cache


_CLASS = None


def _roomy_class():
    """RoomyLayer, defined on first use so that importing this module does not import transformers."""
    global _CLASS
    if _CLASS is None:
        from transformers.cache_utils import DynamicLayer

        class RoomyLayer(DynamicLayer):
            buffers = None  # (keys, values) with room after the filled positions, or None

            def update(self, key_states, value_states, *args, **kwargs):
                if not self.is_initialized:
                    self.lazy_initialization(key_states, value_states)
                filled, added = self.get_seq_length(), key_states.shape[-2]
                if not self._writable(filled + added):
                    self.buffers = (
                        _with_room(self.keys, key_states, filled, filled + added + ROOM),
                        _with_room(self.values, value_states, filled, filled + added + ROOM),
                    )
                keys, values = self.buffers
                keys[:, :, filled : filled + added] = key_states
                values[:, :, filled : filled + added] = value_states
                self.keys, self.values = keys[:, :, : filled + added], values[:, :, : filled + added]
                return self.keys, self.values

            def _writable(self, needed: int) -> bool:
                """Whether keys and values are still the filled front of the buffers, with room for ``needed``."""
                if self.buffers is None:
                    return False
                return all(
                    view.dim() == 4
                    and view.data_ptr() == buffer.data_ptr()
                    and view.shape[:2] == buffer.shape[:2]
                    and view.stride() == buffer.stride()
                    and needed <= buffer.shape[2]
                    for view, buffer in zip((self.keys, self.values), self.buffers)
                )

        _CLASS = RoomyLayer
    return _CLASS


def _with_room(old, new, filled: int, size: int):
    """A buffer of ``size`` positions shaped as ``new`` elsewhere, holding ``old``'s ``filled`` positions first."""
    batch, heads, _, width = new.shape
    buffer = new.new_empty((batch, heads, size, width))
    if filled:
        buffer[:, :, :filled] = old
    return buffer
