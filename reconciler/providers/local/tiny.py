"""A tiny randomly initialised Llama (~40k parameters) and a byte-level BPE tokenizer
trained in code on your own text: local training tried end to end on a CPU in seconds,
with nothing downloaded (providers-next.md §4.7). What it learns is noise; what it shows
is the whole path: plan, apply, checkpoints, cancel, resume, the adapter.

    python -m reconciler.providers.local.tiny DIR [DATA.jsonl ...]

Needs the ``local`` extra (torch, transformers, tokenizers), imported when called.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<unk>", "<pad>", "<s>", "<|end|>"]


def texts_of(value: Any) -> Iterator[str]:
    """Every string inside a data record (messages, prompt/completion, preferences)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from texts_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts_of(item)


def build(folder: Path, texts: Iterable[str]) -> Path:
    """Save the model and a 300-token tokenizer trained on ``texts`` in ``folder``."""
    import importlib

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    # reached through Any: transformers' classes are untyped (and absent without the extra)
    hf: Any = importlib.import_module("transformers")
    hf.utils.logging.disable_progress_bar()

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [*texts, "<|user|><|assistant|><|system|>"]
    tok.train_from_iterator(corpus * 5, trainer)
    fast = hf.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="<|end|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = hf.LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    hf.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(
            "usage: python -m reconciler.providers.local.tiny DIR [DATA.jsonl ...]", file=sys.stderr
        )
        return 1
    texts: list[str] = []
    for name in argv[2:]:
        with open(name, encoding="utf-8-sig") as f:
            texts += [t for line in f if line.strip() for t in texts_of(json.loads(line))]
    folder = build(Path(argv[1]), texts or ["hello world"])
    print(f"a tiny random model in {folder}: use it as `model: {folder}`")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
