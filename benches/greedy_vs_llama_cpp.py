#!/usr/bin/env python3
"""Where teacher's greedy decoding first departs from llama.cpp's, and how close a call
it was: llama.cpp (through llama-cpp-python, CPU, f16 KV cache) greedily continues each
prompt; teacher is then fed the same prompt tokens and llama.cpp's continuation
(teacher forcing, `cargo bench --bench greedy_departure`) and reports, per prompt, the
first step where its own argmax differs, with the gap between its top two logits there
and llama.cpp's gap at the same step. A correct forward pass departs only at near-ties.

  pip install llama-cpp-python==0.3.36
  python3 benches/greedy_vs_llama_cpp.py MODEL.gguf [NEW_TOKENS] > report.md
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROMPTS = [
    "The three primary colors are",
    "The capital of France is",
    "Water boils at a temperature of",
    "The first three days of the week are",
    "To make a cup of tea, you need",
    "The largest planet in our solar system is",
    "Once upon a time, there was a",
    "The main ingredients of bread are",
    "In 1492, Christopher Columbus",
    "Photosynthesis is the process by which",
    "The quick brown fox",
    "A good way to learn a new language is",
    "The Pythagorean theorem states that",
    "def fibonacci(n):",
    "The opposite of hot is",
    "Dear Sir or Madam,",
    "The most important rule of cooking is",
    "Two plus two equals",
    "The seasons of the year are spring,",
    "Rust is a programming language that",
]


def main():
    model = sys.argv[1]
    n_new = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    llm = Llama(model_path=model, n_ctx=512, n_batch=512, logits_all=True, verbose=False, n_threads=2)
    cases = []
    for p in PROMPTS:
        toks = llm.tokenize(p.encode(), add_bos=True, special=False)
        llm.reset()
        llm.eval(toks)
        gen, gaps = [], []
        for _ in range(n_new):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            top2 = np.argsort(-logits)[:2]
            t = int(top2[0])
            gen.append(t)
            gaps.append(float(logits[top2[0]] - logits[top2[1]]))
            if t == llm.token_eos():
                break
            llm.eval([t])
        cases.append({"prompt": p, "prompt_tokens": toks, "tokens": gen, "gaps": gaps,
                      "text": llm.detokenize(gen).decode(errors="replace")})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"model": model, "cases": cases}, f)
        path = f.name
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "greedy_departure", "--", path],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    print(out)


if __name__ == "__main__":
    main()
