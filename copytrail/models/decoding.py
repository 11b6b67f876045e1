"""A decoding-time guard (MemFree decoding, Ippolito et al. 2023): while a model generates, a
token that would complete a verbatim run of `min_words` words of a guard index's protected text
is masked and the next best token is taken, so no output holds such a run.

`GuardLogitsProcessor` plugs into `transformers` `generate(logits_processor=[...])`;
`allowed(...)` is the same test as a plain function for other generators. The test per candidate
token: the output's last `min_words` words, the last one as far as it is written, must not occur
in the index (a suffix-array lookup of one phrase). A partly written word matches only once it
equals a protected word, so every completed run is caught before it is emitted.
"""

from __future__ import annotations

import time
from typing import Any

from copytrail.fingerprint.normalize import token_spans

TAIL_TOKENS = 96  # tokens decoded to find the last words (words are rarely over 4 tokens)


def allowed(index: Any, text_tail: str, min_words: int) -> bool:
    """Whether `text_tail` (the end of the output, candidate included) does not end with a run
    of `min_words` protected words."""
    words, _s, _e = token_spans(text_tail)
    if len(words) < min_words:
        return True
    return not index.has_run(words[-min_words:])


class GuardLogitsProcessor:
    """A transformers LogitsProcessor: masks tokens that would complete a protected run."""

    def __init__(self, index: Any, tokenizer: Any, min_words: int = 50, max_tries: int = 50,
                 prompt_len: int = 0) -> None:  # fmt: skip
        if min_words < 2:
            raise ValueError("min_words must be at least 2")
        self.index, self.tok, self.min_words = index, tokenizer, min_words
        self.max_tries = max_tries
        self.prompt_len = prompt_len  # tokens of the prompt: a quoted prompt is not output
        self.masked = 0
        self.checks = 0
        self.seconds = 0.0
        self.steps = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        t0 = time.perf_counter()
        self.steps += 1
        for row in range(scores.shape[0]):
            start = max(self.prompt_len, input_ids.shape[1] - TAIL_TOKENS)
            tail = self.tok.decode(input_ids[row, start:].tolist())
            order = torch.argsort(scores[row], descending=True)[: self.max_tries].tolist()
            for cand in order:
                self.checks += 1
                text = tail + self.tok.decode([cand])
                if allowed(self.index, text, self.min_words):
                    break
                scores[row, cand] = -float("inf")
                self.masked += 1
        self.seconds += time.perf_counter() - t0
        return scores

    def stats(self) -> dict[str, Any]:
        per = self.seconds / self.steps * 1000 if self.steps else 0.0
        return {"steps": self.steps, "masked": self.masked, "checks": self.checks,
                "ms_per_token": round(per, 3)}  # fmt: skip


def generate(
    model: Any,
    tokenizer: Any,
    prompt: str,
    max_new_tokens: int = 100,
    index: Any = None,
    min_words: int = 50,
) -> dict[str, Any]:
    """Greedy generation, guarded when an index is given; with the time per token."""
    import torch
    from transformers import LogitsProcessorList

    ids = tokenizer(prompt, return_tensors="pt").input_ids
    guard = (
        GuardLogitsProcessor(index, tokenizer, min_words, prompt_len=ids.shape[1])
        if index is not None
        else None
    )
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            ids,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            logits_processor=LogitsProcessorList([guard] if guard else []),
            pad_token_id=tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0,
        )
    seconds = time.perf_counter() - t0
    new = out[0, ids.shape[1] :].tolist()
    return {
        "text": tokenizer.decode(new),
        "tokens": len(new),
        "ms_per_token": round(seconds / max(1, len(new)) * 1000, 3),
        "guard": guard.stats() if guard else None,
    }


def generate_with(
    ctx: Any,
    model_path: Any,
    prompt: str,
    guard: str | None,
    min_words: int,
    max_new_tokens: int,
) -> dict[str, Any]:
    """Load the model, open the guard index, and generate (guarded when a guard is named)."""
    from copytrail.guard.scope import open_guard
    from copytrail.models import loading

    if not 1 <= max_new_tokens <= 4096:
        raise ValueError("max_new_tokens 1..4096")
    model, tok = loading.load(model_path)
    index = open_guard(ctx, guard) if guard else None
    return {"guard": guard, "min_words": min_words,
            **generate(model, tok, prompt, max_new_tokens, index, min_words)}  # fmt: skip
