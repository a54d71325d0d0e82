#!/usr/bin/env bash
# Packs what the GPU machine lacks (it has no Node.js and no network) into an ignored folder, one
# subfolder per device call, for scripts/bench/gpu/run-on-gpu.sh to stage and run there.
#
#   bash scripts/bench/gpu/pack-node.sh [--out .tmp/gpu] [--no-cuda] [--part-mib N]
#
# Run it here (a machine with the npm registry), from the repository root. It makes:
#   node.xz           this machine's node binary, xz-compressed (x86-64 Linux, like the GPU machine)
#   app.tar.xz        dist/ (compiled here) and node_modules trimmed to what the runtime and the
#                     benchmark load (the closure of onnxruntime-node, @huggingface/tokenizers,
#                     zod, prom-client, and onnx-proto for make-test-model; no dev-only packages,
#                     no AWS SDK), onnxruntime binaries for linux/x64 only. With CUDA (the default), onnxruntime-node and -common are
#                     1.29.0 from the registry: the CUDA 13 provider below is ORT 1.29.0 and must sit
#                     next to the libonnxruntime.so.1 of the same version.
#   cuda-ep.tar.xz.part-NN  libonnxruntime_providers_{cuda,shared}.so from the npm package
#                     com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 (ORT 1.29.0 for CUDA 13,
#                     about 230 MB, 165 MB as xz), split into parts
#   MANIFEST          sha256 and name of every file, in every call folder
# A device call carries at most 64 MiB in all: the working tree that travels with every call, plus
# the carried folder. So the files are split into parts of at most 60 MiB (less when the working
# tree is larger) and grouped into call-1, call-2, ... folders, each under that limit. The plan
# printed at the end says which call carries which folder. --no-cuda leaves the CUDA provider out
# and keeps the project's own onnxruntime-node (cpu and webgpu runs only).
set -euo pipefail

out=.tmp/gpu
cuda=1
part_mib=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --no-cuda) cuda=0; shift ;;
    --part-mib) part_mib="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "pack-node: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
done

root=$(git rev-parse --show-toplevel 2>/dev/null) || { echo "pack-node: run inside the embedctl checkout" >&2; exit 2; }
cd "$root"
case "$out" in /*) ;; *) out="$root/$out" ;; esac
rel_out=${out#"$root"/}
if ! git check-ignore -q "$rel_out/x"; then
  # The carried folder must not travel as part of the working tree too (that would count twice).
  echo "/$rel_out/" >> .git/info/exclude
  echo "pack-node: added /$rel_out/ to .git/info/exclude" >&2
fi
for tool in xz split sha256sum tar npm node; do
  command -v "$tool" >/dev/null || { echo "pack-node: $tool is needed and not on PATH" >&2; exit 2; }
done

MIB=$((1024 * 1024))
# What travels with every call anyway: tracked files plus untracked files git does not ignore.
tree_bytes=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s+=$1} END {print s+0}')
budget=$((64 * MIB - tree_bytes - MIB))
if [ -z "$part_mib" ]; then
  part_mib=$(( budget / MIB < 60 ? budget / MIB : 60 ))
fi
[ "$part_mib" -ge 8 ] || { echo "pack-node: the working tree ($((tree_bytes / MIB)) MiB) leaves too little of the 64 MiB per call" >&2; exit 1; }
echo "pack-node: working tree $((tree_bytes / MIB)) MiB, so at most $((budget / MIB)) MiB per call; parts of $part_mib MiB" >&2

echo "pack-node: compiling (npx tsc; errors elsewhere in the tree do not stop the emit)" >&2
npx tsc -p tsconfig.json >/dev/null 2>&1 || true
for f in dist/runtime/main.js dist/scripts/bench/gpu/bench.js; do
  [ -f "$f" ] || { echo "pack-node: $f was not built; fix the TypeScript build first" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
cache="$root/.tmp/gpu-cache"
mkdir -p "$cache" "$work/app/node_modules" "$work/files"

if [ "$cuda" = 1 ]; then
  for spec in onnxruntime-node@1.29.0 onnxruntime-common@1.29.0 com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9; do
    name=${spec%@*}; ver=${spec##*@}
    if ! ls "$cache/$name-$ver.tgz" >/dev/null 2>&1; then
      echo "pack-node: npm pack $spec" >&2
      (cd "$cache" && npm pack --silent "$spec" >/dev/null)
    fi
  done
fi

# The runtime's and the benchmark's package closure, read from the installed package.json files.
pkgs=$(node --input-type=module -e '
  import { readFileSync, existsSync } from "node:fs";
  const q = ["onnxruntime-node", "@huggingface/tokenizers", "zod", "prom-client", "onnx-proto"];
  const seen = new Set();
  while (q.length) {
    const n = q.pop();
    if (seen.has(n)) continue;
    const pj = `node_modules/${n}/package.json`;
    if (!existsSync(pj)) { console.error(`pack-node: ${n} is not installed (npm ci first)`); process.exit(1); }
    seen.add(n);
    const p = JSON.parse(readFileSync(pj, "utf8"));
    q.push(...Object.keys({ ...p.dependencies, ...p.optionalDependencies }));
  }
  console.log([...seen].sort().join("\n"));
')
for p in $pkgs; do
  mkdir -p "$work/app/node_modules/$(dirname "$p")"
  cp -a "node_modules/$p" "$work/app/node_modules/$p"
done
if [ "$cuda" = 1 ]; then
  for name in onnxruntime-node onnxruntime-common; do
    rm -rf "$work/app/node_modules/$name"
    mkdir -p "$work/app/node_modules/$name"
    tar -xzf "$cache/$name-1.29.0.tgz" -C "$work/app/node_modules/$name" --strip-components=1
  done
  [ -f "$work/app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1" ] \
    || { echo "pack-node: onnxruntime-node@1.29.0 has no linux/x64 libonnxruntime.so.1" >&2; exit 1; }
fi
# Only the GPU machine's platform: the other platforms' binaries are most of the package's size.
find "$work/app/node_modules/onnxruntime-node/bin/napi-v6" -mindepth 2 -maxdepth 2 -type d ! -path '*/linux/x64' -exec rm -rf {} +
find "$work/app/node_modules/onnxruntime-node/bin/napi-v6" -mindepth 1 -maxdepth 1 -type d ! -name linux -exec rm -rf {} +
cp -a dist "$work/app/dist"
# bench.js runs from its real path (node resolves the dist symlink), so what it spawns lives here too.
mkdir -p "$work/app/scripts"
cp -a scripts/make-test-model.js scripts/lib "$work/app/scripts/"
echo "pack-node: app.tar.xz ($(du -sh "$work/app" | cut -f1) before compression)" >&2
tar -C "$work/app" -cf - . | xz -T0 -6 > "$work/files/app.tar.xz"
echo "pack-node: node.xz from $(command -v node) ($(node --version))" >&2
xz -T0 -6 -c "$(command -v node)" > "$work/files/node.xz"

if [ "$cuda" = 1 ]; then
  mkdir -p "$work/ep"
  tar -xzf "$cache/com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz" -C "$work/ep"
  mapfile -t sos < <(find "$work/ep" -name 'libonnxruntime_providers_cuda.so' -o -name 'libonnxruntime_providers_shared.so')
  [ "${#sos[@]}" = 2 ] || { echo "pack-node: expected the cuda and shared provider libraries in the asus4 package, found: ${sos[*]:-none}" >&2; exit 1; }
  mkdir -p "$work/ep-flat"
  cp "${sos[@]}" "$work/ep-flat/"
  echo "pack-node: cuda-ep.tar.xz ($(du -sh "$work/ep-flat" | cut -f1) before compression; xz takes minutes)" >&2
  tar -C "$work/ep-flat" -cf - . | xz -T0 -6 > "$work/cuda-ep.tar.xz"
  (cd "$work" && sha256sum cuda-ep.tar.xz > files/cuda-ep.tar.xz.sha256)
  split -b "${part_mib}M" -d -a 2 "$work/cuda-ep.tar.xz" "$work/files/cuda-ep.tar.xz.part-"
fi

# Greedy grouping in a fixed order: node and app first (the last call needs every part anyway).
rm -rf "$out"
mkdir -p "$out"
(cd "$work/files" && sha256sum -- * > "$work/MANIFEST")
call=1; used=0
mkdir -p "$out/call-$call"
for f in node.xz app.tar.xz $(cd "$work/files" && ls | grep -v -e '^node.xz$' -e '^app.tar.xz$' | sort); do
  size=$(stat -c %s "$work/files/$f")
  if [ "$used" -gt 0 ] && [ $((used + size)) -gt "$budget" ]; then
    call=$((call + 1)); used=0; mkdir -p "$out/call-$call"
  fi
  mv "$work/files/$f" "$out/call-$call/"
  used=$((used + size))
done
for d in "$out"/call-*; do cp "$work/MANIFEST" "$d/MANIFEST"; done

echo
carry_env=""
[ "$rel_out" = .tmp/gpu ] || carry_env="CARRY_DIR=$rel_out "
echo "Packed into $rel_out ($call device calls). On the GPU machine, in consecutive calls (the machine"
echo "keeps /tmp between calls only while warm, about 30 s after each), with timeout_s 600:"
for i in $(seq 1 "$call"); do
  size=$(du -sh "$out/call-$i" | cut -f1)
  if [ "$i" -lt "$call" ]; then
    echo "  call $i: carry [\"$rel_out/call-$i\"] ($size)  command: ${carry_env}bash scripts/bench/gpu/run-on-gpu.sh --stage-only"
  else
    echo "  call $i: carry [\"$rel_out/call-$i\"] ($size)  command: ${carry_env}bash scripts/bench/gpu/run-on-gpu.sh"
  fi
done
echo "The last call runs the torch anchor and the node benchmark and writes gpu-bench.json,"
echo "torch-anchor.json, run.log and nvidia-smi.txt under \$OUT."
