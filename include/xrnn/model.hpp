// xtensor-rnn: a model composed of layers at compile time, trained and used the way Keras's Sequential is.
//
//   xrnn::random_engine rng(42);
//   xrnn::recurrent_options o; o.dropout = 0.2; o.recurrent_dropout = 0.2;
//   xrnn::sequential model{xrnn::embedding<float, 10000, 128>(rng), xrnn::lstm<float, 128, 128>(rng, o),
//                          xrnn::dense<float, 128, 1>(rng)};
//   model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(1e-3));
//   xrnn::fit_options f; f.epochs = 5; f.batch_size = 64; f.validation_split = 0.2;
//   xrnn::history h = model.fit(x_train, y_train, f);   // x (N, S) ids, y (N, 1) in {0, 1}
//   xrnn::evaluation e = model.evaluate(x_test, y_test);
//   auto p = model.predict(x_test);                      // (N, 1) probabilities
//   model.save("imdb.xrnnw");
//
// Checkpoints: with f.checkpoint_path set, fit() saves everything it needs to continue (weights, optimizer state,
// random engines, shuffling order, history) every f.checkpoint_every epochs; a later fit() with f.resume_from
// set to that file continues from the epoch after it, with the same results as a run never interrupted.
//
// Data are batch-major as in Keras, x (N, S) token ids or (N, S, F) features; the model gathers each batch
// time-major, (S, B, ...), for the recurrent layers. The last layer outputs logits: the objective's link
// (sigmoid for binary cross-entropy, softmax for softmax cross-entropy, identity for MSE) is applied by the loss
// and by predict(), never twice.
//
// The model is itself a layer (forward, backward, for_each_parameter with names "<k>.<name>"), so the free
// functions zero_grad, clip_grad_norm and the optimizers work on it as on any layer.
#ifndef XRNN_MODEL_HPP
#define XRNN_MODEL_HPP

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/connect.hpp>
#include <xrnn/layers/activations.hpp>
#include <xrnn/layers/dense.hpp>
#include <xrnn/layers/dropout.hpp>
#include <xrnn/layers/embedding.hpp>
#include <xrnn/loss.hpp>
#include <xrnn/model/training_checkpoint.hpp>
#include <xrnn/io/weights.hpp>
#include <xrnn/model/batching.hpp>
#include <xrnn/model/history.hpp>
#include <xrnn/model/progress.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    /// What the model is trained to minimise; it also fixes the metric and predict()'s link function.
    enum class objective
    {
        mean_squared_error,     // targets: floats of the output's shape; metric: mean absolute error ("mae")
        binary_cross_entropy,   // on logits; targets in {0, 1} of the output's shape; metric: accuracy
        softmax_cross_entropy   // on logits (.., C); targets: integer class ids (..); metric: accuracy
    };

    /// What fit() does when a batch's loss is NaN or infinite, or its gradient is (a finite loss can still
    /// overflow in backward): the step would leave weights that are not numbers.
    enum class non_finite_loss
    {
        stop,  // throw xrnn::value_error naming the epoch and step; the weights stay those of the last good step
        skip   // drop the batch without updating the weights, count it in epoch_logs::skipped_steps
    };

    /// Keras's EarlyStopping: stop when `monitor` has not improved by more than min_delta for `patience` epochs.
    struct early_stopping
    {
        std::string monitor = "val_loss";  // "loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae"
        double min_delta = 0.0;
        std::size_t patience = 0;
        bool restore_best_weights = false;
    };

    /// What an epoch-end callback returns.
    enum class fit_control
    {
        proceed,
        stop
    };

    struct fit_options
    {
        std::size_t epochs = 1;
        std::size_t batch_size = 32;
        double validation_split = 0.0;  // fraction in [0, 1) taken from the END of the data, before shuffling (Keras)
        bool shuffle = true;            // reshuffle the training samples every epoch
        std::uint64_t seed = 0;         // of the shuffling; dropout draws from each layer's own engine
        double clip_norm = 0.0;         // clip_grad_norm before each step when > 0
        non_finite_loss on_non_finite_loss = non_finite_loss::stop;
        progress verbosity = progress::automatic;
        std::ostream* out = &std::cout;  // where progress goes
        std::optional<early_stopping> early_stop;
        std::vector<std::function<fit_control(const epoch_logs&)>> callbacks;

        /// When not empty, a checkpoint (io/checkpoint.hpp) is saved there, atomically, after every
        /// checkpoint_every-th epoch and after the last epoch run (the end, or a stop by a callback or early stopping).
        std::string checkpoint_path;
        std::size_t checkpoint_every = 1;
        /// When not empty, fit() first loads this checkpoint (all or nothing) and continues with the epoch after
        /// the one it holds, up to `epochs` in all; the data must be the same (checked by a fingerprint). The
        /// returned history holds the epochs before the checkpoint too. A run that had stopped early continues.
        std::string resume_from;

        /// Adds a function called after every epoch; it may return fit_control::stop to end training, or nothing.
        template <class F>
        fit_options& on_epoch_end(F f)
        {
            if constexpr (std::is_void<std::invoke_result_t<F&, const epoch_logs&>>::value)
            {
                callbacks.emplace_back([f](const epoch_logs& logs) mutable {
                    f(logs);
                    return fit_control::proceed;
                });
            }
            else
            {
                callbacks.emplace_back(std::move(f));
            }
            return *this;
        }
    };

    /// What evaluate() measured: the mean loss and the metric over all samples.
    struct evaluation
    {
        double loss = 0.0;
        double metric = 0.0;
        std::string metric_name;
        std::size_t samples = 0;
    };

    namespace detail
    {
        /// Whether n floats or doubles are all finite: an exponent of all ones is inf or nan. Integer bit tests
        /// vectorise, where a floating-point sum or one std::isfinite per element would not.
        template <class G>
        bool all_finite(const G* values, std::size_t n) noexcept
        {
            using bits_type = std::conditional_t<sizeof(G) == 4, std::uint32_t, std::uint64_t>;
            static_assert(sizeof(G) == sizeof(bits_type), "xrnn: gradients are float or double");
            constexpr bits_type exponent = sizeof(G) == 4 ? bits_type(0x7f800000u) : bits_type(0x7ff0000000000000ull);
            bits_type bad = 0;
            for (std::size_t i = 0; i < n; ++i)
            {
                bits_type bits;
                std::memcpy(&bits, values + i, sizeof bits);
                bad |= static_cast<bits_type>((bits & exponent) == exponent);
            }
            return bad == 0;
        }

        /// Whether every gradient of a layer or model is finite.
        template <class Layer>
        bool gradients_finite(Layer& layer)
        {
            bool finite = true;
            layer.for_each_parameter(
                [&](const auto&, auto&, auto& grad) { finite = finite && all_finite(grad.data(), grad.size()); });
            return finite;
        }

        /// Layers with sizes (everything but activations and dropout, which keep the size of what they get).
        template <class Layer, class = void>
        struct has_sizes : std::false_type
        {
        };
        template <class Layer>
        struct has_sizes<Layer, std::void_t<decltype(Layer::input_size), decltype(Layer::output_size)>> : std::true_type
        {
        };

        /// Checks every sized layer against the nearest sized layer below it (size-keeping layers in between).
        template <class Below, class... Rest>
        struct check_chain
        {
            static constexpr bool value = true;
        };
        template <class Below, class Next, class... Rest>
        struct check_chain<Below, Next, Rest...>
        {
            static constexpr bool check() noexcept
            {
                static_assert(std::is_same<typename Below::value_type, typename Next::value_type>::value,
                              "xrnn: neighbouring layers must use the same scalar type T");
                if constexpr (has_sizes<Next>::value)
                {
                    assert_connectable<Below, Next>();
                    return check_chain<Next, Rest...>::value;
                }
                else
                {
                    return check_chain<Below, Rest...>::value;
                }
            }
            static constexpr bool value = check();
        };

        /// Layer::output_size, or `below` for a layer that keeps the size of its input.
        template <class Layer>
        constexpr std::size_t output_size_after(std::size_t below) noexcept
        {
            if constexpr (has_sizes<Layer>::value)
            {
                return Layer::output_size;
            }
            else
            {
                return below;
            }
        }

        template <class... Layers>
        constexpr std::size_t chain_output_size() noexcept
        {
            std::size_t size = 0;
            ((size = output_size_after<Layers>(size)), ...);
            return size;
        }

        template <class Layer>
        Layer make_layer(random_engine& rng)
        {
            if constexpr (std::is_constructible<Layer, random_engine&>::value)
            {
                return Layer(rng);
            }
            else
            {
                static_assert(std::is_default_constructible<Layer>::value,
                              "xrnn::sequential(rng): this layer needs arguments (e.g. dropout's rate); build the "
                              "model from layer objects instead: sequential{layer_a(rng), dropout<T>(0.2, rng), ...}");
                return Layer();
            }
        }

        inline std::string objective_name(std::uint64_t code)
        {
            switch (code)
            {
            case static_cast<std::uint64_t>(objective::mean_squared_error): return "mean_squared_error";
            case static_cast<std::uint64_t>(objective::binary_cross_entropy): return "binary_cross_entropy";
            case static_cast<std::uint64_t>(objective::softmax_cross_entropy): return "softmax_cross_entropy";
            default: return "objective " + std::to_string(code);
            }
        }

        template <class Optimizer, class = void>
        struct has_snapshot : std::false_type
        {
        };
        template <class Optimizer>
        struct has_snapshot<Optimizer, std::void_t<decltype(std::declval<const Optimizer&>().snapshot())>>
            : std::true_type
        {
        };

        /// FNV-1a of a tensor's shape and values (host byte order), chained onto `hash`: tells data sets apart.
        template <class V, std::size_t N>
        std::uint64_t fingerprint(const xt::xtensor<V, N>& a, std::uint64_t hash)
        {
            for (auto extent : a.shape())
            {
                const auto value = static_cast<std::uint64_t>(extent);
                hash = io::fnv1a64(reinterpret_cast<const char*>(&value), sizeof value, hash);
            }
            return io::fnv1a64(reinterpret_cast<const char*>(a.data()), a.size() * sizeof(V), hash);
        }

        /// Sums that make an epoch's mean loss and metric exact whatever the batch sizes.
        struct running_score
        {
            double loss_sum = 0.0;    // batch mean loss x samples in the batch
            double metric_sum = 0.0;  // correct predictions, or absolute errors
            double metric_count = 0.0;
            std::size_t samples = 0;

            double loss() const noexcept
            {
                return samples == 0 ? 0.0 : loss_sum / static_cast<double>(samples);
            }
            double metric() const noexcept
            {
                return metric_count == 0.0 ? 0.0 : metric_sum / metric_count;
            }
        };
    }  // namespace detail

    template <class... Layers>
    class sequential
    {
        static_assert(sizeof...(Layers) >= 1, "xrnn::sequential: a model needs at least one layer");
        static_assert((check_layer<Layers>() && ...), "xrnn::sequential: every layer needs the members of layer_traits.hpp");
        using layers_type = std::tuple<Layers...>;
        using first_layer = std::tuple_element_t<0, layers_type>;
        static_assert(detail::has_sizes<first_layer>::value,
                      "xrnn::sequential: the first layer must have an input size (embedding, rnn, lstm or dense)");
        static_assert(detail::check_chain<Layers...>::value, "xrnn::sequential: layers do not connect");

    public:
        using value_type = typename first_layer::value_type;
        using T = value_type;
        static constexpr std::size_t layer_count = sizeof...(Layers);
        static constexpr std::size_t input_size = first_layer::input_size;
        static constexpr std::size_t output_size = detail::chain_output_size<Layers...>();
        static constexpr bool sequence_input = first_layer::reads_sequence;

        /// Each layer built from the engine with its defaults (layers that need more, build yourself, see below).
        explicit sequential(random_engine& rng)
            : m_layers(detail::make_layer<Layers>(rng)...)
        {
        }

        /// From layers built with their options: sequential{embedding<..>(rng), lstm<..>(rng, options), ...}.
        explicit sequential(Layers... layers)
            : m_layers(std::move(layers)...)
        {
        }

        sequential(const sequential& other)
            : m_layers(other.m_layers)
            , m_objective(other.m_objective)
            , m_optimizer(other.m_optimizer ? other.m_optimizer->clone() : nullptr)
        {
        }

        sequential& operator=(const sequential& other)
        {
            if (this != &other)
            {
                sequential copy(other);
                *this = std::move(copy);
            }
            return *this;
        }

        sequential(sequential&&) noexcept = default;
        sequential& operator=(sequential&&) noexcept = default;
        ~sequential() = default;

        // ---- structure -----------------------------------------------------------------------------------------

        template <std::size_t K>
        auto& layer() noexcept
        {
            return std::get<K>(m_layers);
        }

        template <std::size_t K>
        const auto& layer() const noexcept
        {
            return std::get<K>(m_layers);
        }

        /// "sequential<embedding<float32,10000,128>,lstm<float32,128,128,layers=1,last>,dense<float32,128,1>>"
        static std::string signature()
        {
            std::string text = "sequential<";
            bool first = true;
            ((text += (first ? "" : ","), text += Layers::signature(), first = false), ...);
            return text + ">";
        }

        /// Visits every parameter as f(name, value, gradient); names are "<layer index>.<layer's own name>".
        template <class F>
        void for_each_parameter(F&& f)
        {
            visit_layers([&](std::size_t k, auto& layer) {
                const std::string prefix = std::to_string(k) + ".";
                layer.for_each_parameter(
                    [&](const auto& name, auto& value, auto& grad) { f(prefix + name, value, grad); });
            });
        }

        /// Visits the random engine of every layer that draws dropout masks as f(name, engine); names are
        /// "<layer index>.<the layer's name>", e.g. "1.l0.mask" (checkpoints save and restore them).
        template <class F>
        void for_each_random_engine(F&& f)
        {
            visit_layers([&](std::size_t k, auto& layer) {
                const std::string prefix = std::to_string(k) + ".";
                xrnn::for_each_random_engine(layer,
                                             [&](const std::string& name, random_engine& engine) { f(prefix + name, engine); });
            });
        }

        std::size_t parameter_count()
        {
            std::size_t count = 0;
            for_each_parameter([&](const auto&, auto& value, auto&) { count += value.size(); });
            return count;
        }

        /// One line per layer with its parameter count, and the total (Keras's model.summary()).
        std::string summary()
        {
            std::ostringstream text;
            std::size_t total = 0;
            visit_layers([&](std::size_t k, auto& layer) {
                std::size_t count = 0;
                layer.for_each_parameter([&](const auto&, auto& value, auto&) { count += value.size(); });
                total += count;
                text << k << "  " << std::decay_t<decltype(layer)>::signature() << "  " << count
                     << " parameters\n";
            });
            text << "total " << total << " parameters (" << total * sizeof(T) << " bytes)\n";
            return text.str();
        }

        // ---- the model as a layer --------------------------------------------------------------------------------

        /// Forward through every layer; x is a time-major batch for sequence models, (B, F) otherwise.
        template <class X>
        const auto& forward(const X& x, mode m = mode::inference)
        {
            return forward_from<0>(x, m);
        }

        /// Backward in reverse order of forward; accumulates every layer's gradients.
        template <class G>
        void backward(const G& dy)
        {
            backward_from<layer_count - 1>(dy);
        }

        // ---- training --------------------------------------------------------------------------------------------

        /// Keras's compile: the objective, and the optimizer the model keeps and steps (sgd, adam, rmsprop...).
        template <class Optimizer>
        void compile(objective loss, Optimizer optimizer)
        {
            m_objective = loss;
            m_optimizer = std::make_unique<optimizer_model<Optimizer>>(std::move(optimizer));
        }

        /// The compiled objective (state_error before compile).
        objective loss_objective() const
        {
            require_compiled("loss_objective");
            return *m_objective;
        }

        /// The compiled optimizer, e.g. model.optimizer<xrnn::adam<float>>().learning_rate = 1e-4.
        template <class Optimizer>
        Optimizer& optimizer()
        {
            require_compiled("optimizer");
            auto* held = dynamic_cast<optimizer_model<Optimizer>*>(m_optimizer.get());
            if (held == nullptr)
            {
                throw state_error("sequential::optimizer: the model was compiled with another optimizer type");
            }
            return held->optimizer;
        }

        /// "accuracy" for the classification objectives, "mae" for mean squared error.
        std::string metric_name() const
        {
            return loss_objective() == objective::mean_squared_error ? "mae" : "accuracy";
        }

        /// Trains on x (N, ...) and y (N, ...); validation from options.validation_split.
        template <class XV, std::size_t XN, class YV, std::size_t YN>
        history fit(const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y, const fit_options& options = {})
        {
            check_data("fit", x, y);
            const double split = options.validation_split;
            if (!(split >= 0.0 && split < 1.0))
            {
                std::ostringstream message;
                message << "fit: validation_split expected in [0, 1) but is " << split;
                throw value_error(message.str());
            }
            const std::size_t n = x.shape()[0];
            // Keras: the first int(N * (1 - split)) samples train, the rest validate.
            const auto train_count = static_cast<std::size_t>(static_cast<double>(n) * (1.0 - split));
            if (split > 0.0 && (train_count == 0 || train_count == n))
            {
                std::ostringstream message;
                message << "fit: validation_split " << split << " of " << n << " samples leaves "
                        << train_count << " for training and " << n - train_count
                        << " for validation; both need at least one";
                throw value_error(message.str());
            }
            std::vector<std::size_t> train(train_count);
            std::iota(train.begin(), train.end(), std::size_t(0));
            std::vector<std::size_t> validation(n - train_count);
            std::iota(validation.begin(), validation.end(), train_count);
            return run_fit(x, y, std::move(train), x, y, std::move(validation), options);
        }

        /// Trains on x, y and validates on explicit data (options.validation_split must be 0).
        template <class XV, std::size_t XN, class YV, std::size_t YN>
        history fit(const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y, const xt::xtensor<XV, XN>& x_val,
                    const xt::xtensor<YV, YN>& y_val, const fit_options& options = {})
        {
            check_data("fit", x, y);
            check_data("fit (validation data)", x_val, y_val);
            if (options.validation_split != 0.0)
            {
                throw value_error("fit: validation data were given, so validation_split must be 0 (it is "
                                  + std::to_string(options.validation_split) + ")");
            }
            return run_fit(x, y, all_indices(x.shape()[0]), x_val, y_val, all_indices(x_val.shape()[0]), options);
        }

        /// Mean loss and metric over x, y in inference mode.
        template <class XV, std::size_t XN, class YV, std::size_t YN>
        evaluation evaluate(const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y, std::size_t batch_size = 128)
        {
            check_data("evaluate", x, y);
            check_batch_size("evaluate", batch_size);
            const detail::running_score score = score_indices(x, y, all_indices(x.shape()[0]), batch_size);
            return evaluation{score.loss(), score.metric(), metric_name(), score.samples};
        }

        /// Outputs for x (N, ...), batch-major, after the objective's link: probabilities for the
        /// classification objectives, values for MSE. (N, out) for many-to-one models, (N, S, out) for sequences.
        template <class XV, std::size_t XN>
        auto predict(const xt::xtensor<XV, XN>& x, std::size_t batch_size = 128)
        {
            check_inputs("predict", x);
            check_batch_size("predict", batch_size);
            const std::size_t n = x.shape()[0];
            const std::vector<std::size_t> index = all_indices(n);
            batch_input_t<XV, XN> batch;
            using out_type = output_t<XV, XN>;
            out_type result;
            for (std::size_t first = 0; first < n; first += batch_size)
            {
                const std::size_t count = std::min(batch_size, n - first);
                detail::gather<sequence_input>(x, index, first, count, batch);
                const out_type& out = forward(batch, mode::inference);
                if (first == 0)
                {
                    auto shape = out.shape();
                    shape[output_time_major<XV, XN> ? 1 : 0] = n;
                    if constexpr (output_time_major<XV, XN>)
                    {
                        std::swap(shape[0], shape[1]);
                    }
                    result = out_type(shape);
                }
                detail::scatter<output_time_major<XV, XN>>(out, first, result);
            }
            apply_link(result);
            return result;
        }

        /// predict() for one sample: x (S) ids or (S, F) features; returns (out) or (S, out).
        template <class XV, std::size_t XN>
        auto predict_one(const xt::xtensor<XV, XN>& sample)
        {
            std::array<std::size_t, XN + 1> shape;
            shape[0] = 1;
            std::copy(sample.shape().begin(), sample.shape().end(), shape.begin() + 1);
            xt::xtensor<XV, XN + 1> batch(shape);
            std::copy(sample.begin(), sample.end(), batch.begin());
            auto all = predict(batch, 1);
            using result_type = xt::xtensor<T, std::decay_t<decltype(all)>::rank - 1>;
            typename result_type::shape_type out_shape;
            std::copy(all.shape().begin() + 1, all.shape().end(), out_shape.begin());
            result_type one(out_shape);
            std::copy(all.begin(), all.end(), one.begin());
            return one;
        }

        // ---- weights ---------------------------------------------------------------------------------------------

        /// Saves the weights (not the optimizer state: see checkpoints) atomically; format: docs/weight-format.md.
        void save(const std::string& path)
        {
            save_weights(path, *this);
        }

        /// Loads weights saved by a model of the same signature; a bad file leaves this model unchanged.
        void load(const std::string& path)
        {
            load_weights(path, *this);
        }

    private:
        struct optimizer_concept
        {
            virtual ~optimizer_concept() = default;
            virtual void step(sequential& model) = 0;
            virtual std::unique_ptr<optimizer_concept> clone() const = 0;
            virtual optimizer_snapshot<T> snapshot() const = 0;
            virtual void restore(const optimizer_snapshot<T>& snapshot) = 0;
        };

        template <class Optimizer>
        struct optimizer_model final : optimizer_concept
        {
            explicit optimizer_model(Optimizer o)
                : optimizer(std::move(o))
            {
            }
            void step(sequential& model) override
            {
                optimizer.step(model);
            }
            std::unique_ptr<optimizer_concept> clone() const override
            {
                return std::make_unique<optimizer_model>(optimizer);
            }
            optimizer_snapshot<T> snapshot() const override
            {
                if constexpr (detail::has_snapshot<Optimizer>::value)
                {
                    return optimizer.snapshot();
                }
                else
                {
                    throw state_error("fit: checkpoints need an optimizer with snapshot() and restore() (sgd, adam, "
                                      "rmsprop have them); the compiled one has not");
                }
            }
            void restore(const optimizer_snapshot<T>& snapshot) override
            {
                if constexpr (detail::has_snapshot<Optimizer>::value)
                {
                    optimizer.restore(snapshot);
                }
                else
                {
                    throw state_error("fit: checkpoints need an optimizer with snapshot() and restore() (sgd, adam, "
                                      "rmsprop have them); the compiled one has not");
                }
            }
            Optimizer optimizer;
        };

        // Batch types: ids (S, B) or features (S, B, F) keep the data's value type and rank.
        template <class XV, std::size_t XN>
        using batch_input_t = xt::xtensor<std::conditional_t<std::is_integral<XV>::value, XV, T>, XN>;

        // Self is a parameter so that the expression depends on one: with sequential& itself, clang looks up
        // forward() while the class is still incomplete and rejects it.
        template <class XV, std::size_t XN, class Self = sequential>
        using output_t = std::decay_t<decltype(std::declval<Self&>().forward(
            std::declval<const batch_input_t<XV, XN>&>(), mode::inference))>;

        // Outputs of rank 3 are (S, B, out): a target per step, gathered time-major too.
        template <class XV, std::size_t XN>
        static constexpr bool output_time_major = output_t<XV, XN>::rank == 3;

        template <class F>
        void visit_layers(F&& f)
        {
            visit_layers_from<0>(f);
        }

        template <std::size_t K, class F>
        void visit_layers_from(F& f)
        {
            f(K, std::get<K>(m_layers));
            if constexpr (K + 1 < layer_count)
            {
                visit_layers_from<K + 1>(f);
            }
        }

        template <std::size_t K, class X>
        const auto& forward_from(const X& x, mode m)
        {
            const auto& y = std::get<K>(m_layers).forward(x, m);
            if constexpr (K + 1 == layer_count)
            {
                return y;
            }
            else
            {
                return forward_from<K + 1>(y, m);
            }
        }

        template <std::size_t K, class G>
        void backward_from(const G& dy)
        {
            if constexpr (K == 0)
            {
                std::get<0>(m_layers).backward(dy);
            }
            else
            {
                backward_from<K - 1>(std::get<K>(m_layers).backward(dy));
            }
        }

        void require_compiled(const char* where) const
        {
            if (!m_objective || !m_optimizer)
            {
                throw state_error(std::string("sequential::") + where
                                  + ": call compile(objective, optimizer) before training or evaluating");
            }
        }

        static std::vector<std::size_t> all_indices(std::size_t n)
        {
            std::vector<std::size_t> index(n);
            std::iota(index.begin(), index.end(), std::size_t(0));
            return index;
        }

        static void check_batch_size(const char* where, std::size_t batch_size)
        {
            detail::check_positive(where, "batch_size", batch_size);
        }

        template <class XV, std::size_t XN>
        static void check_inputs(const char* where, const xt::xtensor<XV, XN>& x)
        {
            static_assert(std::is_integral<XV>::value == first_layer::reads_token_ids,
                          "xrnn::sequential: x must hold integer token ids for a model that starts with an embedding, "
                          "floating-point features otherwise");
            static_assert(!sequence_input || XN >= 2, "xrnn::sequential: sequence data must be (N, S) or (N, S, F)");
            if (x.shape()[0] == 0)
            {
                throw shape_error(std::string(where) + ": the data set is empty (x has 0 samples, shape "
                                  + detail::shape_to_string(x.shape()) + ")");
            }
            if constexpr (sequence_input)
            {
                if (x.shape()[1] == 0)
                {
                    throw shape_error(std::string(where) + ": sequences of 0 steps (x shape "
                                      + detail::shape_to_string(x.shape()) + ")");
                }
            }
            if constexpr (first_layer::reads_token_ids)
            {
                // All ids before the first batch: the embedding would refuse a bad one only when its batch comes,
                // after fit() had already trained on the batches before it.
                constexpr std::size_t vocabulary = first_layer::vocabulary_size;
                const std::size_t steps = x.shape()[1];
                const std::size_t per_sample = x.size() / x.shape()[0];
                for (std::size_t j = 0; j < x.size(); ++j)
                {
                    if (!detail::index_in_range(x.data()[j], vocabulary))
                    {
                        throw value_error(std::string(where) + ": token id " + std::to_string(x.data()[j])
                                          + " of sample " + std::to_string(j / per_sample) + ", step "
                                          + std::to_string((j % per_sample) % steps) + " is outside the vocabulary [0, "
                                          + std::to_string(vocabulary) + ")");
                    }
                }
            }
        }

        template <class XV, std::size_t XN, class YV, std::size_t YN>
        void check_data(const char* where, const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y) const
        {
            require_compiled(where);
            check_inputs(where, x);
            if (y.shape()[0] != x.shape()[0])
            {
                throw shape_error(std::string(where) + ": y has " + std::to_string(y.shape()[0])
                                  + " samples but x has " + std::to_string(x.shape()[0]) + " (x shape "
                                  + detail::shape_to_string(x.shape()) + ", y shape " + detail::shape_to_string(y.shape())
                                  + ")");
            }
            constexpr std::size_t out_rank = output_t<XV, XN>::rank;
            if constexpr (YN + 1 >= out_rank && YN <= out_rank)  // other ranks: a static_assert below says why
            {
                // One target per output: y (N, out) or (N, S, out), class ids (N) or (N, S); checked before any
                // batch, so a wrong y is not found only by the loss of the first batch.
                std::array<std::size_t, YN> expected;
                std::copy(y.shape().begin(), y.shape().end(), expected.begin());
                if constexpr (YN >= 2 && out_rank == 3)
                {
                    expected[1] = x.shape()[1];
                }
                if constexpr (!std::is_integral<YV>::value)
                {
                    expected[YN - 1] = output_size;
                }
                detail::check_same_shape(where, "y", y.shape(), expected, " (one target per output of the model)");
            }
            const objective goal = *m_objective;
            if constexpr (std::is_integral<YV>::value)
            {
                static_assert(YN + 1 == out_rank,
                              "xrnn::sequential: integer targets are class ids, one per output row: y (N) for a "
                              "(B, C) output, y (N, S) for an (S, B, C) output");
                if (goal != objective::softmax_cross_entropy)
                {
                    throw value_error(std::string(where) + ": integer class ids as targets need "
                                      "objective::softmax_cross_entropy; this model was compiled for another");
                }
                const std::size_t per_sample = y.size() / y.shape()[0];
                for (std::size_t j = 0; j < y.size(); ++j)
                {
                    if (!detail::index_in_range(y.data()[j], output_size))
                    {
                        throw value_error(std::string(where) + ": class id " + std::to_string(y.data()[j])
                                          + " of sample " + std::to_string(j / per_sample) + " is outside [0, "
                                          + std::to_string(output_size) + ")");
                    }
                }
            }
            else
            {
                static_assert(YN == out_rank, "xrnn::sequential: float targets must have the output's rank: y (N, out) "
                                              "for a (B, out) output, y (N, S, out) for an (S, B, out) output");
                if (goal == objective::softmax_cross_entropy)
                {
                    throw value_error(std::string(where) + ": objective::softmax_cross_entropy needs integer class ids "
                                      "as targets, but y holds floating-point values");
                }
                if (goal == objective::binary_cross_entropy)
                {
                    for (std::size_t j = 0; j < y.size(); ++j)
                    {
                        const YV v = y.data()[j];
                        if (!(v == YV(0) || v == YV(1)))
                        {
                            std::ostringstream message;
                            message << where << ": binary cross-entropy labels expected in {0, 1} but sample "
                                    << j / (y.size() / y.shape()[0]) << " has " << v;
                            throw value_error(message.str());
                        }
                    }
                }
            }
        }

        /// Batch loss (its mean, with dL/dout into *grad when not null), and the metric's sum and count.
        template <class Out, class Target>
        double score_batch(const Out& out, const Target& target, Out* grad, detail::running_score& score,
                           std::size_t samples) const
        {
            double loss = 0.0;
            using YV = typename Target::value_type;
            if constexpr (std::is_integral<YV>::value)
            {
                loss = softmax_cross_entropy(out, target, grad);
                const std::size_t classes = out.shape()[Out::rank - 1];
                const std::size_t rows = out.size() / classes;
                for (std::size_t r = 0; r < rows; ++r)
                {
                    const T* row = out.data() + r * classes;
                    const auto best = static_cast<std::size_t>(std::max_element(row, row + classes) - row);
                    score.metric_sum += best == static_cast<std::size_t>(target.data()[r]) ? 1.0 : 0.0;
                }
                score.metric_count += static_cast<double>(rows);
            }
            else if (*m_objective == objective::binary_cross_entropy)
            {
                loss = binary_cross_entropy_with_logits(out, target, grad);
                for (std::size_t j = 0; j < out.size(); ++j)
                {
                    score.metric_sum += (out.data()[j] > T(0)) == (target.data()[j] > T(0.5)) ? 1.0 : 0.0;
                }
                score.metric_count += static_cast<double>(out.size());
            }
            else
            {
                loss = mean_squared_error(out, target, grad);
                for (std::size_t j = 0; j < out.size(); ++j)
                {
                    score.metric_sum += std::abs(static_cast<double>(out.data()[j]) - target.data()[j]);
                }
                score.metric_count += static_cast<double>(out.size());
            }
            score.loss_sum += loss * static_cast<double>(samples);
            score.samples += samples;
            return loss;
        }

        template <class Out>
        void apply_link(Out& out) const
        {
            const objective goal = loss_objective();
            if (goal == objective::binary_cross_entropy)
            {
                activation::sigmoid::forward(out, out);
            }
            else if (goal == objective::softmax_cross_entropy)
            {
                const std::size_t classes = out.shape()[Out::rank - 1];
                activation::softmax::forward_rows(out.data(), out.data(), out.size() / classes, classes);
            }
        }

        template <class XV, std::size_t XN, class YV, std::size_t YN>
        using target_t = xt::xtensor<std::conditional_t<std::is_integral<YV>::value, YV, T>, YN>;

        template <class XV, std::size_t XN, class YV, std::size_t YN>
        detail::running_score score_indices(const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y,
                                            const std::vector<std::size_t>& index, std::size_t batch_size)
        {
            detail::running_score score;
            batch_input_t<XV, XN> batch;
            target_t<XV, XN, YV, YN> target;
            for (std::size_t first = 0; first < index.size(); first += batch_size)
            {
                const std::size_t count = std::min(batch_size, index.size() - first);
                detail::gather<sequence_input>(x, index, first, count, batch);
                detail::gather<output_time_major<XV, XN>>(y, index, first, count, target);
                const auto& out = forward(batch, mode::inference);
                score_batch(out, target, static_cast<std::decay_t<decltype(out)>*>(nullptr), score, count);
            }
            return score;
        }

        /// The monitored value of an epoch, and whether lower is better.
        static std::pair<double, bool> monitored(const early_stopping& rule, const epoch_logs& logs,
                                                 const std::string& metric)
        {
            if (rule.monitor == "loss") return {logs.loss, true};
            if (rule.monitor == "val_loss") return {logs.val_loss, true};
            if (rule.monitor == metric) return {logs.metric, metric == "mae"};
            return {logs.val_metric, metric == "mae"};  // "val_" + metric, checked before training
        }

        void check_early_stopping(const fit_options& options, bool has_validation) const
        {
            if (!options.early_stop)
            {
                return;
            }
            const std::string& monitor = options.early_stop->monitor;
            const std::string metric = metric_name();
            const bool known = monitor == "loss" || monitor == "val_loss" || monitor == metric
                               || monitor == "val_" + metric;
            if (!known)
            {
                throw value_error("fit: early_stopping monitors '" + monitor + "', expected one of loss, val_loss, "
                                  + metric + ", val_" + metric);
            }
            if (monitor.rfind("val_", 0) == 0 && !has_validation)
            {
                throw value_error("fit: early_stopping monitors '" + monitor
                                  + "' but there is no validation data (set validation_split or pass x_val, y_val)");
            }
        }

        /// Loads a checkpoint for fit(), refusing one written for other data or another objective before anything
        /// changes; then applies it (all or nothing) and returns fit()'s progress.
        training_progress<T> resume(const std::string& path, std::size_t train_samples, std::size_t validation_samples,
                                    std::uint64_t fingerprint)
        {
            checkpoint_contents<T> contents = read_checkpoint(path, *this, *m_optimizer);
            const training_progress<T>& p = contents.progress;
            if (p.order.size() != train_samples || p.validation_samples != validation_samples)
            {
                throw value_error("fit: resume_from '" + path + "' was written for " + std::to_string(p.order.size())
                                  + " training and " + std::to_string(p.validation_samples)
                                  + " validation samples, but this fit has " + std::to_string(train_samples) + " and "
                                  + std::to_string(validation_samples));
            }
            if (p.data_fingerprint != fingerprint)
            {
                throw value_error("fit: resume_from '" + path + "' was written for other data: x and y (and the "
                                  "validation data) must be those of the interrupted run");
            }
            if (p.objective != static_cast<std::uint64_t>(*m_objective))
            {
                throw value_error("fit: resume_from '" + path + "' was written when training for "
                                  + detail::objective_name(p.objective) + ", but the model is compiled for "
                                  + detail::objective_name(static_cast<std::uint64_t>(*m_objective)));
            }
            return apply_checkpoint(std::move(contents), *this, *m_optimizer);
        }

        template <class XV, std::size_t XN, class YV, std::size_t YN>
        history run_fit(const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y, std::vector<std::size_t> train,
                        const xt::xtensor<XV, XN>& x_val, const xt::xtensor<YV, YN>& y_val,
                        const std::vector<std::size_t>& validation, const fit_options& options)
        {
            using clock = std::chrono::steady_clock;
            detail::check_positive("fit", "epochs", options.epochs);
            check_batch_size("fit", options.batch_size);
            const bool has_validation = !validation.empty();
            check_early_stopping(options, has_validation);
            const bool checkpointing = !options.checkpoint_path.empty();
            if (checkpointing)
            {
                detail::check_positive("fit", "checkpoint_every", options.checkpoint_every);
            }

            const std::string metric = metric_name();
            history result(metric);
            detail::progress_printer printer(options.out, options.verbosity, metric);
            random_engine shuffle_rng(options.seed);
            batch_input_t<XV, XN> batch;
            target_t<XV, XN, YV, YN> target;
            output_t<XV, XN> grad;

            const std::size_t steps = (train.size() + options.batch_size - 1) / options.batch_size;
            double best = 0.0;
            std::size_t epochs_without_improvement = 0;
            std::vector<std::vector<T>> best_weights;
            std::size_t first_epoch = 1;
            std::uint64_t fingerprint = 0;
            if (checkpointing || !options.resume_from.empty())
            {
                fingerprint = detail::fingerprint(y, detail::fingerprint(x, io::fnv1a64(nullptr, 0)));
                if (&x_val != &x)
                {
                    fingerprint = detail::fingerprint(y_val, detail::fingerprint(x_val, fingerprint));
                }
            }
            if (!options.resume_from.empty())
            {
                training_progress<T> progress = resume(options.resume_from, train.size(), validation.size(), fingerprint);
                first_epoch = static_cast<std::size_t>(progress.epoch) + 1;
                shuffle_rng.set_state(progress.shuffle_engine);
                train.assign(progress.order.begin(), progress.order.end());
                for (const epoch_logs& logs : progress.history)
                {
                    result.append(logs);
                }
                best = progress.best;
                epochs_without_improvement = static_cast<std::size_t>(progress.epochs_without_improvement);
                best_weights = std::move(progress.best_weights);
            }
            auto write_checkpoint = [&](std::size_t epoch) {
                training_progress<T> progress;
                progress.epoch = epoch;
                progress.shuffle_engine = shuffle_rng.state();
                progress.order.assign(train.begin(), train.end());
                progress.validation_samples = validation.size();
                progress.data_fingerprint = fingerprint;
                progress.objective = static_cast<std::uint64_t>(*m_objective);
                progress.history = result.epochs();
                progress.best = best;
                progress.epochs_without_improvement = epochs_without_improvement;
                progress.best_weights = best_weights;
                save_checkpoint(options.checkpoint_path, *this, *m_optimizer, progress);
            };
            for (std::size_t epoch = first_epoch; epoch <= options.epochs; ++epoch)
            {
                const auto start = clock::now();
                if (options.shuffle)
                {
                    for (std::size_t i = train.size(); i > 1; --i)  // Fisher-Yates
                    {
                        std::swap(train[i - 1], train[shuffle_rng.below(i)]);
                    }
                }
                printer.begin_epoch(epoch, options.epochs, steps);
                detail::running_score score;
                epoch_logs logs;
                logs.epoch = epoch;
                logs.epochs = options.epochs;
                for (std::size_t step = 0; step < steps; ++step)
                {
                    const std::size_t first = step * options.batch_size;
                    const std::size_t count = std::min(options.batch_size, train.size() - first);
                    detail::gather<sequence_input>(x, train, first, count, batch);
                    detail::gather<output_time_major<XV, XN>>(y, train, first, count, target);
                    zero_grad(*this);
                    detail::running_score batch_score;
                    const double loss = score_batch(forward(batch, mode::training), target, &grad, batch_score, count);
                    const bool finite_loss = std::isfinite(loss);
                    if (finite_loss)
                    {
                        backward(grad);
                    }
                    // A finite loss can still overflow in backward (float): stepping on that gradient would leave
                    // inf or nan weights, so it counts as a non-finite step too.
                    if (!finite_loss || !detail::gradients_finite(*this))
                    {
                        if (options.on_non_finite_loss == non_finite_loss::skip)
                        {
                            ++logs.skipped_steps;
                            printer.step(step + 1, score.loss(), score.metric());
                            continue;
                        }
                        std::ostringstream message;
                        message << "fit: the " << (finite_loss ? "gradient" : "loss") << " became ";
                        if (finite_loss)
                        {
                            message << "inf or nan (the loss was " << loss << ")";
                        }
                        else
                        {
                            message << loss;
                        }
                        message << " at epoch " << epoch << ", step " << step + 1 << " of " << steps
                                << "; training stopped and the weights are those of the last good step (lower the "
                                << "learning rate, set clip_norm, or set on_non_finite_loss to skip)";
                        throw value_error(message.str());
                    }
                    score.loss_sum += batch_score.loss_sum;
                    score.metric_sum += batch_score.metric_sum;
                    score.metric_count += batch_score.metric_count;
                    score.samples += batch_score.samples;
                    if (options.clip_norm > 0.0)
                    {
                        clip_grad_norm(options.clip_norm, *this);
                    }
                    m_optimizer->step(*this);
                    ++logs.steps;
                    printer.step(step + 1, score.loss(), score.metric());
                }
                logs.loss = score.loss();
                logs.metric = score.metric();
                if (has_validation)
                {
                    const detail::running_score val = score_indices(x_val, y_val, validation, options.batch_size);
                    logs.has_validation = true;
                    logs.val_loss = val.loss();
                    logs.val_metric = val.metric();
                }
                logs.seconds = std::chrono::duration<double>(clock::now() - start).count();
                result.append(logs);
                printer.end_epoch(logs);

                bool stop = false;
                for (const auto& callback : options.callbacks)
                {
                    stop = callback(logs) == fit_control::stop || stop;
                }
                if (options.early_stop)
                {
                    const early_stopping& rule = *options.early_stop;
                    const auto [value, lower_is_better] = monitored(rule, logs, metric);
                    const bool improved = epoch == 1
                                          || (lower_is_better ? value < best - rule.min_delta
                                                              : value > best + rule.min_delta);
                    if (improved)
                    {
                        best = value;
                        epochs_without_improvement = 0;
                        if (rule.restore_best_weights)
                        {
                            best_weights = io::copy_parameters(*this);
                        }
                    }
                    else if (++epochs_without_improvement > rule.patience)
                    {
                        stop = true;
                    }
                }
                if (checkpointing && (epoch % options.checkpoint_every == 0 || stop || epoch == options.epochs))
                {
                    write_checkpoint(epoch);
                }
                if (stop)
                {
                    break;
                }
            }
            if (!best_weights.empty())
            {
                io::commit_parameters(best_weights, *this);  // restore_best_weights: the best epoch's weights, stopped early or not
            }
            return result;
        }

        layers_type m_layers;
        std::optional<objective> m_objective;
        std::unique_ptr<optimizer_concept> m_optimizer;
    };

    template <class... Layers>
    sequential(Layers...) -> sequential<Layers...>;
}  // namespace xrnn

#endif
