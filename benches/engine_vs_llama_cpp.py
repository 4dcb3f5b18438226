#!/usr/bin/env python3
"""teacher's engine next to llama.cpp's, side by side in one run on one host: prefill
and decode of both catalog models at batch 1, 8 and 32 (64-token prompts, 64 new
tokens), and prefill of one 512-token prompt.

    python3 benches/engine_vs_llama_cpp.py --llama-bin DIR [--teacher BIN ...] [--threads 2]

DIR holds `llama-bench` and `llama-batched-bench` (llama.cpp built with
-DGGML_NATIVE=ON, for instance from the llama-cpp-python sdist's vendor/llama.cpp).
Several --teacher binaries (before and after a change) are measured in turn.
"""
import argparse, json, os, pathlib, re, subprocess

ap = argparse.ArgumentParser()
ap.add_argument("--llama-bin", required=True)
ap.add_argument("--teacher", action="append")
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
here = pathlib.Path(__file__).resolve().parent.parent
teachers = args.teacher or [str(here / "target/release/teacher")]
cache = pathlib.Path(os.environ.get("TEACHER_CACHE", pathlib.Path.home() / ".cache/teacher/models"))
models = {"smollm2-135m-instruct": cache / "SmolLM2-135M-Instruct.Q4_1.gguf",
          "gemma3-270m": cache / "gemma-3-270m-q4_k_m.gguf"}
t = str(args.threads)
lb = pathlib.Path(args.llama_bin)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def table_rows(text):
    """The rows of the markdown tables llama.cpp prints, as lists of cells."""
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            yield [c.strip() for c in line.strip().strip("|").split("|")]


out = {}
for name, path in models.items():
    r = {}
    text = run([str(lb / "llama-bench"), "-m", str(path), "-t", t, "-p", "64,512", "-n", "64", "-r", "3"])
    for cells in table_rows(text):
        if len(cells) >= 7 and re.match(r"(pp|tg)\d+", cells[-2]):
            r[f"llama.cpp {cells[-2]}"] = float(cells[-1].split("±")[0])
    text = run([str(lb / "llama-batched-bench"), "-m", str(path), "-t", t, "-c", "8192", "-b", "2048",
                "-ub", "512", "-npp", "64", "-ntg", "64", "-npl", "1,8,32"])
    for cells in table_rows(text):
        if len(cells) == 10 and cells[0] == "64":
            r[f"llama.cpp batched B={cells[2]} prefill"] = float(cells[5])
            r[f"llama.cpp batched B={cells[2]} decode"] = float(cells[7])
    for i, tb in enumerate(teachers):
        v = json.loads(run([tb, "bench", "--model", name, "--batch", "1,8,32", "--json"]))
        for row in v["rows"]:
            r[f"teacher[{i}] B={row['batch']} prefill"] = round(row["prefill_tok_s"], 1)
            r[f"teacher[{i}] B={row['batch']} decode"] = round(row["decode_tok_s"], 1)
        v = json.loads(run([tb, "bench", "--model", name, "--batch", "1", "--prompt-tokens", "512",
                            "--gen-tokens", "16", "--json"]))
        r[f"teacher[{i}] 512-token prompt prefill"] = round(v["rows"][0]["prefill_tok_s"], 1)
    out[name] = r
    print(json.dumps({name: r}, indent=1), flush=True)
print(json.dumps({"teachers": teachers}))
