"""Hugging Face datasets on disk, read with pyarrow alone (no `datasets`, no Hub):

- a folder written by `Dataset.save_to_disk` (data-*.arrow, Arrow IPC streams, beside state.json
  and dataset_info.json), or by `DatasetDict.save_to_disk` (one such folder per split under a
  dataset_dict.json): each record gets `hf_split`, `hf_config` and the dataset's fingerprint;
- Parquet files as the Hub lays them out (data/train-00000-of-00003.parquet, or
  CONFIG/SPLIT/0000.parquet): each record gets the split and config the path says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa

METADATA_FILES = ("state.json", "dataset_info.json", "dataset_dict.json")
MAX_METADATA_BYTES = 4 << 20
_SPLIT_FILE = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)-\d{5}-of-\d{5}")
_SPLITS = {"train", "test", "validation", "valid", "dev", "eval"}


def is_metadata_file(fs_path: str) -> bool:
    """dataset_info.json & co. in a folder that holds .arrow files (or, for dataset_dict.json,
    whose split folders do)."""
    p = Path(fs_path)
    if p.name not in METADATA_FILES:
        return False
    if p.name == "dataset_dict.json":
        return any(p.parent.glob("*/*.arrow"))
    return any(p.parent.glob("*.arrow"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.is_file() and path.stat().st_size <= MAX_METADATA_BYTES:
            value = json.loads(path.read_text(encoding="utf-8"))
            return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        pass
    return {}


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


def arrow_facts(fs_path: str) -> dict[str, Any]:
    """What a save_to_disk folder says of its .arrow files."""
    folder = Path(fs_path).parent
    state = _read_json(folder / "state.json")
    info = _read_json(folder / "dataset_info.json")
    facts = {
        "hf_split": _text(state.get("_split"))
        or (folder.name if (folder.parent / "dataset_dict.json").is_file() else None),
        "hf_config": _text(info.get("config_name")),
        "hf_builder": _text(info.get("builder_name")),
        "hf_fingerprint": _text(state.get("_fingerprint")),
    }
    return {k: v for k, v in facts.items() if v}


def parquet_facts(path: str) -> dict[str, Any]:
    """The split and config a Hub-style Parquet path names, if it names them."""
    p = PurePosixPath(path)
    m = _SPLIT_FILE.match(p.name)
    if m:
        facts = {"hf_split": m["split"]}
        if p.parent.name not in ("data", "") and len(p.parts) >= 3:
            facts["hf_config"] = p.parent.name
        return facts
    if p.parent.name in _SPLITS:
        facts = {"hf_split": p.parent.name}
        if len(p.parts) >= 3:
            facts["hf_config"] = p.parent.parent.name
        return facts
    return {}


def _reader(fs_path: str | None, data: bytes | None) -> Any:
    source = pa.memory_map(fs_path) if fs_path else pa.BufferReader(data)
    try:
        return pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        source = pa.memory_map(fs_path) if fs_path else pa.BufferReader(data)
        return pa.ipc.open_file(source)


def _batches(reader: Any) -> Any:
    if isinstance(reader, pa.ipc.RecordBatchFileReader):
        return (reader.get_batch(i) for i in range(reader.num_record_batches))
    return iter(reader)


def batch_spans(fs_path: str | None, data: bytes | None, rows_per_task: int) -> list[tuple]:
    """(first batch, number of batches, first row) per task: runs of whole record batches of
    about `rows_per_task` rows. Reading the stream once memory-maps it; no row is decoded."""
    spans = []
    first_batch = first_row = rows = count = 0
    for i, batch in enumerate(_batches(_reader(fs_path, data))):
        rows += batch.num_rows
        count += 1
        if rows >= rows_per_task:
            spans.append((first_batch, count, first_row))
            first_batch, first_row, rows, count = i + 1, first_row + rows, 0, 0
    if count:
        spans.append((first_batch, count, first_row))
    return spans


def read_batches(task: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a task's record batches, as dicts."""
    out: list[dict[str, Any]] = []
    end = task["first_batch"] + task["batches"]
    for i, batch in enumerate(_batches(_reader(task["fs_path"], task["data"]))):
        if i >= end:
            break
        if i >= task["first_batch"]:
            out += batch.to_pylist()
    return out
