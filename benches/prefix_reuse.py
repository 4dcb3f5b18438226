#!/usr/bin/env python3
"""Prefix reuse on and off (`--no-prefix-reuse`), side by side in one session: wall
time, prompt tokens computed and reused (from the manifest's `profile`), and a byte
comparison of the outputs (they must be identical).

Runs, each first with reuse and then without, with the default model at --batch 16:
  self-instruct  the README's main job (--num 20 --wave-size 16)
  evolve         1 round over the first 32 Alpaca instructions
  respond        the first 64 Alpaca instructions with a system prompt, 64 tokens
  judge          the 60 records of benches/data/judge_labelled.jsonl

Usage: python3 benches/prefix_reuse.py [TEACHER_BIN]
"""
import filecmp, json, os, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
teacher = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/teacher"))
shared = os.environ.get("TEACHER_SHARED", os.path.join(root, "..", "shared"))
alpaca = json.load(open(os.path.join(shared, "data/alpaca_cleaned_first4096.json")))

work = tempfile.mkdtemp()
with open(os.path.join(work, "a32.jsonl"), "w") as f:
    for r in alpaca[:32]:
        f.write(json.dumps({"id": r["id"], "instruction": r["text"]}) + "\n")
with open(os.path.join(work, "a64.jsonl"), "w") as f:
    for r in alpaca[:64]:
        f.write(json.dumps({"id": r["id"], "instruction": r["text"]}) + "\n")

jobs = {
    "self-instruct": ["self-instruct", "--num", "20", "--wave-size", "16"],
    "evolve": ["evolve", "--input", "a32.jsonl", "--rounds", "1", "--wave-size", "32"],
    "respond": ["respond", "--input", "a64.jsonl", "--system",
                "You are a careful assistant. Answer in at most three sentences.", "--max-tokens", "64"],
    "judge": ["judge", "--input", os.path.join(root, "benches/data/judge_labelled.jsonl")],
}
for name, args in jobs.items():
    rows = []
    for mode in ("on", "off"):
        out = os.path.join(work, f"{name}-{mode}.jsonl")
        extra = [] if mode == "on" else ["--no-prefix-reuse"]
        t0 = time.time()
        subprocess.run([teacher, *args, "--out", out, "--batch", "16", *extra],
                       cwd=work, check=True, capture_output=True)
        wall = time.time() - t0
        m = json.load(open(out + ".manifest.json"))
        p = m["profile"]
        rows.append((mode, wall, m["tokens"]["prompt"], p["prefix_reused_tokens"], p["prefill_seconds"]))
    same = filecmp.cmp(os.path.join(work, f"{name}-on.jsonl"), os.path.join(work, f"{name}-off.jsonl"), shallow=False)
    (_, w_on, c_on, r_on, p_on), (_, w_off, c_off, _, p_off) = rows
    print(json.dumps({
        "job": name, "identical": same,
        "wall_on": round(w_on, 1), "wall_off": round(w_off, 1), "speedup": round(w_off / w_on, 2),
        "prompt_computed_on": c_on, "prompt_reused_on": r_on, "prompt_computed_off": c_off,
        "prefill_s_on": p_on, "prefill_s_off": p_off,
    }), flush=True)
