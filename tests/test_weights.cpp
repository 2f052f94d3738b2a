// Weight files: round trip, signature checks, truncated/corrupted/hostile files rejected without touching the model,
// atomic saves.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <xrnn/model.hpp>

#include "support/scratch.hpp"
#include "support/toy_tasks.hpp"

namespace fs = std::filesystem;

namespace
{
    using small_model = xrnn::sequential<xrnn::embedding<float, 6, 4>, xrnn::lstm<float, 4, 5>, xrnn::dense<float, 5, 1>>;

    using xrnn_test::read_bytes;
    using xrnn_test::scratch_dir;
    using xrnn_test::weights_of;
    using xrnn_test::write_bytes;

    small_model make_model(std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        return small_model(rng);
    }

    std::vector<std::string> leftovers(const fs::path& dir)
    {
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(dir))
        {
            if (entry.path().filename().string().find(".tmp-") != std::string::npos)
            {
                names.push_back(entry.path().filename().string());
            }
        }
        return names;
    }
}  // namespace

TEST_CASE("save then load gives the same weights and the same predictions")
{
    scratch_dir dir("weights_round_trip");
    small_model trained = make_model(1);
    trained.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.05));
    xt::xtensor<int, 2> x = {{1, 2, 3}, {4, 5, 0}, {2, 2, 2}, {5, 1, 0}};
    xt::xtensor<float, 2> y = {{1}, {0}, {1}, {0}};
    xrnn::fit_options quiet;
    quiet.verbosity = xrnn::progress::silent;
    quiet.epochs = 3;
    trained.fit(x, y, quiet);
    trained.save(dir.file("model.xrnnw"));

    small_model restored = make_model(2);
    CHECK(weights_of(restored) != weights_of(trained));
    restored.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>());
    restored.load(dir.file("model.xrnnw"));
    CHECK(weights_of(restored) == weights_of(trained));
    const auto expected = trained.predict(x);
    const auto got = restored.predict(x);
    CHECK(got == expected);  // bit for bit
    CHECK(leftovers(dir.path).empty());

    // A single layer has a signature of its own and saves the same way.
    xrnn::random_engine rng(3);
    xrnn::lstm<double, 3, 2, 2> layer(rng);
    xrnn::save_weights(dir.file("layer.xrnnw"), layer);
    xrnn::random_engine other_rng(4);
    xrnn::lstm<double, 3, 2, 2> other(other_rng);
    xrnn::load_weights(dir.file("layer.xrnnw"), other);
    CHECK(weights_of(other) == weights_of(layer));
}

TEST_CASE("a file of another model is refused with both signatures in the message")
{
    scratch_dir dir("weights_signature");
    small_model model = make_model(5);
    model.save(dir.file("small.xrnnw"));

    using wider = xrnn::sequential<xrnn::embedding<float, 6, 4>, xrnn::lstm<float, 4, 7>, xrnn::dense<float, 7, 1>>;
    xrnn::random_engine rng(6);
    wider other(rng);
    const std::vector<double> before = weights_of(other);
    CHECK_THROWS_WITH_AS(other.load(dir.file("small.xrnnw")),
                         ("load_weights: '" + dir.file("small.xrnnw") + "' was written by\n  "
                          "sequential<embedding<float32,6,4>,lstm<float32,4,5,layers=1,last>,dense<float32,5,1>>\n"
                          "but this model is\n  "
                          "sequential<embedding<float32,6,4>,lstm<float32,4,7,layers=1,last>,dense<float32,7,1>>")
                             .c_str(),
                         xrnn::io_error);
    CHECK(weights_of(other) == before);

    using in_double = xrnn::sequential<xrnn::embedding<double, 6, 4>, xrnn::lstm<double, 4, 5>, xrnn::dense<double, 5, 1>>;
    in_double doubles(rng);
    CHECK_THROWS_WITH_AS(doubles.load(dir.file("small.xrnnw")), doctest::Contains("lstm<float64,4,5"), xrnn::io_error);

    xrnn::lstm<float, 4, 5> bare(rng);
    CHECK_THROWS_WITH_AS(xrnn::load_weights(dir.file("small.xrnnw"), bare),
                         doctest::Contains("but this model is\n  lstm<float32,4,5,layers=1,last>"), xrnn::io_error);
}

TEST_CASE("every truncation, every flipped byte and appended bytes are refused; the model keeps its weights")
{
    scratch_dir dir("weights_damage");
    small_model saved = make_model(7);
    saved.save(dir.file("good.xrnnw"));
    const std::string good = read_bytes(dir.file("good.xrnnw"));
    REQUIRE(good.size() > 100);

    small_model target = make_model(8);
    const std::vector<double> before = weights_of(target);
    const std::string damaged = dir.file("damaged.xrnnw");
    const xrnn_test::refusals counted = xrnn_test::count_refusals(good, 0x20, [&](const std::string& bytes) {
        write_bytes(damaged, bytes);
        target.load(damaged);
    });
    CHECK(counted.truncations == good.size());
    CHECK(counted.flips == good.size());
    write_bytes(damaged, good + "x");
    CHECK_THROWS_WITH_AS(target.load(damaged), doctest::Contains("extra bytes at the end"), xrnn::io_error);
    CHECK(weights_of(target) == before);

    write_bytes(damaged, good.substr(0, good.size() - 3));
    CHECK_THROWS_WITH_AS(target.load(damaged), doctest::Contains("truncated"), xrnn::io_error);
    std::string flipped = good;
    flipped[good.size() - 20] ^= 1;
    write_bytes(damaged, flipped);
    CHECK_THROWS_WITH_AS(target.load(damaged), doctest::Contains("checksum mismatch"), xrnn::io_error);
    write_bytes(damaged, "hello, not weights");
    CHECK_THROWS_WITH_AS(target.load(damaged), doctest::Contains("not an xrnn file"), xrnn::io_error);
    CHECK_THROWS_WITH_AS(target.load(dir.file("missing.xrnnw")), doctest::Contains("no such file"), xrnn::io_error);
    CHECK_THROWS_WITH_AS(target.load(dir.path.string()), doctest::Contains("not a regular file"), xrnn::io_error);
    CHECK(weights_of(target) == before);
}

TEST_CASE("hostile files: huge declared sizes and shapes allocate nothing and are refused")
{
    scratch_dir dir("weights_hostile");
    small_model model = make_model(9);
    const std::vector<double> before = weights_of(model);

    // A signature length of 4 GiB.
    xrnn::io::binary_writer header;
    header.put_raw(xrnn::io::file_magic, 8);
    header.put(xrnn::io::format_version);
    header.put(std::uint32_t(1));
    header.put(std::uint32_t(1));
    header.put(std::uint32_t(0xffffffffu));
    write_bytes(dir.file("long_signature"), header.bytes());
    CHECK_THROWS_WITH_AS(model.load(dir.file("long_signature")), doctest::Contains("more than the 65536 allowed"),
                         xrnn::io_error);

    // A valid file (right signature, size and checksum) whose first tensor claims a huge shape.
    xrnn::io::file_writer forged(xrnn::io::file_kind::weights, xrnn::io::element_type::float32, small_model::signature(), 6);
    std::size_t index = 0;
    model.for_each_parameter([&](const std::string& name, auto& value, auto&) {
        if (index++ == 0)
        {
            // same byte count as (6, 4), a different shape: (1, 24)
            forged.add(name, value.data(), std::array<std::size_t, 2>{1, 24});
        }
        else
        {
            forged.add(name, value.data(), value.shape());
        }
    });
    write_bytes(dir.file("forged"), forged.finish());
    CHECK_THROWS_WITH_AS(model.load(dir.file("forged")),
                         doctest::Contains("tensor '0.w' of shape (1, 24) where '0.w' of shape (6, 4) was expected"),
                         xrnn::io_error);

    // A checkpoint where weights are expected.
    xrnn::io::file_writer checkpoint(xrnn::io::file_kind::checkpoint, xrnn::io::element_type::float32,
                                     small_model::signature(), 0);
    write_bytes(dir.file("checkpoint"), checkpoint.finish());
    CHECK_THROWS_WITH_AS(model.load(dir.file("checkpoint")),
                         doctest::Contains("a checkpoint file (kind 2), expected a weights file"), xrnn::io_error);
    CHECK(weights_of(model) == before);
}

TEST_CASE("saving is atomic: a failed save leaves the old file and no temporary behind")
{
    scratch_dir dir("weights_atomic");
    small_model first = make_model(10);
    first.save(dir.file("model.xrnnw"));
    const std::string old_bytes = read_bytes(dir.file("model.xrnnw"));

    small_model second = make_model(11);
    second.save(dir.file("model.xrnnw"));  // overwrites
    CHECK(read_bytes(dir.file("model.xrnnw")) != old_bytes);
    small_model check = make_model(12);
    check.load(dir.file("model.xrnnw"));
    CHECK(weights_of(check) == weights_of(second));

    // The rename cannot replace a non-empty directory: the save fails, the directory and its file stay.
    fs::create_directories(dir.path / "occupied.xrnnw");
    write_bytes(dir.file("occupied.xrnnw/keep"), "keep");
    CHECK_THROWS_WITH_AS(first.save(dir.file("occupied.xrnnw")), doctest::Contains("the previous file, if any, is unchanged"),
                         xrnn::io_error);
    CHECK(read_bytes(dir.file("occupied.xrnnw/keep")) == "keep");
    CHECK(leftovers(dir.path).empty());

    CHECK_THROWS_WITH_AS(first.save(dir.file("no/such/dir/model.xrnnw")), doctest::Contains("cannot create"),
                         xrnn::io_error);
}

TEST_CASE("errors that name their cause: a damaged scalar-type field, a tensor of another element type, an unknown kind")
{
    scratch_dir dir("weights_wording");
    small_model model = make_model(10);
    const std::vector<double> before = weights_of(model);
    model.save(dir.file("good"));
    const std::string good = read_bytes(dir.file("good"));

    // The scalar-type field (after magic, version and kind) says float64 while the signature says float32: not
    // "written by <the same signature> but this model is <the same signature>".
    std::string damaged = good;
    damaged[16] = 2;
    write_bytes(dir.file("damaged_scalar"), damaged);
    CHECK_THROWS_WITH_AS(model.load(dir.file("damaged_scalar")),
                         doctest::Contains("has the signature of this model but says its scalar type is float64, not "
                                           "float32 as the signature says: the file is damaged"),
                         xrnn::io_error);
    damaged[16] = 9;
    write_bytes(dir.file("damaged_scalar"), damaged);
    CHECK_THROWS_WITH_AS(model.load(dir.file("damaged_scalar")),
                         doctest::Contains("says its scalar type is an unknown type (code 9), not float32"),
                         xrnn::io_error);

    // The element-type field of the first tensor damaged (float32 -> float64) and the checksum made valid again:
    // the message says so, not "tensor '0.w' of shape (6, 4) where '0.w' of shape (6, 4) was expected".
    std::string other_type = good.substr(0, good.size() - 8);
    const std::size_t name = other_type.find("0.w");
    REQUIRE(name != std::string::npos);
    REQUIRE(other_type[name + 3] == 1);  // the u32 element type right after the name
    other_type[name + 3] = 2;
    std::uint64_t sum = xrnn::io::fnv1a64(other_type.data(), other_type.size());
    for (int k = 0; k < 8; ++k, sum >>= 8)
    {
        other_type.push_back(static_cast<char>(sum & 0xFFu));
    }
    write_bytes(dir.file("other_type"), other_type);
    CHECK_THROWS_WITH_AS(model.load(dir.file("other_type")),
                         doctest::Contains("tensor '0.w' of shape (6, 4) holds float64 values where float32 was expected"),
                         xrnn::io_error);

    // A file of a kind this library does not know: "an unknown file", not "a unknown file".
    xrnn::io::file_writer unknown(static_cast<xrnn::io::file_kind>(7), xrnn::io::element_type::float32,
                                  small_model::signature(), 0);
    write_bytes(dir.file("unknown"), unknown.finish());
    CHECK_THROWS_WITH_AS(model.load(dir.file("unknown")),
                         doctest::Contains("an unknown file (kind 7), expected a weights file"), xrnn::io_error);
    CHECK(weights_of(model) == before);
}
