// safetensors (include/xrnn/io/safetensors.hpp): models trained in PyTorch and laid out as Keras stores them give the
// outputs of the fixture script (tests/fixtures/make_safetensors_fixtures.py); our files round-trip, and files we
// exported load back into PyTorch with strict=True (checked by the script's --check on the committed
// xrnn_*.safetensors, which this test also loads); hostile files are refused with io_error and leave the model
// unchanged.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <algorithm>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <xrnn/io/safetensors.hpp>
#include <xrnn/model.hpp>

#include "support/fixture.hpp"
#include "support/scratch.hpp"

namespace
{
    constexpr std::size_t V = 11, D = 6, H = 8, O = 3;
    template <std::size_t Layers>
    using lstm_model =
        xrnn::sequential<xrnn::embedding<float, V, D>, xrnn::lstm<float, D, H, Layers>, xrnn::dense<float, H, O>>;
    template <std::size_t Layers>
    using gru_model =
        xrnn::sequential<xrnn::embedding<float, V, D>, xrnn::gru<float, D, H, Layers>, xrnn::dense<float, H, O>>;
    template <std::size_t Layers>
    using rnn_model =
        xrnn::sequential<xrnn::embedding<float, V, D>, xrnn::rnn<float, D, H, Layers>, xrnn::dense<float, H, O>>;

    const std::vector<std::string> torch_prefixes{"embedding", "rnn", "fc"};  // the script's Net attributes
    const auto torch = xrnn::weight_convention::torch;
    const auto keras = xrnn::weight_convention::keras;

    std::string path_of(const std::string& file)
    {
        return xrnn_test::fixture_path("safetensors/" + file);
    }

    template <class Model>
    Model make(std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        return Model(rng);
    }

    template <class Model>
    xt::xtensor<float, 2> outputs(Model& m, const xt::xtensor<int, 2>& ids)
    {
        const auto& e = m.template layer<0>().forward(ids);
        const auto& h = m.template layer<1>().forward(e);
        return m.template layer<2>().forward(h);
    }

    template <class Model>
    std::vector<float> weights_of(Model& m)
    {
        std::vector<float> all;
        m.for_each_parameter(
            [&](const auto&, auto& value, auto&) { all.insert(all.end(), value.begin(), value.end()); });
        return all;
    }

    double max_difference(const xt::xtensor<float, 2>& a, const xt::xtensor<double, 2>& b)
    {
        REQUIRE(a.shape() == b.shape());
        double worst = 0;
        for (std::size_t i = 0; i < a.size(); ++i)
        {
            worst = std::max(worst, std::fabs(static_cast<double>(a.data()[i]) - b.data()[i]));
        }
        return worst;
    }

    /// Loads a fixture file into a fresh model and returns max |y - the script's y| on the script's ids.
    template <class Model>
    double fixture_difference(const std::string& name, xrnn::weight_convention c,
                              const std::vector<std::string>& prefixes)
    {
        Model m = make<Model>(99);
        xrnn::load_safetensors(path_of(name + ".safetensors"), m, c, prefixes);
        xrnn_test::fixture f(path_of(name + ".txt"));
        const double difference = max_difference(outputs(m, f.tensor<int, 2>("ids")), f.tensor<double, 2>("y"));
        MESSAGE(name << ": max |y - the script's y| = " << difference);  // shown with -s
        return difference;
    }

    // ---- hand-made files -------------------------------------------------------------------------------------------
    std::string with_header(const std::string& json, const std::string& data)
    {
        std::string bytes(8, '\0');
        std::uint64_t n = json.size();
        for (int i = 0; i < 8; ++i)
        {
            bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
        }
        return bytes + json + data;
    }

    /// Whether parsing refuses bytes with an io_error whose message contains `word`.
    bool refused_with(const std::string& bytes, const std::string& word)
    {
        try
        {
            xrnn::io::parse_safetensors(bytes, "hostile");
        }
        catch (const xrnn::io_error& e)
        {
            const bool found = std::string(e.what()).find(word) != std::string::npos;
            if (!found)
            {
                MESSAGE("message without '" << word << "': " << std::string(e.what()));
            }
            return found;
        }
        return false;
    }
}  // namespace

TEST_CASE("PyTorch-trained Embedding -> 2-layer LSTM/GRU/RNN -> Linear give PyTorch's outputs")
{
    CHECK(fixture_difference<lstm_model<2>>("torch_lstm", torch, torch_prefixes) < 1e-5);
    CHECK(fixture_difference<gru_model<2>>("torch_gru", torch, torch_prefixes) < 1e-5);
    CHECK(fixture_difference<rnn_model<2>>("torch_rnn", torch, torch_prefixes) < 1e-5);
}

TEST_CASE("F16, BF16 and F64 files are converted to the model's scalar type")
{
    CHECK(fixture_difference<lstm_model<2>>("torch_lstm_f16", torch, torch_prefixes) < 1e-5);
    CHECK(fixture_difference<lstm_model<2>>("torch_lstm_bf16", torch, torch_prefixes) < 1e-5);
    CHECK(fixture_difference<gru_model<2>>("torch_gru_f64", torch, torch_prefixes) < 1e-5);

    using xrnn::io::detail_st::bf16_to_float;
    using xrnn::io::detail_st::half_to_float;
    CHECK(half_to_float(0x3c00) == 1.0f);
    CHECK(half_to_float(0xc000) == -2.0f);
    CHECK(half_to_float(0x7bff) == 65504.0f);
    CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));  // the smallest subnormal
    CHECK(std::isinf(half_to_float(0x7c00)));
    CHECK(std::isnan(half_to_float(0x7e00)));
    CHECK(bf16_to_float(0x3f80) == 1.0f);
    CHECK(bf16_to_float(0xc040) == -3.0f);
}

TEST_CASE("weights laid out as Keras stores them give the outputs of Keras's equations")
{
    // default prefixes: embedding, lstm / gru, gru_1 / rnn, dense
    CHECK(fixture_difference<lstm_model<1>>("keras_lstm", keras, {}) < 1e-5);
    CHECK(fixture_difference<gru_model<2>>("keras_gru", keras, {}) < 1e-5);
    CHECK(fixture_difference<rnn_model<1>>("keras_rnn", keras, {}) < 1e-5);
}

TEST_CASE("save then load gives back the same bits, in both conventions, and the files name what PyTorch names")
{
    for (auto c : {torch, keras})
    {
        auto a = make<gru_model<2>>(1);
        auto b = make<gru_model<2>>(2);
        const std::string bytes = xrnn::save_safetensors_to_bytes(a, c);
        xrnn::load_safetensors_from_bytes(bytes, b, c);
        CHECK(weights_of(a) == weights_of(b));
    }
    auto m = make<lstm_model<2>>(3);
    const std::string bytes = xrnn::save_safetensors_to_bytes(m, torch, torch_prefixes);
    const auto view = xrnn::io::parse_safetensors(bytes, "export");
    std::vector<std::string> names;
    for (const auto& t : view.tensors)
    {
        names.push_back(t.name + xrnn::io::shape_string(t.shape));
    }
    CHECK(names
          == std::vector<std::string>{"embedding.weight(11, 6)", "rnn.weight_ih_l0(32, 6)", "rnn.weight_hh_l0(32, 8)",
                                      "rnn.bias_ih_l0(32,)", "rnn.bias_hh_l0(32,)", "rnn.weight_ih_l1(32, 8)",
                                      "rnn.weight_hh_l1(32, 8)", "rnn.bias_ih_l1(32,)", "rnn.bias_hh_l1(32,)",
                                      "fc.weight(3, 8)", "fc.bias(3,)"});
    CHECK(view.metadata.at("format") == "pt");
    CHECK(view.metadata.at("xrnn.signature") == lstm_model<2>::signature());
    // the single bias goes to bias_ih, bias_hh is zeros (for the GRU: zeros but for b_hn)
    const auto hh = xrnn::io::safetensors_values<float>(view, *view.find("rnn.bias_hh_l0"));
    CHECK(std::all_of(hh.begin(), hh.end(), [](float v) { return v == 0.0f; }));
}

TEST_CASE("files exported here load into PyTorch (committed xrnn_*.safetensors, checked by the script)")
{
    // With XRNN_WRITE_SAFETENSORS_FIXTURES=<dir>, the PyTorch models are loaded, trained here for 5 Adam steps and
    // exported to <dir>/xrnn_<cell>.safetensors with their outputs in xrnn_<cell>.txt; the script's --check loads them
    // with strict=True. Always: the committed exports load here and give the committed outputs.
    auto run = [](auto model, const std::string& cell) {
        using Model = decltype(model);
        xrnn_test::fixture f(path_of("torch_" + cell + ".txt"));
        const auto ids = f.tensor<int, 2>("ids");
        if (const char* dir = std::getenv("XRNN_WRITE_SAFETENSORS_FIXTURES"))
        {
            xrnn::load_safetensors(path_of("torch_" + cell + ".safetensors"), model, torch, torch_prefixes);
            xrnn::adam<float> adam(0.01f);
            xt::xtensor<float, 2> target({ids.shape()[1], O}, 0.5f);
            xt::xtensor<float, 2> dy;
            for (int step = 0; step < 5; ++step)
            {
                xrnn::zero_grad(model.template layer<0>(), model.template layer<1>(), model.template layer<2>());
                const auto& e = model.template layer<0>().forward(ids, xrnn::mode::training);
                const auto& h = model.template layer<1>().forward(e, xrnn::mode::training);
                const auto& y = model.template layer<2>().forward(h, xrnn::mode::training);
                xrnn::mean_squared_error(y, target, &dy);
                const auto& dh = model.template layer<2>().backward(dy);
                model.template layer<0>().backward(model.template layer<1>().backward(dh));
                adam.step(model.template layer<0>(), model.template layer<1>(), model.template layer<2>());
            }
            const std::string out = std::string(dir) + "/xrnn_" + cell;
            xrnn::save_safetensors(out + ".safetensors", model, torch, torch_prefixes);
            const auto y = outputs(model, ids);
            std::ofstream txt(out + ".txt");
            txt << "# written by tests/test_safetensors.cpp: xrnn's outputs after 5 Adam steps from torch_" << cell
                << "\ntensor ids 2 " << ids.shape()[0] << " " << ids.shape()[1] << "\n";
            for (int v : ids)
            {
                txt << v << " ";
            }
            txt << "\ntensor y 2 " << y.shape()[0] << " " << y.shape()[1] << "\n";
            txt.precision(9);
            for (float v : y)
            {
                txt << v << " ";
            }
            txt << "\n";
            MESSAGE("wrote " << out << ".safetensors");
        }
        Model back = make<Model>(5);
        xrnn::load_safetensors(path_of("xrnn_" + cell + ".safetensors"), back, torch, torch_prefixes);
        xrnn_test::fixture g(path_of("xrnn_" + cell + ".txt"));
        CHECK(max_difference(outputs(back, g.tensor<int, 2>("ids")), g.tensor<double, 2>("y")) < 1e-5);
        CHECK(xrnn::safetensors_metadata(path_of("xrnn_" + cell + ".safetensors")).at("xrnn.signature")
              == Model::signature());
    };
    run(make<lstm_model<2>>(1), "lstm");
    run(make<gru_model<2>>(1), "gru");
    run(make<rnn_model<2>>(1), "rnn");
}

TEST_CASE("a file that does not fit the model changes nothing and lists missing, extra and different tensors")
{
    using other = xrnn::sequential<xrnn::embedding<float, V, D>, xrnn::lstm<float, D, 7, 2>, xrnn::dense<float, 7, O>>;
    auto m = make<other>(4);
    const auto before = weights_of(m);
    std::string message;
    try
    {
        xrnn::load_safetensors(path_of("torch_lstm.safetensors"), m, torch, {"embedding", "lstm", "fc"});
    }
    catch (const xrnn::io_error& e)
    {
        message = e.what();
    }
    CHECK(weights_of(m) == before);
    CHECK(message.find("missing: lstm.weight_ih_l0 (28, 6)") != std::string::npos);
    CHECK(message.find("extra: rnn.weight_ih_l0 (32, 6) F32") != std::string::npos);
    CHECK(message.find("differs: fc.weight: expected (3, 7) F32/F64/F16/BF16, found (3, 8) F32") != std::string::npos);
    CHECK(message.find("the model is unchanged") != std::string::npos);

    // the wrong convention, the wrong number of prefixes, a dtype that is not floating point
    auto l = make<lstm_model<2>>(4);
    const auto kept = weights_of(l);
    CHECK_THROWS_AS(xrnn::load_safetensors(path_of("torch_lstm.safetensors"), l, keras, torch_prefixes),
                    xrnn::io_error);
    CHECK_THROWS_WITH_AS(xrnn::load_safetensors(path_of("torch_lstm.safetensors"), l, torch, {"embedding", "rnn"}),
                         doctest::Contains("2 name prefixes for the model's 3 layers with weights"), xrnn::io_error);
    auto bytes = xrnn::save_safetensors_to_bytes(l, torch, torch_prefixes);
    const std::string f32 = "\"fc.bias\":{\"data_offsets\":";
    REQUIRE(bytes.find(f32) != std::string::npos);
    auto as_i32 = bytes;
    const std::size_t at = as_i32.find("F32", as_i32.find("\"fc.bias\""));
    as_i32.replace(at, 3, "I32");
    CHECK_THROWS_WITH_AS(xrnn::load_safetensors_from_bytes(as_i32, l, torch, torch_prefixes),
                         doctest::Contains("differs: fc.bias: expected (3,) F32/F64/F16/BF16, found (3,) I32"),
                         xrnn::io_error);
    CHECK_THROWS_WITH_AS(xrnn::load_safetensors_from_bytes(bytes, l, torch, {"embedding", "rnn", "embedding"}),
                         doctest::Contains("two layers would read the tensor"), xrnn::io_error);
    CHECK(weights_of(l) == kept);
}

TEST_CASE("hostile files: a clear io_error, no crash, no allocation from claimed sizes")
{
    const std::string f4 = std::string(4, '\0');
    CHECK(refused_with("", "less than the 8-byte header length"));
    CHECK(refused_with(std::string("\x10\0\0", 3), "truncated"));
    CHECK(refused_with(std::string("\xff\xff\xff\xff\xff\xff\xff\xff", 8) + "{}", "exceeds the limit"));
    CHECK(refused_with(std::string("\x00\x00\x00\x00\x01\x00\x00\x00", 8) + "{}", "exceeds the limit"));
    CHECK(refused_with(with_header("{}", "").substr(0, 9), "truncated"));
    CHECK(refused_with(with_header("[1,2]", ""), "starting with '{'"));
    CHECK(refused_with(with_header("{\"a\":", ""), "not valid JSON"));
    CHECK(refused_with(with_header("{\"a\xff\":{}}", ""), "not valid JSON"));          // invalid UTF-8
    CHECK(refused_with(with_header("{\"\xc0\xaf\":{}}", ""), "not valid JSON"));       // overlong UTF-8
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                                   f4 + f4),
                       "appears twice"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", f4),
                       "not a range inside"));                                             // past the end
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                                   f4 + f4),
                       "overlapping"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", f4 + f4),
                       "leaving a gap"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", f4 + f4),
                       "cover 4 bytes of the 8"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", f4),
                       "non-negative integer"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", f4),
                       "non-negative integer"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                                   "\"data_offsets\":[0,4]}}",
                                   f4),
                       "holds more values"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
                                   "\"data_offsets\":[0,4]}}",
                                   f4),
                       "non-negative integer"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}", f4),
                       "need 8 bytes, data_offsets give 4"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"X9\",\"shape\":[1],\"data_offsets\":[0,4]}}", f4),
                       "unknown dtype"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", f4),
                       "unknown field"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", f4), "needs dtype, shape"));
    CHECK(refused_with(with_header("{\"__metadata__\":{\"k\":1}}", ""), "not a string"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[[[[1]]]],\"data_offsets\":[0,4]}}", f4),
                       "nests deeper"));
    CHECK(refused_with(with_header("{\"a\":" + std::string(100000, '[') + "}", ""), "nests deeper"));
    CHECK(refused_with(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", f4),
                       "not a range inside"));

    // A valid header and data: accepted, empty tensors too, and trailing spaces in the header.
    const auto ok = xrnn::io::parse_safetensors(
        with_header("{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"__metadata__\":{\"k\":\"v\"}}   ",
                    f4),
        "ok");
    CHECK(ok.tensors.size() == 2);
    CHECK(ok.metadata.at("k") == "v");

    // An F64 value beyond float's range is refused when loading into a float model; the model is unchanged.
    using tiny = xrnn::sequential<xrnn::dense<float, 1, 1>>;
    auto m = make<tiny>(1);
    const auto before = weights_of(m);
    std::string data(16, '\0');
    const double big = 1e300, one = 1.0;
    std::memcpy(&data[0], &one, 8);
    std::memcpy(&data[8], &big, 8);
    const std::string file = with_header("{\"dense.weight\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[0,8]},"
                                         "\"dense.bias\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]}}",
                                         data);
    CHECK_THROWS_WITH_AS(xrnn::load_safetensors_from_bytes(file, m), doctest::Contains("beyond the range of float"),
                         xrnn::io_error);
    CHECK(weights_of(m) == before);

    // Every truncation and every flipped byte of a real file: refused, or loaded (a flip in a value), never a crash;
    // a refusal leaves the model as it was.
    auto l = make<lstm_model<2>>(6);
    const std::string good = xrnn_test::read_bytes(path_of("torch_lstm.safetensors"));
    const auto kept = weights_of(l);
    std::size_t refused = 0;
    for (std::size_t i = 0; i < good.size(); i += 7)
    {
        for (const std::string& bad : {good.substr(0, i), [&] {
                                           std::string b = good;
                                           b[i] = static_cast<char>(b[i] ^ 0x20);
                                           return b;
                                       }()})
        {
            auto copy = l;
            try
            {
                xrnn::load_safetensors_from_bytes(bad, copy, torch, torch_prefixes);
            }
            catch (const xrnn::io_error&)
            {
                ++refused;
                CHECK(weights_of(copy) == kept);
            }
        }
    }
    CHECK(refused > good.size() / 7);  // at least every truncation
}

TEST_CASE("save_safetensors is atomic and reports a failure")
{
    xrnn_test::scratch_dir dir("safetensors");
    auto m = make<lstm_model<1>>(7);
    xrnn::save_safetensors(dir.file("m.safetensors"), m, keras);
    auto n = make<lstm_model<1>>(8);
    xrnn::load_safetensors(dir.file("m.safetensors"), n, keras);
    CHECK(weights_of(m) == weights_of(n));
    CHECK_THROWS_AS(xrnn::save_safetensors(dir.file("missing/m.safetensors"), m), xrnn::io_error);
    CHECK_THROWS_AS(xrnn::load_safetensors(dir.file("none.safetensors"), m), xrnn::io_error);
}
