#!/usr/bin/env bash
# Installs the dependencies, builds the examples and runs them end to end:
#   1. sine_forecast: a stacked LSTM forecasts a sine wave (test MSE, sine_forecast.png)
#   2. char_rnn:      Embedding -> RNN -> Dense learns "hello world" character by character
#   3. imdb_sentiment: SimpleRNN, LSTM, then GRU, on the 50,000 IMDB reviews (5 epochs each, test accuracy,
#                      accuracy/loss curves) when the data set is there, and how to get it when it is not.
# Results (CSVs, PNGs, weights) go to build/demo/.
# The IMDB data is looked up in $XRNN_IMDB_DIR (an aclImdb folder), then build/demo/aclImdb, then the archive
# ../shared/data/aclImdb_v1_labelled.tar.gz beside this repository (unpacked into build/demo/).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${XRNN_JOBS:-2}"
out="build/demo"

bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DXRNN_BUILD_EXAMPLES=ON
cmake --build build --target sine_forecast char_rnn imdb_sentiment -j "$jobs"
mkdir -p "$out"

echo
echo "== 1. sine_forecast: LSTM forecasting of a sine wave =="
./build/examples/sine_forecast --out "$out"

echo
echo "== 2. char_rnn: a character-level RNN =="
(cd "$out" && ../examples/char_rnn)

echo
echo "== 3. imdb_sentiment: movie-review sentiment with a SimpleRNN and with an LSTM =="
imdb="${XRNN_IMDB_DIR:-}"
archive="../shared/data/aclImdb_v1_labelled.tar.gz"
if [ -z "$imdb" ] && [ -d "$out/aclImdb/train" ]; then
    imdb="$out/aclImdb"
elif [ -z "$imdb" ] && [ -f "$archive" ]; then
    echo "unpacking $archive into $out/"
    tar xzf "$archive" -C "$out"
    imdb="$out/aclImdb"
fi
if [ -z "$imdb" ] || [ ! -d "$imdb" ]; then
    echo "The IMDB data set is not here, so this part is skipped. To run it:"
    echo "  bash examples/imdb_sentiment/download.sh build/demo   # fetches the official archive (internet)"
    echo "  bash tools/demo.sh                                     # or set XRNN_IMDB_DIR=/path/to/aclImdb"
    exit 0
fi
for model in rnn lstm gru; do
    ./build/examples/imdb_sentiment --data "$imdb" --model "$model" --out "$out" \
        --predict "One of the best films I have seen: moving, funny and beautifully acted."
    echo
done
