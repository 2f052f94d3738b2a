#!/usr/bin/env bash
# Downloads the Large Movie Review Dataset (Maas et al., 2011) from its official page and unpacks it.
# Usage: bash examples/imdb_sentiment/download.sh [DIR]   (default: data/ under the current directory)
# Then: imdb_sentiment --data DIR/aclImdb
set -euo pipefail
dir="${1:-data}"
url="https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
mkdir -p "$dir"
if [ -d "$dir/aclImdb/train" ] && [ -d "$dir/aclImdb/test" ]; then
    echo "already there: $dir/aclImdb"
    exit 0
fi
archive="$dir/aclImdb_v1.tar.gz"
if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 -o "$archive.part" "$url"
elif command -v wget >/dev/null 2>&1; then
    wget -O "$archive.part" "$url"
else
    echo "download.sh: needs curl or wget" >&2
    exit 1
fi
mv "$archive.part" "$archive"
tar xzf "$archive" -C "$dir"
rm -f "$archive"
echo "unpacked: $dir/aclImdb (train/ and test/, 25,000 reviews each)"
