#!/usr/bin/env bash
# Compiles llama-cpp-python (llama.cpp) into a wheel, once, with only what the embedded server needs.
#
#   services/llm/build_llama_cpp.sh PYTHON WHEEL_DIR
#
# - The version is the one pyproject.toml pins; a wheel of it already in WHEEL_DIR is reused.
# - No multimodal library (LLAVA_BUILD=OFF: mtmd, clip and miniaudio are most of the compile), and
#   llama.cpp's tests, tools and examples are off already when it is built as a subproject.
# - -march=native, but never AMX: on a CPU with AMX tiles in a sandbox that does not grant them
#   (seen here: a Xeon with amx_int8), ggml's AMX matmul dies of SIGSEGV on the first token.
# - The compile prints a progress line with the elapsed time and ninja's step count, so that a
#   new user sees it is alive; its full log stays in WHEEL_DIR/build.log.
set -euo pipefail
python=$1
wheel_dir=$2
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/.*"llama-cpp-python\[server\]==\([0-9.]*\)".*/\1/p' "$here/../../pyproject.toml")
[ -n "$version" ] || { echo "llama-cpp-python's version is not pinned in pyproject.toml" >&2; exit 1; }
mkdir -p "$wheel_dir"
if compgen -G "$wheel_dir/llama_cpp_python-$version-*.whl" >/dev/null; then
	echo "    llama-cpp-python $version: already compiled ($wheel_dir)"
	exit 0
fi

cmake_args="-DLLAVA_BUILD=OFF"
if [ "$(uname -m)" = x86_64 ]; then
	no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
	cmake_args="$cmake_args -DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx'"
fi
log=$wheel_dir/build.log
echo "    compiling llama-cpp-python $version (llama.cpp, CPU, text only); log: $log"
started=$(date +%s)
CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
	"$python" -m pip wheel --disable-pip-version-check --no-deps --no-cache-dir -v \
	-w "$wheel_dir" "llama-cpp-python==$version" >"$log" 2>&1 &
build=$!
trap 'kill $build 2>/dev/null' EXIT
while kill -0 "$build" 2>/dev/null; do
	sleep 15
	elapsed=$(($(date +%s) - started))
	step=$(grep -o '^ *\[[0-9]*/[0-9]*\]' "$log" | tail -n 1 | tr -d ' []' || true)
	printf '    compiling llama.cpp: %dm%02ds elapsed%s\n' $((elapsed / 60)) $((elapsed % 60)) "${step:+, step $step}"
done
trap - EXIT
if ! wait "$build"; then
	tail -n 40 "$log" >&2
	echo "compiling llama-cpp-python failed; the whole log: $log" >&2
	exit 1
fi
elapsed=$(($(date +%s) - started))
printf '    llama.cpp compiled in %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
