#!/usr/bin/env bash
# The one command a GPU session runs on the device machine (after pack-node.sh here):
#
#   bash scripts/bench/gpu/run-on-gpu.sh --stage-only     (calls that only carry parts)
#   bash scripts/bench/gpu/run-on-gpu.sh [--quick] [-- <bench.ts flags>]   (the last call)
#
# 1. Stages every carried file (.tmp/gpu/call-*/ in the repository copy) into $STAGE, outside the
#    repository copy, where it survives between calls while the machine stays warm; checks each
#    against MANIFEST. --stage-only stops here and lists what is still missing.
# 2. Unpacks node and app (dist + trimmed node_modules), reassembles the CUDA provider from its
#    parts and puts libonnxruntime_providers_{cuda,shared}.so next to libonnxruntime.so.1.
# 3. Points LD_LIBRARY_PATH at every lib folder of python's nvidia package (CUDA 13, cuBLAS,
#    cuDNN from PyTorch's wheels), as ../shared/GPU.md describes.
# 4. Runs scripts/bench/gpu/torch_anchor.py, then dist/scripts/bench/gpu/bench.js with
#    --ep cuda,cpu --require cuda --anchor (unless EP says otherwise), everything under $OUT:
#    gpu-bench.json, torch-anchor.json, run.log, nvidia-smi.txt, ldd-cuda-ep.txt.
# Environment: OUT (default .tmp/gpu-out), STAGE (default /tmp/embedctl-gpu), CARRY_DIR (default
# .tmp/gpu), EP (default cuda,cpu; without "cuda" no CUDA parts are needed, e.g. EP=cpu for a CPU
# smoke run of this script). Exit: the benchmark's code (0 ok, 3 CUDA did not load), 1 setup.
set -euo pipefail

stage_only=0
quick=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage-only) stage_only=1; shift ;;
    --quick) quick=(--quick); shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-on-gpu: unknown flag $1 (bench.ts flags go after --)" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$repo"
OUT=${OUT:-$repo/.tmp/gpu-out}
STAGE=${STAGE:-/tmp/embedctl-gpu}
CARRY_DIR=${CARRY_DIR:-$repo/.tmp/gpu}
EP=${EP:-cuda,cpu}
mkdir -p "$OUT" "$STAGE/files"
log() { echo "run-on-gpu: $*" | tee -a "$OUT/run.log" >&2; }

# 1. Stage.
shopt -s nullglob
for f in "$CARRY_DIR"/call-*/*; do
  base=$(basename "$f")
  [ -f "$STAGE/files/$base" ] && cmp -s "$f" "$STAGE/files/$base" && continue
  cp "$f" "$STAGE/files/$base.tmp" && mv "$STAGE/files/$base.tmp" "$STAGE/files/$base"
  log "staged $base ($(du -h "$f" | cut -f1))"
done
[ -f "$STAGE/files/MANIFEST" ] || { log "no MANIFEST staged: carry a folder made by scripts/bench/gpu/pack-node.sh (looked in $CARRY_DIR/call-*)"; exit 1; }
missing=()
while read -r sum name; do
  if [ ! -f "$STAGE/files/$name" ]; then missing+=("$name"); continue; fi
  if [ ! -f "$STAGE/files/$name.ok" ]; then
    echo "$sum  $STAGE/files/$name" | sha256sum -c --quiet - || { log "$name does not match MANIFEST (re-carry it)"; rm -f "$STAGE/files/$name"; missing+=("$name"); continue; }
    touch "$STAGE/files/$name.ok"
  fi
done < "$STAGE/files/MANIFEST"
need_cuda=0
case ",$EP," in *,cuda,*) need_cuda=1 ;; esac
still=()
for m in "${missing[@]+"${missing[@]}"}"; do
  case "$m" in cuda-ep.*) [ "$need_cuda" = 1 ] && still+=("$m") ;; *) still+=("$m") ;; esac
done
if [ "$stage_only" = 1 ]; then
  log "staged in $STAGE/files; still missing: ${still[*]:-nothing}"
  exit 0
fi
[ "${#still[@]}" = 0 ] || { log "still missing: ${still[*]} (carry the other call-* folders first, while the machine is warm)"; exit 1; }

# 2. Unpack.
node_bin="$STAGE/bin/node"
if [ ! -x "$node_bin" ]; then
  mkdir -p "$STAGE/bin"
  xz -dc "$STAGE/files/node.xz" > "$node_bin.tmp" && chmod +x "$node_bin.tmp" && mv "$node_bin.tmp" "$node_bin"
fi
app="$STAGE/app"
if [ ! -f "$app/.unpacked" ] || [ "$STAGE/files/app.tar.xz" -nt "$app/.unpacked" ]; then
  rm -rf "$app" && mkdir -p "$app"
  tar -xJf "$STAGE/files/app.tar.xz" -C "$app"
  touch "$app/.unpacked"
fi
ort_dir="$app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
if [ "$need_cuda" = 1 ] && [ -f "$STAGE/files/cuda-ep.tar.xz.sha256" ] && [ ! -f "$ort_dir/libonnxruntime_providers_cuda.so" ]; then
  log "reassembling the CUDA provider"
  cat "$STAGE/files"/cuda-ep.tar.xz.part-* > "$STAGE/cuda-ep.tar.xz"
  (cd "$STAGE" && sha256sum -c --quiet "$STAGE/files/cuda-ep.tar.xz.sha256") || { log "cuda-ep.tar.xz does not match its checksum"; exit 1; }
  tar -xJf "$STAGE/cuda-ep.tar.xz" -C "$ort_dir"
  rm -f "$STAGE/cuda-ep.tar.xz"
fi
# The repository copy has no node_modules or dist (both ignored); point them at the staged ones.
for d in node_modules dist; do
  if [ ! -e "$repo/$d" ] || [ -L "$repo/$d" ]; then ln -sfn "$app/$d" "$repo/$d"; fi
done
export PATH="$STAGE/bin:$PATH"

# 3. CUDA libraries from PyTorch's wheels.
nvidia_libs=$(python3 - <<'EOF' 2>/dev/null || true
import os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
dirs = []
for base in nvidia.__path__:
    for here, subdirs, _ in os.walk(base):
        if os.path.basename(here) == "lib":
            dirs.append(here)
print(":".join(sorted(dirs)))
EOF
)
if [ -n "$nvidia_libs" ]; then
  export LD_LIBRARY_PATH="$nvidia_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  log "LD_LIBRARY_PATH has $(echo "$nvidia_libs" | tr ':' '\n' | wc -l) lib folders from python's nvidia package"
else
  log "python's nvidia package not found: CUDA libraries come from the system paths only"
fi

{ nvidia-smi 2>&1 || echo "nvidia-smi not available"; } > "$OUT/nvidia-smi.txt"
if [ -f "$ort_dir/libonnxruntime_providers_cuda.so" ]; then
  ldd "$ort_dir/libonnxruntime_providers_cuda.so" > "$OUT/ldd-cuda-ep.txt" 2>&1 || true
  if grep -q 'not found' "$OUT/ldd-cuda-ep.txt"; then log "the CUDA provider has unresolved libraries: $(grep 'not found' "$OUT/ldd-cuda-ep.txt" | awk '{print $1}' | tr '\n' ' ')"; fi
fi
log "node $("$node_bin" --version), onnxruntime-node $("$node_bin" -p "require('$app/node_modules/onnxruntime-node/package.json').version"), EP=$EP"

# 4. Measure: the anchor first, so the benchmark can judge against it.
export PYTHONUNBUFFERED=1
anchor=()
if python3 scripts/bench/gpu/torch_anchor.py "${quick[@]+"${quick[@]}"}" --out "$OUT/torch-anchor.json" 2>&1 | tee -a "$OUT/run.log"; then
  anchor=(--anchor "$OUT/torch-anchor.json")
else
  log "torch anchor failed (see above); the benchmark runs without it"
fi
require=()
[ "$need_cuda" = 1 ] && require=(--require cuda)
set +e
"$node_bin" dist/scripts/bench/gpu/bench.js "${quick[@]+"${quick[@]}"}" --ep "$EP" "${require[@]+"${require[@]}"}" "${anchor[@]+"${anchor[@]}"}" \
  --models-dir "$STAGE/models" --out "$OUT/gpu-bench.json" "$@" 2>&1 | tee -a "$OUT/run.log"
code=${PIPESTATUS[0]}
set -e
# A benchmark that exits 0 without its JSON measured nothing: say so rather than report success.
if [ "$code" = 0 ] && [ ! -s "$OUT/gpu-bench.json" ]; then log "the benchmark wrote no $OUT/gpu-bench.json"; code=1; fi
log "benchmark exit $code; results in $OUT"
exit "$code"
