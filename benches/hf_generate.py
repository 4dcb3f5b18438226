"""Hugging Face transformers' `generate` on random bf16 weights of the same shapes as
`teacher bench` measures on a GPU (scripts/gpu-check.sh runs both side by side).

    python3 benches/hf_generate.py --out hf.json [--batch 1,32,256,1024]

Prefill: one forward over B prompts of P tokens (logits of the last position only).
Decode: generate(P-token prompts, exactly G new tokens, greedy) minus that prefill.
"""
import argparse, json, time

import torch
import transformers as tf

SHAPES = {
    "smollm2-135m": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0,
        max_position_embeddings=8192)),
    "gemma3-270m": lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(
        hidden_size=640, intermediate_size=2048, num_hidden_layers=18, num_attention_heads=4,
        num_key_value_heads=1, head_dim=256, vocab_size=262144, sliding_window=512,
        max_position_embeddings=8192)),
    "qwen2.5-1.5b": lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(
        hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
        num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rope_theta=1000000.0,
        max_position_embeddings=8192)),
}


def timed(fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", default="1,32,256,1024")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    a = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for name in a.shapes.split(","):
        model = SHAPES[name]().to(device="cuda", dtype=torch.bfloat16).eval()
        vocab = model.config.vocab_size
        gc = tf.GenerationConfig(max_new_tokens=a.gen_tokens, min_new_tokens=a.gen_tokens,
                                 do_sample=False, pad_token_id=0, eos_token_id=None)
        with torch.no_grad():
            warm = torch.randint(1, vocab, (1, 8), device="cuda")
            model.generate(warm, generation_config=tf.GenerationConfig(
                max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0, eos_token_id=None))
            for b in [int(x) for x in a.batch.split(",")]:
                ids = torch.randint(1, vocab, (b, a.prompt_tokens), device="cuda")
                try:
                    model(ids, logits_to_keep=1)
                    tp, _ = timed(lambda: model(ids, logits_to_keep=1))
                    tg, _ = timed(lambda: model.generate(ids, attention_mask=torch.ones_like(ids),
                                                         generation_config=gc))
                    row = {"shape": name, "batch": b,
                           "prefill_tok_s": b * a.prompt_tokens / tp,
                           "decode_tok_s": b * a.gen_tokens / max(tg - tp, 1e-9)}
                except torch.cuda.OutOfMemoryError as e:
                    row = {"shape": name, "batch": b, "error": "out of memory"}
                    torch.cuda.empty_cache()
                print(json.dumps(row), flush=True)
                rows.append(row)
        del model
        torch.cuda.empty_cache()
    json.dump({"transformers": tf.__version__, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(0), "rows": rows}, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
