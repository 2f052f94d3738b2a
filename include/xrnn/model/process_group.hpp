// xtensor-rnn: data-parallel training over a group of processes, the part that does not depend on MPI.
//
//   #include <xrnn/mpi.hpp>                                  // the opt-in MPI implementation (CMake: xrnn::mpi)
//   xrnn::mpi::environment env(argc, argv);
//   model.distribute(xrnn::mpi::world());                   // broadcasts rank 0's weights to every rank
//   model.fit(x, y, f);                                      // every rank passes the same x, y and options
//
// A process_group is what fit(), evaluate() and predict() need from N processes ("ranks") that train one model
// together, the way Horovod and PyTorch's DistributedDataParallel do: every rank holds the whole data set and the
// same model; each global batch of fit_options::batch_size samples (the same shuffled order on every rank, from
// fit_options::seed) is cut into N contiguous parts, rank r taking [B r / N, B (r + 1) / N) of it; after backward
// the gradients are averaged (weighted by the samples of each part, so that the step is that of the whole batch,
// equation PG1), then clipped and stepped identically on every rank. Per batch, in order:
//   on_batch_begin, gather, forward, loss, backward      in a guarded region: an exception is kept, not thrown
//   (PG0) one allreduce of [failed, non-finite, loss sum, metric sum, metric count, samples]: every rank learns
//         whether any rank failed (then all throw process_error with the lowest failing rank's message, the
//         failing rank its own exception), whether to stop or skip a non-finite batch, and the batch's loss
//   (PG1) g = sum_r (n_r / n) g_r                         process_group::reduce_gradients, before the step hooks
//   step hooks, clip_norm, optimizer step, on_batch_end; (PG2) stop_training is or-reduced over the ranks
// Validation and evaluate() score disjoint parts of their samples and add the sums (PG3); predict() gathers the
// parts. Only rank 0 prints progress and writes checkpoints; callbacks run on every rank with the same logs. Each
// epoch, rank r > 0 reseeds its layers' dropout engines from rank 0's state and r (PG4), so masks differ between
// ranks and a resumed run repeats them. An exception outside the guarded region (a failed checkpoint write, a
// callback) cannot be agreed on without a hang: the group's abort() prints it and stops every rank
// (MPI_Abort). Checkpoints record the number of ranks; resuming on another number is refused.
#ifndef XRNN_MODEL_PROCESS_GROUP_HPP
#define XRNN_MODEL_PROCESS_GROUP_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/model/metrics.hpp>
#include <xrnn/model/step.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    /// Another rank of a process group failed; the message names the rank and its error.
    class process_error : public error
    {
    public:
        using error::error;
    };

    /// N processes training one model together (see the header comment); xrnn::mpi::communicator is one.
    class process_group
    {
    public:
        virtual ~process_group() = default;

        /// This process's number, 0..size()-1, and the number of processes.
        virtual std::size_t rank() const noexcept = 0;
        virtual std::size_t size() const noexcept = 0;

        /// Replaces values[0..n) by their sum over the ranks, on every rank.
        virtual void sum(double* values, std::size_t n) = 0;

        /// Copies rank 0's bytes[0..n) to every rank.
        virtual void broadcast(void* bytes, std::size_t n) = 0;

        /// Every rank's bytes, concatenated in rank order, on every rank (the counts may differ between ranks).
        virtual std::vector<char> all_gather(const void* bytes, std::size_t n) = 0;

        /// (PG1) Replaces every gradient by sum_r weight_r g_r over the ranks (weight_r = this rank's share).
        virtual void reduce_gradients(gradient_set& gradients, double weight) = 0;

        /// Called on every rank after (PG0) found a failure: returns the message of the lowest failing rank
        /// (`mine` is this rank's message, empty when it did not fail).
        virtual std::string first_failure(const std::string& mine) = 0;

        /// Prints the message to stderr and ends every rank (a failure the others cannot be told about).
        [[noreturn]] virtual void abort(const std::string& message) = 0;
    };

    namespace detail
    {
        /// Rank r's part [first, last) of `count` items: contiguous, in rank order, sizes differing by at most 1.
        inline std::array<std::size_t, 2> shard(std::size_t count, std::size_t rank, std::size_t ranks) noexcept
        {
            return {count * rank / ranks, count * (rank + 1) / ranks};
        }

        /// Whether a group is there and has more than one rank.
        inline bool distributed(const process_group* group) noexcept
        {
            return group != nullptr && group->size() > 1;
        }

        /// "rank 1 of 3": how messages name a rank.
        inline std::string rank_name(const process_group& group)
        {
            return "rank " + std::to_string(group.rank()) + " of " + std::to_string(group.size());
        }

        /// Copies rank 0's parameters and random engines to every rank.
        template <class Model>
        void broadcast_model(Model& model, process_group& group)
        {
            model.for_each_parameter([&](const auto&, auto& value, auto&) {
                group.broadcast(value.data(), value.size() * sizeof(*value.data()));
            });
            model.for_each_random_engine([&](const std::string&, random_engine& engine) {
                random_engine::state_type state = engine.state();
                group.broadcast(state.data(), sizeof state);
                engine.set_state(state);
            });
        }

        /// (PG4) Rank 0 keeps its engines; rank r > 0 reseeds each from rank 0's state and r, so that its dropout
        /// masks differ from every other rank's and are a function of rank 0's state (which checkpoints hold).
        template <class Model>
        void derive_rank_engines(Model& model, process_group& group)
        {
            model.for_each_random_engine([&](const std::string&, random_engine& engine) {
                random_engine::state_type state = engine.state();
                group.broadcast(state.data(), sizeof state);
                if (group.rank() > 0)
                {
                    const std::uint64_t r = group.rank();
                    std::uint64_t seed = io::fnv1a64(reinterpret_cast<const char*>(state.data()), sizeof state);
                    seed = io::fnv1a64(reinterpret_cast<const char*>(&r), sizeof r, seed);
                    engine.reseed(seed);
                }
            });
        }

        /// Throws process_error on every rank unless all ranks hold the same value (a data fingerprint).
        inline void require_same(process_group& group, std::uint64_t value, const std::string& what)
        {
            std::uint64_t root = value;
            group.broadcast(&root, sizeof root);
            double differs = root != value ? 1.0 : 0.0;
            group.sum(&differs, 1);
            if (differs > 0.0)
            {
                throw process_error(what + " differ between the ranks (" + std::to_string(static_cast<long>(differs))
                                    + " of " + std::to_string(group.size())
                                    + " differ from rank 0's): every rank must pass the same data");
            }
        }

        /// What a guarded region of every rank ended with: nothing, or the exception it threw.
        struct rank_outcome
        {
            std::exception_ptr exception;
            std::string message;

            bool failed() const noexcept
            {
                return exception != nullptr;
            }

            /// Runs f, keeping what it throws.
            template <class F>
            void run(F&& f)
            {
                try
                {
                    f();
                }
                catch (const std::exception& e)
                {
                    exception = std::current_exception();
                    message = e.what();
                }
                catch (...)
                {
                    exception = std::current_exception();
                    message = "an exception that is not a std::exception";
                }
            }
        };

        /// After every rank learned that `failures` ranks failed (> 0): the failing ranks rethrow their own
        /// exception, the others throw process_error with the lowest failing rank's message.
        [[noreturn]] inline void throw_agreed(process_group& group, const rank_outcome& mine, const std::string& where)
        {
            const std::string first = group.first_failure(mine.failed() ? mine.message : std::string());
            if (mine.failed())
            {
                std::rethrow_exception(mine.exception);
            }
            throw process_error(where + ": " + first);
        }

        /// Runs f on every rank of the group; when it throws on any rank, it throws on every rank (throw_agreed).
        template <class F>
        void agreed(process_group* group, const std::string& where, F&& f)
        {
            if (!distributed(group))
            {
                f();
                return;
            }
            rank_outcome mine;
            mine.run(f);
            double failures = mine.failed() ? 1.0 : 0.0;
            group->sum(&failures, 1);
            if (failures > 0.0)
            {
                throw_agreed(*group, mine, where);
            }
        }

        /// (PG3) A running score summed over the ranks.
        inline void sum_scores(process_group& group, running_score& score)
        {
            double values[5] = {score.loss_sum, score.metric_sum, score.metric_count,
                                static_cast<double>(score.samples), score.loss_weight};
            group.sum(values, 5);
            score.loss_sum = values[0];
            score.metric_sum = values[1];
            score.metric_count = values[2];
            score.samples = static_cast<std::size_t>(values[3]);
            score.loss_weight = values[4];
        }

        /// score_indices over the ranks: each scores its part of `index`, the sums are added (PG3).
        template <class Model, class XV, std::size_t XN, class YV, std::size_t YN>
        running_score score_on_ranks(Model& model, objective goal, const xt::xtensor<XV, XN>& x,
                                     const xt::xtensor<YV, YN>& y, const std::vector<std::size_t>& index,
                                     std::size_t batch_size, process_group* group, const std::string& where)
        {
            if (!distributed(group))
            {
                return score_indices(model, goal, x, y, index, batch_size);
            }
            running_score score;
            agreed(group, where, [&] {
                const auto part = shard(index.size(), group->rank(), group->size());
                const std::vector<std::size_t> mine(index.begin() + static_cast<std::ptrdiff_t>(part[0]),
                                                    index.begin() + static_cast<std::ptrdiff_t>(part[1]));
                if (!mine.empty())
                {
                    score = score_indices(model, goal, x, y, mine, batch_size);
                }
            });
            sum_scores(*group, score);
            return score;
        }

        /// (PG2) Whether any rank asked to stop.
        inline bool any_rank(process_group* group, bool flag)
        {
            if (!distributed(group))
            {
                return flag;
            }
            double value = flag ? 1.0 : 0.0;
            group->sum(&value, 1);
            return value > 0.0;
        }
    }  // namespace detail
}  // namespace xrnn

#endif
