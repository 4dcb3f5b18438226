#!/usr/bin/env bash
# The prepared GPU check (issue 11): runs on a GPU machine with no network and no Rust,
# in under 8 minutes, from a `cargo build --release --features cuda` binary built
# elsewhere. Synthetic models of the real shapes are written by the binary itself.
#
#   scripts/gpu-check.sh [BINARY] [OUTDIR]      (DEVICE=cpu runs the same flow on a CPU)
#
# Writes OUTDIR/gpu-check.json (everything) and the raw outputs beside it.
#
# On a lent device machine (no Rust there): build and strip here,
#   cargo build --release --features cuda && strip -o .gpu/teacher target/release/teacher
# carry `.gpu` (ignored by git), and run one command that keeps everything it wrote:
#   bash scripts/gpu-check.sh .gpu/teacher /tmp/gc; tar czf $OUT/gc.tgz -C /tmp gc
set -u
BIN=${1:-target/release/teacher}
OUT=${2:-gpu-check-out}
DEVICE=${DEVICE:-cuda}
BATCHES=${BATCHES:-1,32,256,1024}
mkdir -p "$OUT"
W=$(mktemp -d)
export TEACHER_OFFLINE=1 XDG_CACHE_HOME=$W/cache
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
stage() { # name timeout command...
  local name=$1 t=$2; shift 2
  log "$name: $*"
  timeout "$t" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "$name rc=$rc" | tee -a "$OUT/log.txt"
  tail -n 5 "$OUT/$name.txt" | tee -a "$OUT/log.txt"
  return $rc
}

(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true) > "$OUT/gpu.txt" 2>&1
$BIN --version > "$OUT/version.txt" 2>&1

# Libraries: the driver's and NVRTC's folders, wherever this machine keeps them.
if ! ldconfig -p 2>/dev/null | grep -q libcuda.so.1; then
  d=$(dirname "$(find /usr/local/nvidia /usr/lib /usr/local -name libcuda.so.1 2>/dev/null | head -1)" 2>/dev/null)
  [ -n "$d" ] && export LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}
fi
[ -z "${TEACHER_NVRTC:-}" ] && export TEACHER_NVRTC=$(find /opt /usr -name libnvrtc.so.13 2>/dev/null | head -1)
log "libcuda: $(ldconfig -p | grep -c libcuda.so.1) in ldconfig, LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}; NVRTC: $TEACHER_NVRTC"

# 1. Bit-identity of the forward pass against the CPU (every arch × weight type × KV type).
stage selftest 200 $BIN selftest --device "$DEVICE" --json "$OUT/selftest.json" ${TYPES:+--types "$TYPES"}

bench() { # shape type [timeout]
  $BIN models synth --shape "$1" --type "$2" --embd-type q8_0 --out "$W/$1.gguf" > /dev/null
  stage "bench-$1" "${3:-100}" $BIN bench --model "$W/$1.gguf" --device "$DEVICE" --batch "$BATCHES" \
    --prompt-tokens 64 --gen-tokens 64 --prefill-step 4096 --json
}
# 2. Throughput: teacher bench on a synthetic model of SmolLM2-135M's shape, then
# Hugging Face transformers' generate on the same shapes (bf16, random weights).
bench smollm2-135m q4_k
# The same with the tokens drawn on the device (temperature 0.8, top-p 0.95).
stage bench-sampled-smollm2-135m 100 $BIN bench --model "$W/smollm2-135m.gguf" --device "$DEVICE" \
  --batch "$BATCHES" --prompt-tokens 64 --gen-tokens 64 --prefill-step 4096 --temperature 0.8 --top-p 0.95 --json
if [ "$DEVICE" != cpu ]; then
  PYTHONUNBUFFERED=1 stage hf 180 python3 benches/hf_generate.py --out "$OUT/hf.json" --batch "$BATCHES"
fi

# 3. End to end: the same bytes from sampled generation and a whole pipeline.
$BIN models synth --shape tiny --type q4_k --embd-type q8_0 --out "$W/tiny.gguf" > /dev/null
for i in $(seq 0 23); do
  echo "{\"id\": \"p$i\", \"prompt\": \"Write a note number $i about\", \"temperature\": 0.8, \"top_p\": 0.95, \"max_tokens\": $((8 + i * 3))}"
done > "$W/prompts.jsonl"
e2e=ok
for d in cpu "$DEVICE"; do
  stage "generate-$d" 60 $BIN generate --model "$W/tiny.gguf" --device "$d" --input "$W/prompts.jsonl" \
    --out "$W/gen-$d.jsonl" --batch 8 --seed 11 || e2e=failed
  stage "self-instruct-$d" 60 $BIN self-instruct --model "$W/tiny.gguf" --device "$d" --num 8 --stall-waves 2 \
    --batch 16 --max-tokens 48 --temperature 0.9 --seed 3 --out "$W/si-$d.jsonl" --rejected "$W/si-$d.rejected.jsonl" || e2e=failed
done
cmp "$W/gen-cpu.jsonl" "$W/gen-$DEVICE.jsonl" && gen_same=true || gen_same=false
cmp "$W/si-cpu.jsonl" "$W/si-$DEVICE.jsonl" && cmp "$W/si-cpu.rejected.jsonl" "$W/si-$DEVICE.rejected.jsonl" && si_same=true || si_same=false
cp "$W/gen-$DEVICE.jsonl" "$OUT/generate.jsonl" 2>/dev/null
log "end to end: generate identical=$gen_same, self-instruct identical=$si_same ($e2e)"

# 4. The other shapes, and CUDA graphs off at batch 1 and 32 (the launch overhead
# they remove).
bench gemma3-270m q4_k
bench qwen2.5-1.5b q4_k
TEACHER_CUDA_GRAPHS=0 stage bench-nographs-smollm2-135m 40 $BIN bench --model "$W/smollm2-135m.gguf" \
  --device "$DEVICE" --batch 1,32 --prompt-tokens 64 --gen-tokens 64 --prefill-step 4096 --json

python3 - "$OUT" "$gen_same" "$si_same" <<'PY'
import json, os, sys
out, gen_same, si_same = sys.argv[1], sys.argv[2] == "true", sys.argv[3] == "true"
def load(name):
    p = os.path.join(out, name)
    try:
        txt = open(p).read()
        return json.loads(txt[txt.index("{"):])
    except Exception as e:
        return {"error": f"{name}: {e}"}
res = {"gpu": open(os.path.join(out, "gpu.txt")).read().strip(),
       "selftest": {k: v for k, v in load("selftest.json").items() if k != "cases"},
       "selftest_differing": [c for c in load("selftest.json").get("cases", []) if c["identical"] != c["logits"]],
       "end_to_end": {"generate_identical": gen_same, "self_instruct_identical": si_same},
       "bench": {n[6:-4]: load(n) for n in sorted(os.listdir(out)) if n.startswith("bench-") and n.endswith(".txt")},
       "hf": load("hf.json")}
json.dump(res, open(os.path.join(out, "gpu-check.json"), "w"), indent=1)
print(json.dumps(res["selftest"]), json.dumps(res["end_to_end"]))
PY
rm -rf "$W"
