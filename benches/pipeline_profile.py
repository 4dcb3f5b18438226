#!/usr/bin/env python3
"""Where a pipeline's time goes: the three pipeline runs of BENCHMARKS.md with the
engine profile every manifest now carries, next to `teacher bench`'s decode rate at the
same batch size, in one run on one host.

    python3 benches/pipeline_profile.py [--teacher target/release/teacher] [--num 200]
        [--kv-type f16|f32|q8]
"""
import argparse, json, os, pathlib, subprocess, tempfile, time

here = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--teacher", default=str(here / "target/release/teacher"))
ap.add_argument("--num", type=int, default=200)
ap.add_argument("--evolve-items", type=int, default=100)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--kv-type", default="f16")
args = ap.parse_args()
T = args.teacher
shared = pathlib.Path(os.environ.get("TEACHER_SHARED", here.parent / "shared"))
rows = json.load(open(shared / "data/alpaca_cleaned_first4096.json"))
work = pathlib.Path(tempfile.mkdtemp(prefix="teacher-profile-"))
(work / "alpaca.json").write_text(json.dumps(
    [{"id": r["id"], "instruction": r["text"]} for r in rows[: args.evolve_items]]))
b = str(args.batch)
kv = ["--kv-type", args.kv_type]

def bench(model):
    out = subprocess.run([T, "bench", "--model", model, "--batch", b, *kv, "--json"],
                         capture_output=True, text=True, check=True).stdout
    v = json.loads(out)
    rows = v if isinstance(v, list) else v.get("rows", v.get("results", []))
    for r in rows:
        if int(r.get("batch", 0)) == args.batch:
            return r
    return v

runs = [
    ("self-instruct, SmolLM2 (alpaca)", "smollm2-135m-instruct",
     ["self-instruct", "--num", str(args.num)]),
    ("self-instruct, Gemma 3 270M (paper)", "gemma3-270m",
     ["self-instruct", "--model", "gemma3-270m", "--style", "paper", "--num", str(args.num)]),
    ("evolve, SmolLM2, 2 rounds", "smollm2-135m-instruct",
     ["evolve", "--input", str(work / "alpaca.json"), "--rounds", "2"]),
]
benches = {m: bench(m) for m in {r[1] for r in runs}}
print(json.dumps({"bench": benches}, indent=1))
for name, model, cmd in runs:
    out = work / (name.split(",")[0] + model + ".jsonl")
    t0 = time.time()
    subprocess.run([T, *cmd, "--batch", b, *kv, "--out", str(out)], check=True,
                   stderr=subprocess.DEVNULL)
    wall = time.time() - t0
    m = json.load(open(str(out) + ".manifest.json"))
    p, tok = m["profile"], m["tokens"]
    print(json.dumps({"run": name, "wall_seconds": round(wall, 1), "tokens": tok,
                      "generated_tok_per_wall_s": round(tok["generated"] / wall, 1),
                      "seconds": m["seconds"], "profile": p}), flush=True)
