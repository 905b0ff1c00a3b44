"""Key/value cache layers that grow in place, for the decode loop (engines/decode.py).

transformers' ``DynamicLayer`` appends a step's keys and values with ``torch.cat``: every decode step copies every
layer's whole cache into a new tensor one position longer, 700 MB a step for 16 SmolLM2-135M rows at 900
positions. Here a layer keeps its keys and values in a buffer with ROOM spare positions and writes each step into
it: a copy only when the room runs out, once every ROOM steps. ``keys`` and ``values`` are views of the buffer's
filled positions, so what reads them (attention) or cuts them (a drafted step's rejected tokens) works as with a
plain layer; what replaces them (rows joining or leaving the batch) drops the buffer at once, and the next step
starts a new one. A step's values are written, never computed differently, so answers are unchanged
(tests/test_kv_room.py). Measured on SmolLM2-135M, one thread (docs/serving-and-scale.md#memory): a decode step of
16 rows at 900 positions 474-484 ms concatenating, 293-365 ms in place; peak memory within 25 MiB of before.

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
            _held = (None, None)  # the keys and values tensors (views of the buffers while they are kept)

            keys = _slot(0)
            values = _slot(1)

            def update(self, key_states, value_states, *args, **kwargs):
                if not self.is_initialized:
                    self.lazy_initialization(key_states, value_states)
                filled, added = self.get_seq_length(), key_states.shape[-2]
                if self.buffers is None or filled + added > self.buffers[0].shape[2]:
                    self.buffers = (
                        _with_room(self.keys, key_states, filled, filled + added + ROOM),
                        _with_room(self.values, value_states, filled, filled + added + ROOM),
                    )
                keys, values = self.buffers
                keys[:, :, filled : filled + added] = key_states
                values[:, :, filled : filled + added] = value_states
                self.keys, self.values = keys[:, :, : filled + added], values[:, :, : filled + added]
                return self.keys, self.values

        _CLASS = RoomyLayer
    return _CLASS


def _slot(which: int):
    """The ``keys`` (0) or ``values`` (1) property of a roomy layer: assigning a tensor that is not the buffer's
    filled front (rows joined or dropped) drops the buffers at once, not at the next step, so no layer holds two
    caches."""

    def get(layer):
        return layer._held[which]

    def put(layer, tensor) -> None:
        layer._held = (tensor, layer._held[1]) if which == 0 else (layer._held[0], tensor)
        if layer.buffers is not None and not _front(tensor, layer.buffers[which]):
            layer.buffers = None

    return property(get, put)


def _front(view, buffer) -> bool:
    """Whether ``view`` is the first positions of ``buffer`` (the same memory, rows, heads and layout)."""
    return (
        view is not None
        and view.dim() == 4
        and view.data_ptr() == buffer.data_ptr()
        and view.shape[:2] == buffer.shape[:2]
        and view.shape[3] == buffer.shape[3]
        and view.stride() == buffer.stride()
    )


def _with_room(old, new, filled: int, size: int):
    """A buffer of ``size`` positions shaped as ``new`` elsewhere, holding ``old``'s ``filled`` positions first."""
    batch, heads, _, width = new.shape
    buffer = new.new_empty((batch, heads, size, width))
    if filled:
        buffer[:, :, :filled] = old
    return buffer
