// Data-parallel training over MPI (include/xrnn/mpi.hpp), run by CTest under mpirun -np 2 and -np 3: N ranks with
// a per-rank batch b end with the weights of one process with batch N b (in double, to rounding; dropout off), for
// every way of reducing the embedding's gradient; with dropout the ranks' masks differ and their weights stay
// identical; evaluate and predict agree with one process; a rank that throws or meets a NaN stops every rank with
// the error; checkpoints are written by rank 0 and refused on another number of ranks.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <xrnn/model.hpp>
#include <xrnn/mpi.hpp>

namespace
{
    std::shared_ptr<xrnn::mpi::communicator> g_world;

    constexpr std::size_t vocab = 1500;  // >= sparse_min_rows: the embedding is a row-sparse candidate
    constexpr std::size_t steps = 6;

    using text_model = xrnn::sequential<xrnn::embedding<double, vocab, 8>, xrnn::lstm<double, 8, 8>,
                                        xrnn::dense<double, 8, 1>>;
    using series_model = xrnn::sequential<xrnn::gru<double, 2, 6>, xrnn::dense<double, 6, 1>>;

    text_model make_text_model(double dropout = 0.0)
    {
        xrnn::random_engine rng(7);
        xrnn::recurrent_options o;
        o.dropout = dropout;
        o.recurrent_dropout = dropout;
        text_model model{xrnn::embedding<double, vocab, 8>(rng), xrnn::lstm<double, 8, 8>(rng, o),
                         xrnn::dense<double, 8, 1>(rng)};
        model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<double>(0.01));
        return model;
    }

    /// 62 reviews of `steps` ids: the label is whether id 1 occurs. 62 = 5 x 12 + 2 leaves a last batch that some
    /// of 3 ranks have no part of.
    struct text_data
    {
        xt::xtensor<int, 2> x;
        xt::xtensor<double, 2> y;
    };

    text_data make_text_data(std::size_t n = 62)
    {
        xrnn::random_engine rng(11);
        text_data d{xt::xtensor<int, 2>({n, steps}), xt::xtensor<double, 2>({n, 1})};
        for (std::size_t i = 0; i < n; ++i)
        {
            bool has_one = false;
            for (std::size_t t = 0; t < steps; ++t)
            {
                const int id = static_cast<int>(rng.below(vocab));
                d.x(i, t) = id;
                has_one = has_one || id < 300;
            }
            d.y(i, 0) = has_one ? 1.0 : 0.0;
        }
        return d;
    }

    xrnn::fit_options options(std::size_t epochs, std::size_t batch_size)
    {
        xrnn::fit_options f;
        f.epochs = epochs;
        f.batch_size = batch_size;
        f.seed = 3;
        f.validation_split = 0.2;
        f.clip_norm = 0.5;  // clipped after averaging: the norm of the whole batch's gradient
        f.verbosity = xrnn::progress::silent;
        return f;
    }

    template <class Model>
    std::vector<double> weights(Model& model)
    {
        std::vector<double> w;
        model.for_each_parameter(
            [&](const auto&, auto& value, auto&) { w.insert(w.end(), value.begin(), value.end()); });
        return w;
    }

    double max_difference(const std::vector<double>& a, const std::vector<double>& b)
    {
        REQUIRE(a.size() == b.size());
        double d = 0.0;
        for (std::size_t i = 0; i < a.size(); ++i)
        {
            d = std::max(d, std::abs(a[i] - b[i]));
        }
        return d;
    }

    /// The largest difference between this rank's values and rank 0's, on every rank.
    double difference_to_rank0(std::vector<double> mine)
    {
        std::vector<double> root = mine;
        g_world->broadcast(root.data(), root.size() * sizeof(double));
        double d = max_difference(mine, root);
        MPI_Allreduce(MPI_IN_PLACE, &d, 1, MPI_DOUBLE, MPI_MAX, g_world->comm());
        return d;
    }

    std::string temp_path(const std::string& name)
    {
        return "/tmp/xrnn_test_mpi_" + std::to_string(g_world->size()) + "_" + name;
    }
}  // namespace

TEST_CASE("N ranks with per-rank batch b end with the weights of one process with batch N b")
{
    const std::size_t ranks = g_world->size();
    const std::size_t b = 4;
    const text_data d = make_text_data();

    text_model reference = make_text_model();  // one process (no group), batch N b
    const xrnn::history expected = reference.fit(d.x, d.y, options(3, ranks * b));
    const std::vector<double> expected_weights = weights(reference);

    for (auto policy : {xrnn::mpi::sparse_reduction::dense, xrnn::mpi::sparse_reduction::rows,
                        xrnn::mpi::sparse_reduction::union_rows})
    {
        CAPTURE(static_cast<int>(policy));
        g_world->sparse_gradients = policy;
        g_world->reset_stats();
        text_model model = make_text_model();
        model.distribute(g_world);
        const xrnn::history h = model.fit(d.x, d.y, options(3, ranks * b));
        const double difference = max_difference(weights(model), expected_weights);
        if (g_world->rank() == 0)
        {
            std::printf("np %zu, embedding gradient %s: largest weight difference to one process %.3g, across "
                        "ranks %.3g\n",
                        ranks, policy == xrnn::mpi::sparse_reduction::dense ? "dense" :
                               policy == xrnn::mpi::sparse_reduction::rows  ? "rows" : "union_rows",
                        difference, difference_to_rank0(weights(model)));
        }
        else
        {
            difference_to_rank0(weights(model));
        }
        CHECK(difference < 1e-12);
        CHECK(difference_to_rank0(weights(model)) == 0.0);  // every rank steps on the same averaged gradient
        REQUIRE(h.epochs().size() == expected.epochs().size());
        for (std::size_t e = 0; e < h.epochs().size(); ++e)
        {
            CHECK(h.epochs()[e].loss == doctest::Approx(expected.epochs()[e].loss).epsilon(1e-12));
            CHECK(h.epochs()[e].metric == doctest::Approx(expected.epochs()[e].metric).epsilon(1e-12));
            CHECK(h.epochs()[e].val_loss == doctest::Approx(expected.epochs()[e].val_loss).epsilon(1e-12));
            CHECK(h.epochs()[e].steps == expected.epochs()[e].steps);
        }
        // The embedding went the way asked: whole through the fused allreduce, or as rows.
        if (policy == xrnn::mpi::sparse_reduction::dense)
        {
            CHECK(g_world->stats().sparse_rows == 0);
        }
        else if (policy == xrnn::mpi::sparse_reduction::rows)
        {
            CHECK(g_world->stats().sparse_rows > 0);
            CHECK(g_world->stats().dense_values < g_world->stats().steps * model.parameter_count());
        }
        else  // at most 4 N * 6 of 1500 rows are touched per step: only those go into the allreduce
        {
            CHECK(g_world->stats().sparse_rows > 0);
            CHECK(g_world->stats().sparse_rows <= g_world->stats().steps * 4 * ranks * steps);
            CHECK(g_world->stats().dense_values < g_world->stats().steps * model.parameter_count() / 2);
        }
    }
    g_world->sparse_gradients = xrnn::mpi::sparse_reduction::union_rows;
}

TEST_CASE("evaluate and predict over the ranks agree with one process")
{
    const text_data d = make_text_data(29);  // not a multiple of 2 or 3
    text_model one = make_text_model();
    text_model many = make_text_model();
    many.distribute(g_world);
    const xrnn::evaluation e1 = one.evaluate(d.x, d.y, 4);
    const xrnn::evaluation en = many.evaluate(d.x, d.y, 4);
    CHECK(en.samples == 29);
    CHECK(en.loss == doctest::Approx(e1.loss).epsilon(1e-13));
    CHECK(en.metric == doctest::Approx(e1.metric).epsilon(1e-13));
    const auto p1 = one.predict(d.x, 4);
    const auto pn = many.predict(d.x, 4);
    REQUIRE(pn.shape() == p1.shape());
    CHECK(max_difference(std::vector<double>(pn.begin(), pn.end()), std::vector<double>(p1.begin(), p1.end())) == 0.0);
    // Fewer samples than ranks: some ranks predict nothing.
    xt::xtensor<int, 2> two({2, steps});
    std::copy(d.x.data(), d.x.data() + two.size(), two.data());
    const auto q1 = one.predict(two);
    const auto qn = many.predict(two);
    REQUIRE(qn.shape() == q1.shape());
    CHECK(qn(1, 0) == q1(1, 0));
}

TEST_CASE("with dropout the ranks draw other masks and keep identical weights")
{
    // 48 samples, no validation: 6 or 4 whole batches, every rank draws as many masks as every other, so only
    // the reseeding tells the ranks' engines apart.
    const text_data d = make_text_data(48);
    xrnn::fit_options f = options(2, 4 * g_world->size());  // fit_options::batch_size is the global batch
    f.validation_split = 0.0;
    text_model model = make_text_model(0.3);
    model.distribute(g_world);
    model.fit(d.x, d.y, f);
    CHECK(difference_to_rank0(weights(model)) == 0.0);
    // Each rank's engines were reseeded from rank 0's state and its rank: their states now differ.
    std::vector<double> engine_words;
    model.for_each_random_engine([&](const std::string&, xrnn::random_engine& e) {
        for (auto word : e.state())
        {
            engine_words.push_back(static_cast<double>(word % 1000003));
        }
    });
    REQUIRE(!engine_words.empty());
    const double difference = difference_to_rank0(engine_words);
    CHECK(difference > 0.0);
    // ... and a second run repeats the first exactly.
    text_model again = make_text_model(0.3);
    again.distribute(g_world);
    again.fit(d.x, d.y, f);
    CHECK(max_difference(weights(again), weights(model)) == 0.0);
}

TEST_CASE("a rank that throws stops every rank with its message")
{
    const text_data d = make_text_data();
    text_model model = make_text_model();
    model.distribute(g_world);
    xrnn::fit_options f = options(2, 4);
    auto thrower = std::make_shared<xrnn::lambda_callback>();
    thrower->batch_begin = [](xrnn::fit_context&, const xrnn::batch_logs& b) {
        if (g_world->rank() == 1 && b.step == 2)
        {
            throw xrnn::value_error("a bad batch on rank 1");
        }
    };
    f.add_callback(thrower);
    const auto start = std::chrono::steady_clock::now();
    std::string message;
    bool own = false;
    try
    {
        model.fit(d.x, d.y, f);
    }
    catch (const xrnn::process_error& e)
    {
        message = e.what();
    }
    catch (const xrnn::value_error& e)
    {
        message = e.what();
        own = true;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(seconds < 10.0);
    CHECK(own == (g_world->rank() == 1));  // the failing rank keeps its own exception
    CHECK(message.find("a bad batch on rank 1") != std::string::npos);
    if (g_world->rank() != 1)
    {
        CHECK(message == "fit: epoch 1, step 2: rank 1 of " + std::to_string(g_world->size())
                             + " failed: a bad batch on rank 1");
    }
    // The group is still usable afterwards.
    text_model next = make_text_model();
    next.distribute(g_world);
    CHECK_NOTHROW(next.fit(d.x, d.y, options(1, 4)));
}

TEST_CASE("a NaN on one rank stops or skips the batch on every rank")
{
    // 12 windows of 4 steps of 2 features; one sample's feature is NaN: one rank meets it.
    xt::xtensor<double, 3> x({12, 4, 2});
    xt::xtensor<double, 2> y({12, 1});
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        x.data()[i] = std::sin(0.3 * static_cast<double>(i));
    }
    for (std::size_t i = 0; i < 12; ++i)
    {
        y(i, 0) = std::cos(0.5 * static_cast<double>(i));
    }
    x(5, 2, 1) = std::nan("");
    auto make = [] {
        xrnn::random_engine rng(5);
        series_model m(rng);
        m.compile(xrnn::objective::mean_squared_error, xrnn::sgd<double>(0.05));
        return m;
    };
    xrnn::fit_options f;
    f.epochs = 1;
    f.batch_size = 12;  // one batch: every rank has a part, one of them the NaN
    f.shuffle = false;
    f.verbosity = xrnn::progress::silent;
    series_model stopped = make();
    stopped.distribute(g_world);
    const std::vector<double> before = weights(stopped);
    try
    {
        stopped.fit(x, y, f);
        FAIL("fit should have stopped");
    }
    catch (const xrnn::value_error& e)
    {
        // "nan" or "-nan": the sign of the NaN is the platform's
        const std::string message = e.what();
        CAPTURE(message);
        CHECK(message.find("fit: the loss became ") == 0);
        CHECK(message.find("nan at epoch 1, step 1 of 1") != std::string::npos);
    }
    CHECK(max_difference(weights(stopped), before) == 0.0);

    f.on_non_finite_loss = xrnn::non_finite_loss::skip;
    f.epochs = 2;
    series_model skipped = make();
    skipped.distribute(g_world);
    const xrnn::history h = skipped.fit(x, y, f);
    CHECK(h.epochs()[1].skipped_steps == 1);
    CHECK(max_difference(weights(skipped), before) == 0.0);
}

TEST_CASE("rank 0 writes checkpoints; resuming needs the same number of ranks")
{
    const text_data d = make_text_data();
    const std::string path = temp_path("run.xrnnc");
    const std::string single = temp_path("single.xrnnc");
    if (g_world->rank() == 0)
    {
        std::remove(path.c_str());
        text_model alone = make_text_model();  // a checkpoint written by one process, on rank 0 only
        xrnn::fit_options f = options(1, 4);
        f.checkpoint_path = single;
        alone.fit(d.x, d.y, f);
    }
    MPI_Barrier(g_world->comm());

    // Interrupted after epoch 1 of 3, then resumed: the weights of one uninterrupted run.
    text_model whole = make_text_model(0.2);
    whole.distribute(g_world);
    whole.fit(d.x, d.y, options(3, 4));
    text_model first = make_text_model(0.2);
    first.distribute(g_world);
    xrnn::fit_options f = options(1, 4);
    f.checkpoint_path = path;
    first.fit(d.x, d.y, f);
    text_model resumed = make_text_model(0.2);
    resumed.distribute(g_world);
    f = options(3, 4);
    f.resume_from = path;
    const xrnn::history h = resumed.fit(d.x, d.y, f);
    CHECK(h.epochs().size() == 3);
    CHECK(max_difference(weights(resumed), weights(whole)) == 0.0);

    // Another number of ranks is refused, on every rank, with the numbers.
    text_model other = make_text_model();
    other.distribute(g_world);
    f.resume_from = single;
    const std::string ranks = std::to_string(g_world->size());
    CHECK_THROWS_WITH_AS(other.fit(d.x, d.y, f),
                         ("fit: resume_from '" + single + "' was written by a run on 1 process but this run has "
                          + ranks + ": resume on 1 (the batches, their parts and the dropout masks depend on the "
                                    "number)").c_str(),
                         xrnn::value_error);
    if (g_world->rank() == 0)
    {
        text_model alone = make_text_model();
        xrnn::fit_options g = options(3, 4);
        g.resume_from = path;
        CHECK_THROWS_WITH_AS(alone.fit(d.x, d.y, g),
                             doctest::Contains(("was written by a run on " + ranks + " processes but this run has 1")
                                                   .c_str()),
                             xrnn::value_error);
    }
    MPI_Barrier(g_world->comm());
    if (g_world->rank() == 0)
    {
        std::remove(path.c_str());
        std::remove(single.c_str());
    }
}

TEST_CASE("every rank must pass the same data")
{
    text_data d = make_text_data();
    if (g_world->rank() == 1)
    {
        d.y(0, 0) = 1.0 - d.y(0, 0);
    }
    text_model model = make_text_model();
    model.distribute(g_world);
    CHECK_THROWS_WITH_AS(model.fit(d.x, d.y, options(1, 4)),
                         ("fit: x and y (and the validation data) differ between the ranks (1 of "
                          + std::to_string(g_world->size())
                          + " differ from rank 0's): every rank must pass the same data")
                             .c_str(),
                         xrnn::process_error);
}

int main(int argc, char** argv)
{
    xrnn::mpi::environment env(argc, argv);
    g_world = xrnn::mpi::world();
    doctest::Context context(argc, argv);
    if (g_world->rank() != 0)
    {
        context.setOption("minimal", true);  // one report, rank 0's; the other ranks print only their failures
    }
    int failed = context.run();
    // A failure on any rank fails the run.
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, g_world->comm());
    g_world.reset();
    return failed;
}
