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
// The file's tensors are listed once, by checkpoint_entries() below; writing, the size check and reading all walk
// that list. The functions work on any model (a sequential, a single layer) with any optimizer that has
// snapshot() and restore() (sgd, adam, rmsprop); fit() uses them through its checkpointing callback
// (model/checkpointing.hpp).
#ifndef XRNN_MODEL_TRAINING_CHECKPOINT_HPP
#define XRNN_MODEL_TRAINING_CHECKPOINT_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/io/checkpoint.hpp>
#include <xrnn/io/weights.hpp>
#include <xrnn/model/history.hpp>
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

    /// What a checkpoint's header says of the run that wrote it, before the rest is read: a reader that expects a
    /// certain run (fit's resume_from) checks it here, so that a file of another run, however large, is refused
    /// having read only its first bytes.
    struct checkpoint_description
    {
        std::uint64_t epochs;  // epochs done
        std::uint64_t train_samples;
        std::uint64_t validation_samples;
        std::uint64_t data_fingerprint;
        std::uint64_t objective;
    };
    using checkpoint_description_check = std::function<void(const checkpoint_description&)>;

    namespace detail
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

        /// One column of fit.history (f64, one row per epoch): its name, what values it may hold, and how it maps
        /// to epoch_logs. The table below is the only place that knows the column order.
        struct history_column
        {
            enum kind_type
            {
                count,  // a non-negative integer, exact in a double
                flag,   // 0 or 1
                real
            };
            const char* name;
            kind_type kind;
            double (*get)(const epoch_logs&);
            void (*set)(epoch_logs&, double);
        };

        inline const std::array<history_column, 10>& history_columns()
        {
            using c = history_column;
            static const std::array<history_column, 10> columns{{
                {"epoch", c::count, [](const epoch_logs& e) { return double(e.epoch); },
                 [](epoch_logs& e, double v) { e.epoch = static_cast<std::size_t>(v); }},
                {"epochs", c::count, [](const epoch_logs& e) { return double(e.epochs); },
                 [](epoch_logs& e, double v) { e.epochs = static_cast<std::size_t>(v); }},
                {"steps", c::count, [](const epoch_logs& e) { return double(e.steps); },
                 [](epoch_logs& e, double v) { e.steps = static_cast<std::size_t>(v); }},
                {"skipped_steps", c::count, [](const epoch_logs& e) { return double(e.skipped_steps); },
                 [](epoch_logs& e, double v) { e.skipped_steps = static_cast<std::size_t>(v); }},
                {"loss", c::real, [](const epoch_logs& e) { return e.loss; }, [](epoch_logs& e, double v) { e.loss = v; }},
                {"metric", c::real, [](const epoch_logs& e) { return e.metric; },
                 [](epoch_logs& e, double v) { e.metric = v; }},
                {"has_validation", c::flag, [](const epoch_logs& e) { return e.has_validation ? 1.0 : 0.0; },
                 [](epoch_logs& e, double v) { e.has_validation = v == 1.0; }},
                {"val_loss", c::real, [](const epoch_logs& e) { return e.val_loss; },
                 [](epoch_logs& e, double v) { e.val_loss = v; }},
                {"val_metric", c::real, [](const epoch_logs& e) { return e.val_metric; },
                 [](epoch_logs& e, double v) { e.val_metric = v; }},
                {"seconds", c::real, [](const epoch_logs& e) { return e.seconds; },
                 [](epoch_logs& e, double v) { e.seconds = v; }},
            }};
            return columns;
        }

        /// The largest integer a count column may hold (exact in a double).
        constexpr double history_integer_max = 9007199254740992.0;

        /// Every buffer a checkpoint file's tensors live in, for writing (filled from a model, an optimizer and
        /// a progress) or for reading (sized from the file's description, then filled by the reader).
        template <class T>
        struct checkpoint_buffers
        {
            std::array<std::uint64_t, checkpoint_fields> description{};
            std::vector<double> history_rows;  // epochs x history_columns(), row-major
            checkpoint_contents<T> contents;
        };

        /// THE checkpoint layout: every tensor of the file, in file order, with its shape and its buffer.
        template <class T>
        io::entry_list checkpoint_entries(checkpoint_buffers<T>& b, const io::checkpoint_layout& layout)
        {
            checkpoint_contents<T>& c = b.contents;
            training_progress<T>& p = c.progress;
            const std::size_t parameters = layout.parameter_names.size();
            io::entry_list e;
            e.add("checkpoint", b.description.data(), {checkpoint_fields});
            e.add("optimizer." + c.optimizer.kind, c.optimizer.hyper.data(), {c.optimizer.hyper.size()});
            for (std::size_t k = 0; k < parameters; ++k)
            {
                e.add(layout.parameter_names[k], c.parameters[k].data(), layout.parameter_shapes[k]);
            }
            io::add_optimizer_buffers(e, c.optimizer, layout);
            e.add("fit.shuffle_engine", p.shuffle_engine.data(), {p.shuffle_engine.size()});
            e.add("fit.order", p.order.data(), {p.order.size()});
            for (std::size_t k = 0; k < layout.engine_names.size(); ++k)
            {
                e.add(layout.engine_names[k], c.engines[k].data(), {c.engines[k].size()});
            }
            e.add("fit.history", b.history_rows.data(), {p.history.size(), history_columns().size()});
            e.add("fit.best", &p.best, {1});
            for (std::size_t k = 0; k < p.best_weights.size(); ++k)
            {
                e.add("best." + layout.parameter_names[k], p.best_weights[k].data(), layout.parameter_shapes[k]);
            }
            return e;
        }

        /// Reads the history rows into p.history, refusing counts that are not counts and rows out of order.
        template <class T, class Fail>
        void read_history(const std::vector<double>& rows, training_progress<T>& p, Fail&& fail)
        {
            const auto& columns = history_columns();
            for (std::size_t r = 0; r < p.history.size(); ++r)
            {
                const double* row = rows.data() + r * columns.size();
                epoch_logs& logs = p.history[r];
                for (std::size_t f = 0; f < columns.size(); ++f)
                {
                    const double v = row[f];
                    const bool bad = columns[f].kind == history_column::count
                                         ? !(v >= 0.0 && v <= history_integer_max) || v != std::floor(v)
                                         : columns[f].kind == history_column::flag && v != 0.0 && v != 1.0;
                    if (bad)
                    {
                        fail("fit.history row " + std::to_string(r) + " column " + std::to_string(f) + " ("
                             + columns[f].name + ") is not " + (columns[f].kind == history_column::flag ? "0 or 1" : "a count")
                             + ": " + std::to_string(v));
                    }
                    columns[f].set(logs, v);
                }
                if (logs.epoch != r + 1)
                {
                    fail("fit.history row " + std::to_string(r) + " is for epoch " + std::to_string(row[0])
                         + ", expected epoch " + std::to_string(r + 1));
                }
            }
        }
    }  // namespace detail

    /// The bytes save_checkpoint writes.
    template <class Model, class Optimizer>
    std::string save_checkpoint_to_bytes(Model& model, const Optimizer& optimizer,
                                         const training_progress<typename Model::value_type>& progress)
    {
        using T = typename Model::value_type;
        const char* where = "save_checkpoint";
        const io::checkpoint_layout layout = io::layout_of(model);
        detail::checkpoint_buffers<T> b;
        checkpoint_contents<T>& c = b.contents;
        c.optimizer = optimizer.snapshot();
        io::check_optimizer_parameters(c.optimizer, layout, where);
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
        for (std::size_t k = 0; k < progress.best_weights.size(); ++k)
        {
            if (progress.best_weights[k].size() != io::element_count(layout.parameter_shapes[k]))
            {
                throw value_error(std::string(where) + ": the best weights of " + layout.parameter_names[k] + " have "
                                  + std::to_string(progress.best_weights[k].size()) + " values, the parameter "
                                  + std::to_string(io::element_count(layout.parameter_shapes[k])));
            }
        }
        c.progress = progress;
        c.parameters = io::copy_parameters(model);
        c.engines = io::copy_engines(model);
        for (const epoch_logs& logs : progress.history)
        {
            for (const auto& column : detail::history_columns())
            {
                b.history_rows.push_back(column.get(logs));
            }
        }
        auto& d = b.description;
        d[detail::cp_epoch] = progress.epoch;
        d[detail::cp_train_samples] = progress.order.size();
        d[detail::cp_validation_samples] = progress.validation_samples;
        d[detail::cp_optimizer_parameters] = c.optimizer.parameters.size();
        d[detail::cp_optimizer_steps] = c.optimizer.steps;
        d[detail::cp_has_best_weights] = progress.best_weights.empty() ? 0 : 1;
        d[detail::cp_epochs_without_improvement] = progress.epochs_without_improvement;
        d[detail::cp_data_fingerprint] = progress.data_fingerprint;
        d[detail::cp_objective] = progress.objective;
        d[detail::cp_engines] = layout.engine_names.size();
        if (c.optimizer.parameters.empty())
        {
            c.optimizer.slots.clear();
        }

        const io::entry_list entries = detail::checkpoint_entries(b, layout);
        io::file_writer out(io::file_kind::checkpoint, io::element_type_of<T>(), io::signature_text<Model>(),
                            entries.size());
        entries.write(out);
        return out.finish();
    }

    /// Saves a checkpoint of model, optimizer and progress to path, atomically (the old file survives a failure).
    template <class Model, class Optimizer>
    void save_checkpoint(const std::string& path, Model& model, const Optimizer& optimizer,
                         const training_progress<typename Model::value_type>& progress)
    {
        io::atomic_write_file(path, save_checkpoint_to_bytes(model, optimizer, progress), "checkpoint");
    }

    namespace detail
    {
        /// Reads and checks a whole checkpoint against the model and the optimizer's kind; changes nothing.
        template <class Model, class Optimizer>
        checkpoint_contents<typename Model::value_type> read_checkpoint_from(
            io::file_reader& file, Model& model, const Optimizer& optimizer,
            const checkpoint_description_check& expected = nullptr)
        {
            using T = typename Model::value_type;
            io::check_written_by<Model>(file, "load_checkpoint");
            const io::checkpoint_layout layout = io::layout_of(model);
            const optimizer_snapshot<T> current = optimizer.snapshot();
            const std::string optimizer_entry = "optimizer." + current.kind;
            const std::size_t file_size = file.file_size();
            const auto fail = [&](const std::string& problem) { throw io_error(file.source() + ": " + problem); };

            // Stage 1b: the description right after the header, and the optimizer's kind, fix the exact size.
            const std::size_t description_bytes = io::entry_bytes("checkpoint", 1, checkpoint_fields, 8);
            const std::string head = file.prefix(file.header_size() + description_bytes + io::entry_bytes("", 1, 0, 8)
                                                 + io::max_name_bytes);
            io::binary_reader peek(head.data(), head.size(), file.source());
            peek.skip(file.header_size(), "the header");
            std::array<std::uint64_t, checkpoint_fields> d{};
            io::read_entry(peek, "checkpoint", std::array<std::size_t, 1>{checkpoint_fields}, d.data());
            if (expected)
            {
                expected(checkpoint_description{d[cp_epoch], d[cp_train_samples], d[cp_validation_samples],
                                                d[cp_data_fingerprint], d[cp_objective]});
            }
            const io::entry_header kind = io::file_reader::read_entry_header(peek);
            if (kind.name != optimizer_entry)
            {
                if (kind.name.rfind("optimizer.", 0) == 0)
                {
                    fail("holds the state of an optimizer of kind '" + kind.name.substr(10)
                         + "', but the model's optimizer is '" + current.kind + "'");
                }
                peek.fail("tensor '" + kind.name + "' where '" + optimizer_entry + "' was expected");
            }
            const std::size_t parameters = layout.parameter_names.size();
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
            // Both counts come from the file: bounded by its size before any buffer is sized from them.
            if (d[cp_train_samples] > file_size / 8 || d[cp_epoch] > file_size / (8 * history_columns().size()))
            {
                fail("declares " + std::to_string(d[cp_train_samples]) + " samples and "
                     + std::to_string(d[cp_epoch]) + " epochs, more than its " + std::to_string(file_size)
                     + " bytes can hold");
            }

            // The buffers, sized from the description; the list over them gives the exact size and the count.
            checkpoint_buffers<T> b;
            checkpoint_contents<T>& c = b.contents;
            c.source = file.source();
            c.optimizer = current;
            c.optimizer.hyper.assign(current.hyper.size(), 0.0);
            c.optimizer.steps = d[cp_optimizer_steps];
            io::size_optimizer_buffers(c.optimizer, layout, d[cp_optimizer_parameters] != 0);
            for (const auto& shape : layout.parameter_shapes)
            {
                c.parameters.emplace_back(io::element_count(shape));
            }
            c.engines.resize(layout.engine_names.size());
            training_progress<T>& p = c.progress;
            p.epoch = d[cp_epoch];
            p.validation_samples = d[cp_validation_samples];
            p.epochs_without_improvement = d[cp_epochs_without_improvement];
            p.data_fingerprint = d[cp_data_fingerprint];
            p.objective = d[cp_objective];
            p.order.resize(static_cast<std::size_t>(d[cp_train_samples]));
            p.history.resize(static_cast<std::size_t>(d[cp_epoch]));
            b.history_rows.resize(p.history.size() * history_columns().size());
            if (d[cp_has_best_weights] == 1)
            {
                p.best_weights = c.parameters;
            }
            const io::entry_list entries = checkpoint_entries(b, layout);
            if (file.entries() != entries.size())
            {
                fail(std::to_string(file.entries()) + " tensors, but its description implies "
                     + std::to_string(entries.size()));
            }

            // Stage 2: the whole file, checksum verified, read into the buffers.
            io::binary_reader in = file.body(file.header_size() + entries.bytes() + 8);
            entries.read(in, 0, 1);
            if (b.description != d)
            {
                fail("the file changed while it was read");
            }
            entries.read(in, 1);

            // Values that would make the resumed run misbehave: refused here, before anything changes.
            const std::size_t train_samples = p.order.size();
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
            read_history(b.history_rows, p, fail);
            return std::move(b.contents);
        }
    }  // namespace detail

    /// Reads a checkpoint and checks it against model and optimizer (signature, optimizer kind, every tensor);
    /// changes neither. apply_checkpoint then applies it. expected, when given, sees the file's description first
    /// (checkpoint_description) and throws to refuse the file before the rest of it is read.
    template <class Model, class Optimizer>
    checkpoint_contents<typename Model::value_type> read_checkpoint(const std::string& path, Model& model,
                                                                    const Optimizer& optimizer,
                                                                    const checkpoint_description_check& expected = nullptr)
    {
        io::file_reader file(path, io::file_kind::checkpoint);
        return detail::read_checkpoint_from(file, model, optimizer, expected);
    }

    /// read_checkpoint from bytes in memory; `source` names them in error messages.
    template <class Model, class Optimizer>
    checkpoint_contents<typename Model::value_type> read_checkpoint_from_bytes(std::string bytes, Model& model,
                                                                               const Optimizer& optimizer,
                                                                               std::string source = "checkpoint in memory")
    {
        io::file_reader file(std::move(bytes), std::move(source), io::file_kind::checkpoint);
        return detail::read_checkpoint_from(file, model, optimizer);
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
        io::commit_engines(contents.engines, model);  // never all zeros: read_checkpoint refused those
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
