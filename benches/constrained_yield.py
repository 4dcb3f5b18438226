#!/usr/bin/env python3
"""Yield of --constrained: accepted records per 1,000 generated tokens, with and
without, for self-instruct and evolve on both catalog models, side by side in one run.

    python3 benches/constrained_yield.py [--teacher target/release/teacher] [--num 40]

Self-Instruct runs --num tasks (alpaca style for the chat model, paper style for the
base model); evolve runs one round over the first --num Alpaca instructions of the
shared data. Generated tokens come from each run's manifest (`tokens.generated`).
"""
import argparse, json, os, pathlib, subprocess, sys, tempfile, time

here = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--teacher", default=str(here / "target/release/teacher"))
ap.add_argument("--num", type=int, default=40)
ap.add_argument("--models", default="smollm2-135m-instruct,gemma3-270m")
args = ap.parse_args()

shared = pathlib.Path(os.environ.get("TEACHER_SHARED", here.parent / "shared"))
rows = json.load(open(shared / "data/alpaca_cleaned_first4096.json"))
work = pathlib.Path(tempfile.mkdtemp(prefix="teacher-yield-"))
(work / "ev.json").write_text(json.dumps(
    [{"id": r["id"], "instruction": r["text"]} for r in rows[: args.num]]))

def run(cmd, out, source):
    t = time.time()
    subprocess.run([args.teacher, *cmd, "--out", str(out)], check=True,
                   stderr=subprocess.DEVNULL)
    secs = time.time() - t
    m = json.load(open(str(out) + ".manifest.json"))
    recs = [json.loads(l) for l in open(out)]
    kept = sum(1 for r in recs if r.get("source") == source)
    gen = m["tokens"]["generated"]
    return kept, gen, secs, m["counts"]

print(f"| command | model | constrained | accepted | generated tokens | accepted / 1k tokens | wall s | main rejections |")
print(f"|---|---|---|---|---|---|---|---|")
for model in args.models.split(","):
    for name, cmd, source in [
        ("self-instruct", ["self-instruct", "--model", model, "--num", str(args.num),
                           "--wave-size", "16", "--seed", "7"], "self-instruct"),
        ("evolve", ["evolve", "--model", model, "--input", str(work / "ev.json"),
                    "--rounds", "1", "--seed", "7"], "evol"),
    ]:
        for constrained in (False, True):
            tag = f"{name}-{model}-{'c' if constrained else 'u'}"
            kept, gen, secs, counts = run(cmd + (["--constrained"] if constrained else []),
                                          work / f"{tag}.jsonl", source)
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
            print(f"| {name} | {model} | {'yes' if constrained else 'no'} | {kept} | {gen} | "
                  f"{1000 * kept / max(gen, 1):.2f} | {secs:.0f} | "
                  f"{', '.join(f'{k} {v}' for k, v in top)} |", flush=True)
