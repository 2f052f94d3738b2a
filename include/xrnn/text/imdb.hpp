// xtensor-rnn: load_imdb, the Large Movie Review Dataset (Maas et al., 2011) read from its official layout
//
//     aclImdb/train/pos/*.txt   aclImdb/train/neg/*.txt   aclImdb/test/pos/*.txt   aclImdb/test/neg/*.txt
//
// into padded id arrays and labels, as keras.datasets.imdb.load_data gives them, but from the raw text (the steps
// are in text/imdb_reviews.hpp).
//
// A full load parses 50,000 files (about 65 MB). With options.cache_path set, the result is also written to a
// binary cache, and later loads with the same options and the same source files read that instead
// (text/imdb_cache.hpp). A cache is never trusted: one that is stale, truncated or corrupted is ignored and
// rebuilt. The library does not print: imdb_dataset::from_cache and cache_note tell what happened.
#ifndef XRNN_TEXT_IMDB_HPP
#define XRNN_TEXT_IMDB_HPP

#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/text/imdb_cache.hpp>
#include <xrnn/text/imdb_reviews.hpp>

namespace xrnn
{
    /// Loads the IMDB reviews from directory (the aclImdb folder, or its parent), as described at the top of
    /// text/imdb_reviews.hpp. io_error for a missing folder, an empty split, a split with one class only, an
    /// unreadable, empty or non-UTF-8 review (each message names the path), or a cache that cannot be written;
    /// value_error for num_words < 3, maxlen 0 or limit_per_split 1.
    inline imdb_dataset load_imdb(const std::string& directory, const imdb_options& options = {})
    {
        detail::imdb::check_options(options);
        const auto src = detail::imdb::scan(directory, options.limit_per_split);
        std::string why;
        if (!options.cache_path.empty())
        {
            if (auto cached = detail::imdb::read_cache(options.cache_path, options, src.print, why))
            {
                cached->from_cache = true;
                cached->cache_note = "read from cache '" + options.cache_path + "'";
                return std::move(*cached);
            }
        }
        imdb_dataset data = detail::imdb::parse(src, options);
        if (!options.cache_path.empty())
        {
            const std::filesystem::path parent = std::filesystem::path(options.cache_path).parent_path();
            std::error_code ec;
            if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
            {
                std::filesystem::create_directories(parent, ec);
                if (ec)
                {
                    throw io_error("load_imdb: cannot create the cache directory '" + parent.string() + "': "
                                   + ec.message());
                }
            }
            io::atomic_write_file(options.cache_path, detail::imdb::cache_bytes(data, options, src.print), "IMDB cache");
            data.cache_note = why + "; parsed the reviews and wrote the cache";
        }
        return data;
    }
}  // namespace xrnn

#endif
