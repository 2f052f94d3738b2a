// Small learnable problems and model probes shared by the training-API tests.
#ifndef XRNN_TESTS_SUPPORT_TOY_TASKS_HPP
#define XRNN_TESTS_SUPPORT_TOY_TASKS_HPP

#include <cstddef>
#include <cstdint>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/random.hpp>

namespace xrnn_test
{
    /// x (N, steps) random ids below vocab, y (N, 1) = [first id < vocab / 2]: the label needs memory of step 0.
    struct memory_task
    {
        xt::xtensor<int, 2> x;
        xt::xtensor<float, 2> y;
    };

    inline memory_task make_memory_task(std::size_t n, std::size_t steps, std::size_t vocab, std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        memory_task task{xt::xtensor<int, 2>({n, steps}), xt::xtensor<float, 2>({n, 1})};
        for (std::size_t i = 0; i < n; ++i)
        {
            for (std::size_t t = 0; t < steps; ++t)
            {
                task.x(i, t) = static_cast<int>(rng.below(vocab));
            }
            task.y(i, 0) = task.x(i, 0) < static_cast<int>(vocab / 2) ? 1.0f : 0.0f;
        }
        return task;
    }

    /// Every parameter of a model (or layer), in visiting order, as doubles: compare two models' weights exactly.
    template <class Model>
    std::vector<double> weights_of(Model& model)
    {
        std::vector<double> all;
        model.for_each_parameter(
            [&](const auto&, auto& value, auto&) { all.insert(all.end(), value.begin(), value.end()); });
        return all;
    }
}  // namespace xrnn_test

#endif
