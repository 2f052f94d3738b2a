// xtensor-rnn: training checkpoints, everything a run needs to continue exactly where it stopped (format:
// docs/weight-format.md, kind 2).
//
//   xrnn::fit_options f; f.epochs = 10; f.checkpoint_path = "run.xrnnc"; f.checkpoint_every = 1;
//   model.fit(x, y, f);                  // interrupted after epoch 4 (a crash, a time limit)
//   f.resume_from = "run.xrnnc";
//   model.fit(x, y, f);                  // epochs 5..10: the same weights and history as one uninterrupted run
//
// A checkpoint holds the model's parameters, the optimizer's state (hyper-parameters, step count, per-parameter
// buffers), the random engines of the layers that draw dropout masks, and fit()'s progress: the epochs done,
// the shuffling engine, the current order of the training samples (each epoch shuffles the previous order), the
// early-stopping state and the history so far. Loading is all or nothing, as for weights: the file is read and
// checked completely (signature, exact size, checksum, every tensor's name and shape, every value that could
// make training misbehave: the order must be a permutation, no engine may be all zeros) before the optimizer,
// then the model, are changed.
//
// The functions here work on any model (a sequential, a single layer) with any optimizer that has snapshot()
// and restore() (sgd, adam, rmsprop); fit() uses them through fit_options::checkpoint_path and resume_from.
#ifndef XRNN_IO_CHECKPOINT_HPP
#define XRNN_IO_CHECKPOINT_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/io/weights.hpp>
#include <xrnn/model/history.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    /// Where a training run stands after an epoch: what fit() needs to continue it, besides the model's weights,
    /// its layers' random engines and the optimizer's state.
    template <class T>
    struct training_progress
    {
        std::uint64_t epoch = 0;                      // epochs completed
        random_engine::state_type shuffle_engine{};   // the shuffling engine after that epoch
        std::vector<std::uint64_t> order;             // the training samples' order after that epoch's shuffle
        std::uint64_t validation_samples = 0;
        std::uint64_t data_fingerprint = 0;           // of x and y (fit refuses to resume on other data)
        std::uint64_t objective = 0;                  // fit's objective, as a number (fit refuses another)
        std::vector<epoch_logs> history;              // one per epoch done
        double best = 0.0;                            // early stopping: the best monitored value so far
        std::uint64_t epochs_without_improvement = 0;
        std::vector<std::vector<T>> best_weights;     // restore_best_weights: that epoch's parameters, or none
    };

    /// A checkpoint read and checked against a model and an optimizer, not yet applied to them.
    template <class T>
    struct checkpoint_contents
    {
        std::string source;  // the path, or what names the bytes
        training_progress<T> progress;
        optimizer_snapshot<T> optimizer;
        std::vector<std::vector<T>> parameters;
        std::vector<random_engine::state_type> engines;  // in for_each_random_engine order
    };

    namespace io
    {
        /// The first tensor of a checkpoint, "checkpoint" (u64): what fixes the size of the rest.
        enum checkpoint_field : std::size_t
        {
            cp_epoch,                // epochs done = rows of fit.history
            cp_train_samples,        // length of fit.order
            cp_validation_samples,
            cp_optimizer_parameters, // parameters with optimizer buffers: 0 (no step yet) or all of the model's
            cp_optimizer_steps,
            cp_has_best_weights,     // 0 or 1: whether best.* tensors follow
            cp_epochs_without_improvement,
            cp_data_fingerprint,
            cp_objective,
            cp_engines,              // random engines of the model's layers
            checkpoint_fields
        };

        /// Columns of fit.history (f64), one row per epoch, as epoch_logs has them.
        constexpr std::size_t history_fields = 10;

        /// The largest integer a history column may hold (exact in a double).
        constexpr double history_integer_max = 9007199254740992.0;

        inline std::array<double, history_fields> history_row(const epoch_logs& e)
        {
            return {static_cast<double>(e.epoch),   static_cast<double>(e.epochs),
                    static_cast<double>(e.steps),   static_cast<double>(e.skipped_steps),
                    e.loss,                         e.metric,
                    e.has_validation ? 1.0 : 0.0,   e.val_loss,
                    e.val_metric,                   e.seconds};
        }

        template <class Model>
        struct checkpoint_layout
        {
            std::vector<std::string> parameter_names;
            std::vector<std::vector<std::size_t>> parameter_shapes;
            std::vector<std::string> engine_names;
        };

        template <class Model>
        checkpoint_layout<Model> layout_of(Model& model)
        {
            checkpoint_layout<Model> layout;
            model.for_each_parameter([&](const auto& name, auto& value, auto&) {
                layout.parameter_names.emplace_back(name);
                layout.parameter_shapes.emplace_back(value.shape().begin(), value.shape().end());
            });
            for_each_random_engine(model, [&](const std::string& name, random_engine&) {
                layout.engine_names.push_back("engine." + name);
            });
            return layout;
        }

        inline std::size_t element_count(const std::vector<std::size_t>& shape)
        {
            std::size_t count = 1;
            for (std::size_t d : shape)
            {
                count *= d;
            }
            return count;
        }

        inline std::string slot_entry_name(const std::string& slot, const std::string& parameter)
        {
            return "optimizer." + slot + "." + parameter;
        }

        /// Checks that a snapshot's buffers belong to this model's parameters (names and sizes, in order).
        template <class T, class Model>
        void check_optimizer_parameters(const optimizer_snapshot<T>& snapshot, const checkpoint_layout<Model>& layout,
                                        const char* where)
        {
            if (snapshot.parameters.empty())
            {
                return;
            }
            if (snapshot.parameters != layout.parameter_names)
            {
                throw state_error(std::string(where) + ": the optimizer's state was made for "
                                  + std::to_string(snapshot.parameters.size())
                                  + " parameters of other names than the model's "
                                  + std::to_string(layout.parameter_names.size()) + "; use one optimizer per model");
            }
            for (std::size_t k = 0; k < snapshot.slots.size(); ++k)
            {
                for (const auto& buffer : snapshot.slots[k])
                {
                    if (buffer.size() != element_count(layout.parameter_shapes[k]))
                    {
                        throw state_error(std::string(where) + ": the optimizer's buffer for "
                                          + snapshot.parameters[k] + " has " + std::to_string(buffer.size())
                                          + " values, the parameter "
                                          + std::to_string(element_count(layout.parameter_shapes[k])));
                    }
                }
            }
        }
    }  // namespace io

    /// The bytes save_checkpoint writes.
    template <class Model, class Optimizer>
    std::string save_checkpoint_to_bytes(Model& model, const Optimizer& optimizer,
                                         const training_progress<typename Model::value_type>& progress)
    {
        using T = typename Model::value_type;
        const char* where = "save_checkpoint";
        const auto layout = io::layout_of(model);
        const optimizer_snapshot<T> snapshot = optimizer.snapshot();
        io::check_optimizer_parameters(snapshot, layout, where);
        if (progress.history.size() != progress.epoch)
        {
            throw value_error(std::string(where) + ": expected one history row per epoch done ("
                              + std::to_string(progress.epoch) + ") but got " + std::to_string(progress.history.size()));
        }
        if (!progress.best_weights.empty() && progress.best_weights.size() != layout.parameter_names.size())
        {
            throw value_error(std::string(where) + ": expected best weights for the "
                              + std::to_string(layout.parameter_names.size()) + " parameters but got "
                              + std::to_string(progress.best_weights.size()));
        }
        const std::size_t parameters = layout.parameter_names.size();
        const std::size_t slots = snapshot.parameters.empty() ? 0 : snapshot.slot_names.size();
        const std::size_t entries = 1 + 1 + parameters + parameters * slots + 2 + layout.engine_names.size() + 2
                                    + (progress.best_weights.empty() ? 0 : parameters);
        io::file_writer out(io::file_kind::checkpoint, io::element_type_of<T>(), io::signature_text<Model>(), entries);

        std::array<std::uint64_t, io::checkpoint_fields> description{};
        description[io::cp_epoch] = progress.epoch;
        description[io::cp_train_samples] = progress.order.size();
        description[io::cp_validation_samples] = progress.validation_samples;
        description[io::cp_optimizer_parameters] = snapshot.parameters.size();
        description[io::cp_optimizer_steps] = snapshot.steps;
        description[io::cp_has_best_weights] = progress.best_weights.empty() ? 0 : 1;
        description[io::cp_epochs_without_improvement] = progress.epochs_without_improvement;
        description[io::cp_data_fingerprint] = progress.data_fingerprint;
        description[io::cp_objective] = progress.objective;
        description[io::cp_engines] = layout.engine_names.size();
        out.add("checkpoint", description.data(), std::array<std::size_t, 1>{io::checkpoint_fields});
        out.add("optimizer." + snapshot.kind, snapshot.hyper.data(), std::array<std::size_t, 1>{snapshot.hyper.size()});

        io::write_parameters(out, model);
        for (std::size_t k = 0; k < snapshot.parameters.size(); ++k)
        {
            for (std::size_t s = 0; s < slots; ++s)
            {
                out.add(io::slot_entry_name(snapshot.slot_names[s], snapshot.parameters[k]),
                        snapshot.slots[k][s].data(), layout.parameter_shapes[k]);
            }
        }
        out.add("fit.shuffle_engine", progress.shuffle_engine.data(), std::array<std::size_t, 1>{4});
        out.add("fit.order", progress.order.data(), std::array<std::size_t, 1>{progress.order.size()});
        std::size_t e = 0;
        for_each_random_engine(model, [&](const std::string&, random_engine& engine) {
            const random_engine::state_type state = engine.state();
            out.add(layout.engine_names[e++], state.data(), std::array<std::size_t, 1>{4});
        });
        std::vector<double> rows;
        for (const epoch_logs& logs : progress.history)
        {
            const auto row = io::history_row(logs);
            rows.insert(rows.end(), row.begin(), row.end());
        }
        out.add("fit.history", rows.data(), std::array<std::size_t, 2>{progress.history.size(), io::history_fields});
        out.add("fit.best", &progress.best, std::array<std::size_t, 1>{1});
        for (std::size_t k = 0; k < progress.best_weights.size(); ++k)
        {
            if (progress.best_weights[k].size() != io::element_count(layout.parameter_shapes[k]))
            {
                throw value_error(std::string(where) + ": the best weights of " + layout.parameter_names[k] + " have "
                                  + std::to_string(progress.best_weights[k].size()) + " values, the parameter "
                                  + std::to_string(io::element_count(layout.parameter_shapes[k])));
            }
            out.add("best." + layout.parameter_names[k], progress.best_weights[k].data(), layout.parameter_shapes[k]);
        }
        return out.finish();
    }

    /// Saves a checkpoint of model, optimizer and progress to path, atomically (the old file survives a failure).
    template <class Model, class Optimizer>
    void save_checkpoint(const std::string& path, Model& model, const Optimizer& optimizer,
                         const training_progress<typename Model::value_type>& progress)
    {
        io::atomic_write_file(path, save_checkpoint_to_bytes(model, optimizer, progress), "checkpoint");
    }

    namespace io
    {
        /// Reads and checks a whole checkpoint against the model and the optimizer's kind; changes nothing.
        template <class Model, class Optimizer>
        checkpoint_contents<typename Model::value_type> read_checkpoint_from(file_reader& file, Model& model,
                                                                             const Optimizer& optimizer)
        {
            using T = typename Model::value_type;
            const char* where = "load_checkpoint";
            check_written_by<Model>(file, where);
            const auto layout = layout_of(model);
            const optimizer_snapshot<T> current = optimizer.snapshot();
            const std::string optimizer_entry = "optimizer." + current.kind;
            const std::size_t parameters = layout.parameter_names.size();
            const std::size_t file_size = file.file_size();
            const auto fail = [&](const std::string& problem) { throw io_error(file.source() + ": " + problem); };

            // Stage 1b: the description right after the header, and the optimizer's kind, fix the exact size.
            const std::size_t description_bytes = entry_bytes("checkpoint", 1, checkpoint_fields, 8);
            const std::string head = file.prefix(file.header_size() + description_bytes + entry_bytes("", 1, 0, 8)
                                                 + max_name_bytes);
            binary_reader peek(head.data(), head.size(), file.source());
            peek.skip(file.header_size(), "the header");
            std::array<std::uint64_t, checkpoint_fields> d{};
            read_entry(peek, "checkpoint", std::array<std::size_t, 1>{checkpoint_fields}, d.data());
            const entry_header kind = file_reader::read_entry_header(peek);
            if (kind.name != optimizer_entry)
            {
                if (kind.name.rfind("optimizer.", 0) == 0)
                {
                    fail("holds the state of an optimizer of kind '" + kind.name.substr(10)
                         + "', but the model's optimizer is '" + current.kind + "'");
                }
                peek.fail("tensor '" + kind.name + "' where '" + optimizer_entry + "' was expected");
            }
            if (d[cp_optimizer_parameters] != 0 && d[cp_optimizer_parameters] != parameters)
            {
                fail("optimizer state for " + std::to_string(d[cp_optimizer_parameters])
                     + " parameters, expected 0 or the model's " + std::to_string(parameters));
            }
            if (d[cp_has_best_weights] > 1)
            {
                fail("the best-weights flag is " + std::to_string(d[cp_has_best_weights]) + ", expected 0 or 1");
            }
            if (d[cp_engines] != layout.engine_names.size())
            {
                fail(std::to_string(d[cp_engines]) + " random engines, the model has "
                     + std::to_string(layout.engine_names.size()));
            }
            // Both counts come from the file: bounded by its size before any product is formed.
            if (d[cp_train_samples] > file_size / 8 || d[cp_epoch] > file_size / (8 * history_fields))
            {
                fail("declares " + std::to_string(d[cp_train_samples]) + " samples and "
                     + std::to_string(d[cp_epoch]) + " epochs, more than its " + std::to_string(file_size)
                     + " bytes can hold");
            }
            const auto train_samples = static_cast<std::size_t>(d[cp_train_samples]);
            const auto epochs_done = static_cast<std::size_t>(d[cp_epoch]);
            const std::size_t slots = d[cp_optimizer_parameters] == 0 ? 0 : current.slot_names.size();
            const bool has_best = d[cp_has_best_weights] == 1;

            std::size_t count = 0;
            std::size_t size = file.header_size() + description_bytes
                               + entry_bytes(optimizer_entry, 1, current.hyper.size(), 8)
                               + parameter_entries_bytes(model, count);
            for (std::size_t k = 0; k < parameters; ++k)
            {
                const std::size_t n = element_count(layout.parameter_shapes[k]);
                const std::size_t rank = layout.parameter_shapes[k].size();
                for (std::size_t s = 0; s < slots; ++s)
                {
                    size += entry_bytes(slot_entry_name(current.slot_names[s], layout.parameter_names[k]), rank, n,
                                        sizeof(T));
                }
                if (has_best)
                {
                    size += entry_bytes("best." + layout.parameter_names[k], rank, n, sizeof(T));
                }
            }
            size += entry_bytes("fit.shuffle_engine", 1, 4, 8) + entry_bytes("fit.order", 1, train_samples, 8);
            for (const std::string& name : layout.engine_names)
            {
                size += entry_bytes(name, 1, 4, 8);
            }
            size += entry_bytes("fit.history", 2, epochs_done * history_fields, 8) + entry_bytes("fit.best", 1, 1, 8)
                    + 8;
            const std::size_t entries = 2 + parameters * (1 + slots + (has_best ? 1 : 0)) + 2
                                        + layout.engine_names.size() + 2;
            if (file.entries() != entries)
            {
                fail(std::to_string(file.entries()) + " tensors, but its description implies "
                     + std::to_string(entries));
            }

            // Stage 2: the whole file, checksum verified, read into temporaries.
            binary_reader in = file.body(size);
            checkpoint_contents<T> c;
            c.source = file.source();
            std::array<std::uint64_t, checkpoint_fields> verified{};
            read_entry(in, "checkpoint", std::array<std::size_t, 1>{checkpoint_fields}, verified.data());
            if (verified != d)
            {
                fail("the file changed while it was read");
            }
            c.optimizer = current;
            c.optimizer.hyper.assign(current.hyper.size(), 0.0);
            read_entry(in, optimizer_entry, std::array<std::size_t, 1>{current.hyper.size()}, c.optimizer.hyper.data());
            c.optimizer.steps = d[cp_optimizer_steps];
            c.parameters = read_parameters(in, model);
            c.optimizer.parameters.clear();
            c.optimizer.slots.clear();
            if (slots != 0)
            {
                c.optimizer.parameters = layout.parameter_names;
                for (std::size_t k = 0; k < parameters; ++k)
                {
                    const std::size_t n = element_count(layout.parameter_shapes[k]);
                    c.optimizer.slots.emplace_back();
                    for (std::size_t s = 0; s < slots; ++s)
                    {
                        c.optimizer.slots.back().emplace_back(n);
                        read_entry(in, slot_entry_name(current.slot_names[s], layout.parameter_names[k]),
                                   layout.parameter_shapes[k], c.optimizer.slots.back().back().data());
                    }
                }
            }

            training_progress<T>& p = c.progress;
            p.epoch = d[cp_epoch];
            p.validation_samples = d[cp_validation_samples];
            p.epochs_without_improvement = d[cp_epochs_without_improvement];
            p.data_fingerprint = d[cp_data_fingerprint];
            p.objective = d[cp_objective];
            read_entry(in, "fit.shuffle_engine", std::array<std::size_t, 1>{4}, p.shuffle_engine.data());
            p.order.resize(train_samples);
            read_entry(in, "fit.order", std::array<std::size_t, 1>{train_samples}, p.order.data());
            for (const std::string& name : layout.engine_names)
            {
                c.engines.emplace_back();
                read_entry(in, name, std::array<std::size_t, 1>{4}, c.engines.back().data());
            }
            std::vector<double> rows(epochs_done * history_fields);
            read_entry(in, "fit.history", std::array<std::size_t, 2>{epochs_done, history_fields}, rows.data());
            read_entry(in, "fit.best", std::array<std::size_t, 1>{1}, &p.best);
            if (has_best)
            {
                for (std::size_t k = 0; k < parameters; ++k)
                {
                    p.best_weights.emplace_back(element_count(layout.parameter_shapes[k]));
                    read_entry(in, "best." + layout.parameter_names[k], layout.parameter_shapes[k],
                               p.best_weights.back().data());
                }
            }

            // Values that would make the resumed run misbehave: refused here, before anything changes.
            std::vector<bool> seen(train_samples, false);
            for (std::uint64_t index : p.order)
            {
                if (index >= train_samples || seen[static_cast<std::size_t>(index)])
                {
                    fail("fit.order is not a permutation of the " + std::to_string(train_samples)
                         + " training samples (it holds " + std::to_string(index) + " "
                         + (index >= train_samples ? "out of range" : "twice") + ")");
                }
                seen[static_cast<std::size_t>(index)] = true;
            }
            const auto zero = random_engine::state_type{};
            if (p.shuffle_engine == zero)
            {
                fail("the shuffling engine's state is all zeros");
            }
            for (std::size_t e = 0; e < c.engines.size(); ++e)
            {
                if (c.engines[e] == zero)
                {
                    fail("the state of " + layout.engine_names[e] + " is all zeros");
                }
            }
            for (std::size_t r = 0; r < epochs_done; ++r)
            {
                const double* row = rows.data() + r * history_fields;
                for (std::size_t f : {0, 1, 2, 3})
                {
                    if (!(row[f] >= 0.0 && row[f] <= history_integer_max) || row[f] != std::floor(row[f]))
                    {
                        fail("fit.history row " + std::to_string(r) + " column " + std::to_string(f)
                             + " is not a count: " + std::to_string(row[f]));
                    }
                }
                if (row[0] != static_cast<double>(r + 1) || (row[6] != 0.0 && row[6] != 1.0))
                {
                    fail("fit.history row " + std::to_string(r) + " is for epoch " + std::to_string(row[0])
                         + " with validation flag " + std::to_string(row[6]) + ", expected epoch "
                         + std::to_string(r + 1) + " and a flag 0 or 1");
                }
                epoch_logs logs;
                logs.epoch = static_cast<std::size_t>(row[0]);
                logs.epochs = static_cast<std::size_t>(row[1]);
                logs.steps = static_cast<std::size_t>(row[2]);
                logs.skipped_steps = static_cast<std::size_t>(row[3]);
                logs.loss = row[4];
                logs.metric = row[5];
                logs.has_validation = row[6] == 1.0;
                logs.val_loss = row[7];
                logs.val_metric = row[8];
                logs.seconds = row[9];
                p.history.push_back(logs);
            }
            return c;
        }
    }  // namespace io

    /// Reads a checkpoint and checks it against model and optimizer (signature, optimizer kind, every tensor);
    /// changes neither. apply_checkpoint then applies it.
    template <class Model, class Optimizer>
    checkpoint_contents<typename Model::value_type> read_checkpoint(const std::string& path, Model& model,
                                                                    const Optimizer& optimizer)
    {
        io::file_reader file(path, io::file_kind::checkpoint);
        return io::read_checkpoint_from(file, model, optimizer);
    }

    /// read_checkpoint from bytes in memory; `source` names them in error messages.
    template <class Model, class Optimizer>
    checkpoint_contents<typename Model::value_type> read_checkpoint_from_bytes(std::string bytes, Model& model,
                                                                               const Optimizer& optimizer,
                                                                               std::string source = "checkpoint in memory")
    {
        io::file_reader file(std::move(bytes), std::move(source), io::file_kind::checkpoint);
        return io::read_checkpoint_from(file, model, optimizer);
    }

    /// Puts a checkpoint read by read_checkpoint into the optimizer and the model, and returns the training
    /// progress. The optimizer goes first (restore() changes nothing when it throws: an io_error for a state it
    /// refuses); the model's parameters and engines then cannot fail, so this is all or nothing.
    template <class Model, class Optimizer>
    training_progress<typename Model::value_type> apply_checkpoint(checkpoint_contents<typename Model::value_type> contents,
                                                                   Model& model, Optimizer& optimizer)
    {
        try
        {
            optimizer.restore(contents.optimizer);
        }
        catch (const value_error& e)
        {
            throw io_error(contents.source + ": " + e.what());
        }
        io::commit_parameters(contents.parameters, model);
        std::size_t e = 0;
        for_each_random_engine(model, [&](const std::string&, random_engine& engine) {
            engine.set_state(contents.engines[e++]);  // never all zeros: read_checkpoint refused those
        });
        return std::move(contents.progress);
    }

    /// read_checkpoint then apply_checkpoint: all or nothing.
    template <class Model, class Optimizer>
    training_progress<typename Model::value_type> load_checkpoint(const std::string& path, Model& model,
                                                                  Optimizer& optimizer)
    {
        return apply_checkpoint(read_checkpoint(path, model, optimizer), model, optimizer);
    }
}  // namespace xrnn

#endif
