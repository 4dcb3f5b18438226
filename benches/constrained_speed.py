#!/usr/bin/env python3
"""Cost of output constraints: generated tok/s of `teacher generate` at one batch size
with no constraint, an allow-everything regex (the mask's cost alone) and a JSON
schema, side by side in one run.

    python3 benches/constrained_speed.py [--teacher target/release/teacher] [--batch 32]
"""
import argparse, json, pathlib, re, subprocess, tempfile

here = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--teacher", default=str(here / "target/release/teacher"))
ap.add_argument("--model", default="smollm2-135m-instruct")
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--prompts", type=int, default=64)
ap.add_argument("--max-tokens", type=int, default=128)
ap.add_argument("--repeat", type=int, default=2)
args = ap.parse_args()
work = pathlib.Path(tempfile.mkdtemp(prefix="teacher-cspeed-"))
schema = {"type": "object", "properties": {"title": {"type": "string"}, "steps": {
    "type": "array", "items": {"type": "string"}}}, "required": ["title", "steps"]}
variants = {
    "none": {},
    "regex allowing everything": {"regex": "[^\\x00]*"},
    "json schema": {"json_schema": schema},
}
topics = ["bread", "a kite", "a garden", "tea", "a bookshelf", "a website", "soap", "a bike"]
print(f"| constraint | generated tokens | decode tok/s (best of {args.repeat}) |")
print("|---|---|---|")
for name, extra in variants.items():
    inp = work / f"{len(name)}.jsonl"
    with open(inp, "w") as f:
        for i in range(args.prompts):
            msg = f"Explain how to make {topics[i % len(topics)]} in steps ({i})."
            f.write(json.dumps({"id": i, "messages": [{"role": "user", "content": msg}], **extra}) + "\n")
    best, gen = 0.0, 0
    for r in range(args.repeat):
        out = work / f"out-{len(name)}-{r}.jsonl"
        p = subprocess.run([args.teacher, "generate", "--model", args.model, "--input", str(inp),
                            "--out", str(out), "--batch", str(args.batch), "--max-tokens",
                            str(args.max_tokens), "--temperature", "0.8"],
                           capture_output=True, text=True, check=True)
        m = re.search(r"\+ (\d+) generated tokens in ([\d.]+) s \(([\d.]+) generated tok/s\)", p.stderr)
        gen, tps = int(m.group(1)), float(m.group(3))
        best = max(best, tps)
    print(f"| {name} | {gen} | {best:.1f} |", flush=True)
