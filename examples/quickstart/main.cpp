// quickstart: a short training run of Embedding -> LSTM -> Dense with BCE and Adam, showing the loss fall.
//
// The task needs memory: each sequence is 16 random tokens from a vocabulary of 10, and its label is 1 when
// the FIRST token is below 5. The model only sees the last hidden state, so the LSTM has to carry that bit
// through 15 steps. Chance is 50% accuracy and a loss of ln 2 = 0.693.
//
//   quickstart [--epochs N] [--seed S]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <xrnn/xrnn.hpp>

namespace
{
    constexpr std::size_t vocabulary = 10;
    constexpr std::size_t steps = 16;
    constexpr std::size_t batch = 32;
    constexpr std::size_t held_out = 1024;
    constexpr std::size_t batches_per_epoch = 20;

    struct batch_data
    {
        xt::xtensor<int, 2> ids;      // (steps, batch), time-major
        xt::xtensor<float, 2> labels; // (batch, 1)
    };

    batch_data make_batch(xrnn::random_engine& rng, std::size_t sequences)
    {
        batch_data data{xt::xtensor<int, 2>({steps, sequences}), xt::xtensor<float, 2>({sequences, 1})};
        for (std::size_t b = 0; b < sequences; ++b)
        {
            for (std::size_t t = 0; t < steps; ++t)
            {
                data.ids(t, b) = static_cast<int>(rng.below(vocabulary));
            }
            data.labels(b, 0) = data.ids(0, b) < 5 ? 1.0f : 0.0f;
        }
        return data;
    }

    std::size_t parse_count(int argc, char** argv, const char* flag, std::size_t fallback)
    {
        for (int a = 1; a + 1 < argc; ++a)
        {
            if (std::strcmp(argv[a], flag) == 0)
            {
                return static_cast<std::size_t>(std::strtoull(argv[a + 1], nullptr, 10));
            }
        }
        return fallback;
    }
}  // namespace

int main(int argc, char** argv)
{
    const std::size_t epochs = parse_count(argc, argv, "--epochs", 25);
    const std::size_t seed = parse_count(argc, argv, "--seed", 1);

    xrnn::random_engine rng(seed);
    xrnn::embedding<float, vocabulary, 8> embed(rng);
    xrnn::lstm<float, 8, 32> lstm(rng);
    xrnn::dense<float, 32, 1> head(rng);
    xrnn::adam<float> optimizer(0.01);

    xrnn::random_engine data_rng(seed + 1000);
    const batch_data test = make_batch(data_rng, held_out);
    xt::xtensor<float, 2> dlogits;

    std::printf("task: label = [first of %zu tokens < 5]; chance: loss 0.693, accuracy 50%%\n", steps);
    for (std::size_t epoch = 1; epoch <= epochs; ++epoch)
    {
        double loss_sum = 0.0;
        for (std::size_t i = 0; i < batches_per_epoch; ++i)
        {
            const batch_data data = make_batch(data_rng, batch);
            xrnn::zero_grad(embed, lstm, head);
            const auto& logits = head.forward(
                lstm.forward(embed.forward(data.ids, xrnn::mode::training), xrnn::mode::training),
                xrnn::mode::training);
            loss_sum += xrnn::binary_cross_entropy_with_logits(logits, data.labels, &dlogits);
            embed.backward(lstm.backward(head.backward(dlogits)));  // reverse order of forward
            xrnn::clip_grad_norm(1.0, embed, lstm, head);
            optimizer.step(embed, lstm, head);
        }
        const auto& logits = head.forward(lstm.forward(embed.forward(test.ids)));
        const double test_loss = xrnn::binary_cross_entropy_with_logits(logits, test.labels);
        std::size_t correct = 0;
        for (std::size_t b = 0; b < held_out; ++b)
        {
            correct += (logits(b, 0) > 0.0f) == (test.labels(b, 0) > 0.5f);
        }
        std::printf("epoch %2zu/%zu  train loss %.4f  held-out loss %.4f  accuracy %5.1f%%\n", epoch, epochs,
                    loss_sum / batches_per_epoch, test_loss, 100.0 * correct / held_out);
    }
    return 0;
}
