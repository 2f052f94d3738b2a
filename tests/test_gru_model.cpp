// The GRU everywhere a layer goes: in a sequential (fit learns, summary, predict), in weight files (save then load
// gives the same predictions; a file of another cell is refused with both signatures), and in checkpoints (a run
// with GRU dropout interrupted and resumed equals the uninterrupted run bit for bit: its mask engines are saved).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <xrnn/model.hpp>

#include "support/scratch.hpp"
#include "support/toy_tasks.hpp"

namespace
{
    constexpr std::size_t vocab = 8;
    constexpr std::size_t steps = 5;

    template <class T>
    using gru_model =
        xrnn::sequential<xrnn::embedding<T, vocab, 6>, xrnn::gru<T, 6, 7, 2>, xrnn::dropout<T>, xrnn::dense<T, 7, 1>>;

    template <class T>
    gru_model<T> make_model(std::uint64_t seed, double dropout = 0.2)
    {
        xrnn::random_engine rng(seed);
        xrnn::recurrent_options o;
        o.dropout = dropout;
        o.recurrent_dropout = dropout;
        return gru_model<T>(xrnn::embedding<T, vocab, 6>(rng), xrnn::gru<T, 6, 7, 2>(rng, o),
                            xrnn::dropout<T>(dropout, rng), xrnn::dense<T, 7, 1>(rng));
    }

    xrnn::fit_options options_for(std::size_t epochs)
    {
        xrnn::fit_options f;
        f.epochs = epochs;
        f.batch_size = 6;
        f.validation_split = 0.25;
        f.seed = 77;
        f.verbosity = xrnn::progress::silent;
        return f;
    }

    template <class Model>
    std::vector<xrnn::random_engine::state_type> engines_of(Model& model)
    {
        std::vector<xrnn::random_engine::state_type> all;
        xrnn::for_each_random_engine(model, [&](const std::string&, xrnn::random_engine& e) { all.push_back(e.state()); });
        return all;
    }

    struct interrupted : std::runtime_error
    {
        interrupted()
            : std::runtime_error("interrupted")
        {
        }
    };
}  // namespace

TEST_CASE("gru in a sequential: it learns the memory task, and summary and signature name it")
{
    const auto data = xrnn_test::make_memory_task(200, steps, vocab, 3);
    gru_model<float> model = make_model<float>(4, 0.0);
    model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.02));
    xrnn::fit_options f;
    f.epochs = 30;
    f.batch_size = 20;
    f.verbosity = xrnn::progress::silent;
    const xrnn::history h = model.fit(data.x, data.y, f);
    CHECK(h.epochs().back().loss < 0.5 * h.epochs().front().loss);
    CHECK(model.evaluate(data.x, data.y).metric > 0.9);
    CHECK(model.summary().find("gru<float32,6,7,layers=2,last>") != std::string::npos);
    CHECK(gru_model<float>::signature().find(",gru<float32,6,7,layers=2,last>,") != std::string::npos);
    // the dropout-mask engines of both stacked cells, named as the checkpoint names them
    std::vector<std::string> names;
    xrnn::for_each_random_engine(model, [&](const std::string& name, xrnn::random_engine&) { names.push_back(name); });
    CHECK(names == std::vector<std::string>{"1.l0.mask", "1.l1.mask", "2.rng"});
}

TEST_CASE("gru weight files: save then load gives the same predictions; an lstm's file is refused")
{
    xrnn_test::scratch_dir dir("gru_weights");
    const auto data = xrnn_test::make_memory_task(24, steps, vocab, 5);
    gru_model<float> trained = make_model<float>(6);
    trained.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.01));
    trained.fit(data.x, data.y, options_for(2));
    trained.save(dir.file("gru.xrnnw"));
    gru_model<float> restored = make_model<float>(99);
    restored.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.01));
    restored.load(dir.file("gru.xrnnw"));
    CHECK(xrnn_test::weights_of(restored) == xrnn_test::weights_of(trained));
    CHECK(restored.predict(data.x) == trained.predict(data.x));

    using lstm_model = xrnn::sequential<xrnn::embedding<float, vocab, 6>, xrnn::lstm<float, 6, 7, 2>,
                                        xrnn::dropout<float>, xrnn::dense<float, 7, 1>>;
    xrnn::random_engine rng(1);
    lstm_model lstm{xrnn::embedding<float, vocab, 6>(rng), xrnn::lstm<float, 6, 7, 2>(rng), xrnn::dropout<float>(0.2, rng),
                    xrnn::dense<float, 7, 1>(rng)};
    const auto before = xrnn_test::weights_of(lstm);
    CHECK_THROWS_WITH_AS(lstm.load(dir.file("gru.xrnnw")), doctest::Contains("gru<float32,6,7,layers=2,last>"),
                         xrnn::io_error);
    CHECK(xrnn_test::weights_of(lstm) == before);
}

TEST_CASE_TEMPLATE("gru checkpoints: a run with dropout interrupted and resumed equals the uninterrupted one", T, float,
                   double)
{
    xrnn_test::scratch_dir dir("gru_checkpoint");
    const auto data = xrnn_test::make_memory_task(40, steps, vocab, 1);
    const std::size_t epochs = 5;
    gru_model<T> reference = make_model<T>(2);
    reference.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<T>(0.01));
    reference.fit(data.x, data.y, options_for(epochs));

    gru_model<T> first = make_model<T>(2);
    first.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<T>(0.01));
    xrnn::fit_options f = options_for(epochs);
    f.checkpoint_path = dir.file("run.xrnnc");
    f.on_epoch_end([](const xrnn::epoch_logs& logs) {
        if (logs.epoch == 3)
        {
            throw interrupted();
        }
    });
    CHECK_THROWS_AS(first.fit(data.x, data.y, f), interrupted);

    gru_model<T> resumed = make_model<T>(99);  // other weights and engines: the checkpoint replaces them
    resumed.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<T>(0.5));
    xrnn::fit_options g = options_for(epochs);
    g.resume_from = dir.file("run.xrnnc");
    CHECK(resumed.fit(data.x, data.y, g).size() == epochs);
    CHECK(xrnn_test::weights_of(resumed) == xrnn_test::weights_of(reference));
    CHECK(engines_of(resumed) == engines_of(reference));
}
