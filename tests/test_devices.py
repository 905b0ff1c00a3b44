"""Device pinning for xdist workers, tested without a GPU."""

import pytest

from pytest_kick.errors import KickError
from pytest_kick.models.devices import pick_device, pick_dtype, worker_index


def two_gpus():
    return 2


def no_gpu():
    return 0


def test_worker_index():
    assert worker_index("gw0") == 0 and worker_index("gw13") == 13
    assert worker_index(None) is None and worker_index("master") is None


def test_each_worker_takes_its_own_gpu():
    assert [pick_device("cuda", f"gw{i}", {}, two_gpus) for i in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]


def test_cuda_visible_devices_is_indexed_not_ignored():
    env = {"CUDA_VISIBLE_DEVICES": "4,5,6"}
    # torch numbers visible GPUs 0..2; worker gw4 takes the second of them (physical GPU 5)
    assert pick_device("cuda", "gw4", env, lambda: 8) == "cuda:1"
    assert pick_device("cuda", None, env, lambda: 8) == "cuda:0"


def test_explicit_index_and_cpu_are_kept():
    assert pick_device("cuda:1", "gw1", {}, two_gpus) == "cuda:1"
    assert pick_device("cpu", "gw1", {}, two_gpus) == "cpu"


def test_auto():
    assert pick_device("auto", None, {}, no_gpu) == "cpu"
    assert pick_device("auto", "gw1", {}, two_gpus) == "cuda:1"
    assert pick_device("auto", None, {}, no_gpu, mps_available=lambda: True) == "mps"


def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(KickError, match="no CUDA device is visible"):
        pick_device("cuda", "gw0", {"CUDA_VISIBLE_DEVICES": ""}, two_gpus)
    with pytest.raises(KickError):
        pick_device("cuda", None, {}, no_gpu)


def test_dtype():
    assert pick_dtype("auto", "cpu") == "float32"
    assert pick_dtype("auto", "cuda:0") == "float16"
    assert pick_dtype("bfloat16", "cpu") == "bfloat16"


def test_unavailable_devices_are_clear_errors():
    with pytest.raises(KickError, match="MPS is not available"):
        pick_device("mps", None, {}, no_gpu, mps_available=lambda: False)
    with pytest.raises(KickError, match="--kick-device cuda:3: this machine has 2 visible CUDA device"):
        pick_device("cuda:3", None, {}, two_gpus)


def test_xdist_workers_on_cpu_share_the_cores(monkeypatch):
    from pytest_kick.runtime import share_cpu

    class FakeTorch:
        threads = None

        @classmethod
        def set_num_threads(cls, n):
            cls.threads = n

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    share_cpu(FakeTorch, {"PYTEST_XDIST_WORKER_COUNT": "4"})
    assert FakeTorch.threads == 2
    share_cpu(FakeTorch, {"PYTEST_XDIST_WORKER_COUNT": "16"})
    assert FakeTorch.threads == 1
    FakeTorch.threads = None
    share_cpu(FakeTorch, {})  # no xdist: torch keeps its own default
    assert FakeTorch.threads is None
