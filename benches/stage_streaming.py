#!/usr/bin/env python3
"""Pipeline stages streamed through one engine run (`pipeline::run_chains`) against the
same pipeline with a barrier after every stage: two teacher binaries (before and after)
side by side in one session, runs alternated, outputs compared byte for byte.

  evolve               2 rounds over the first 32 Alpaca instructions (--wave-size 32)
  self-instruct-paper  --style paper --num 24 --wave-size 16 (JOBS=self-instruct-paper;
                       Self-Instruct was measured streamed and kept as passes)

Usage: python3 benches/stage_streaming.py BEFORE_BIN AFTER_BIN [REPEATS]   (JOBS=a,b picks)
Default model, --batch 16, all cores. Prints one JSON line per job.
"""
import filecmp, json, os, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
before, after = (os.path.abspath(p) for p in sys.argv[1:3])
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 1
shared = os.environ.get("TEACHER_SHARED", os.path.join(root, "..", "shared"))
alpaca = json.load(open(os.path.join(shared, "data/alpaca_cleaned_first4096.json")))
work = tempfile.mkdtemp()
with open(os.path.join(work, "a32.jsonl"), "w") as f:
    for r in alpaca[:32]:
        f.write(json.dumps({"id": r["id"], "instruction": r["text"]}) + "\n")

jobs = {
    "evolve": ["evolve", "--input", "a32.jsonl", "--rounds", "2", "--wave-size", "32"],
    "self-instruct-paper": ["self-instruct", "--style", "paper", "--num", "24", "--wave-size", "16"],
}
if not os.environ.get("JOBS"):
    os.environ["JOBS"] = "evolve"
only = os.environ.get("JOBS")
for name, args in jobs.items():
    if only and name not in only.split(","):
        continue
    walls = {"before": [], "after": []}
    occ = {}
    for rep in range(repeats):
        for which, binary in (("before", before), ("after", after)):
            out = os.path.join(work, f"{name}-{which}.jsonl")
            for f in (out, out + ".manifest.json", out.replace(".jsonl", ".rejected.jsonl")):
                if os.path.exists(f):
                    os.remove(f)
            t0 = time.time()
            subprocess.run([binary, *args, "--out", out, "--batch", "16",
                            "--rejected", out.replace(".jsonl", ".rejected.jsonl")],
                           cwd=work, check=True, capture_output=True)
            walls[which].append(time.time() - t0)
            m = json.load(open(out + ".manifest.json"))
            p = m["profile"]
            occ[which] = (p["mean_batch_occupancy"], p["prefill_seconds"], p["decode_seconds"],
                          m["tokens"]["prompt"])
    same = all(
        filecmp.cmp(os.path.join(work, f"{name}-before{s}"), os.path.join(work, f"{name}-after{s}"), shallow=False)
        for s in (".jsonl", ".rejected.jsonl"))
    wb, wa = min(walls["before"]), min(walls["after"])
    print(json.dumps({
        "job": name, "identical": same, "wall_before": round(wb, 1), "wall_after": round(wa, 1),
        "speedup": round(wb / wa, 2),
        "occupancy_prefill_s_decode_s_prompt_tokens_before": occ["before"],
        "occupancy_prefill_s_decode_s_prompt_tokens_after": occ["after"],
    }), flush=True)
