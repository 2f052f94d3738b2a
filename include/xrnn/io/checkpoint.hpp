// xtensor-rnn: the pieces a training checkpoint is made of (format: docs/weight-format.md, kind 2), independent of
// what trains the model.
//
//   io::entry_list entries;                              // one list: name, shape, where the values live
//   entries.add("fit.order", order.data(), {order.size()});
//   out_size = header + entries.bytes() + 8;             // the exact file size, from the same list
//   entries.write(writer);  /  entries.read(reader);     // writing and reading walk the same list
//
// A checkpoint file is a sequence of named tensors. Its layout is described once, as an entry_list whose entries
// point at the buffers that hold the values: the writer reads them from there, the reader (after sizing the
// buffers from the file's description) writes them there, and the exact file size is summed over the same list.
// Adding a tensor to the format is one add() in the function that builds the list
// (model/training_checkpoint.hpp).
//
// This header also gathers what a checkpoint stores of a model and of an optimizer: parameter names and shapes,
// the random engines of the layers (through each layer's for_each_random_engine member, layers/layer_traits.hpp),
// and the optimizer's snapshot checked against the parameters. It knows nothing of fit(): the training loop's own
// state (epochs, order, history, early stopping) is described by model/training_checkpoint.hpp.
#ifndef XRNN_IO_CHECKPOINT_HPP
#define XRNN_IO_CHECKPOINT_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/io/weights.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    namespace io
    {
        inline std::size_t element_count(const std::vector<std::size_t>& shape)
        {
            std::size_t count = 1;
            for (std::size_t d : shape)
            {
                count *= d;
            }
            return count;
        }

        /// One tensor of a file: its name, element type and shape, and the buffer its values are read from (when
        /// writing) or written to (when reading).
        struct entry
        {
            std::string name;
            element_type type;
            std::vector<std::size_t> shape;
            void* data;
        };

        /// The tensors of a file in file order; drives writing, the size check and reading.
        class entry_list
        {
        public:
            template <class U>
            void add(std::string name, U* data, std::vector<std::size_t> shape)
            {
                m_entries.push_back(entry{std::move(name), element_type_of<U>(), std::move(shape), data});
            }

            std::size_t size() const noexcept
            {
                return m_entries.size();
            }

            const entry& operator[](std::size_t k) const
            {
                return m_entries[k];
            }

            /// Bytes the entries take in a file (names, types, shapes and values).
            std::size_t bytes() const
            {
                std::size_t total = 0;
                for (const entry& e : m_entries)
                {
                    total += entry_bytes(e.name, e.shape.size(), element_count(e.shape), element_size(e.type));
                }
                return total;
            }

            void write(file_writer& out) const
            {
                for (const entry& e : m_entries)
                {
                    switch (e.type)
                    {
                    case element_type::float32: out.add(e.name, static_cast<const float*>(e.data), e.shape); break;
                    case element_type::float64: out.add(e.name, static_cast<const double*>(e.data), e.shape); break;
                    case element_type::uint64: out.add(e.name, static_cast<const std::uint64_t*>(e.data), e.shape); break;
                    }
                }
            }

            /// Reads entries [first, last) (all by default) into their buffers, each checked for name, type, shape.
            void read(binary_reader& in, std::size_t first = 0, std::size_t last = static_cast<std::size_t>(-1)) const
            {
                for (std::size_t k = first; k < std::min(last, m_entries.size()); ++k)
                {
                    const entry& e = m_entries[k];
                    switch (e.type)
                    {
                    case element_type::float32: read_entry(in, e.name, e.shape, static_cast<float*>(e.data)); break;
                    case element_type::float64: read_entry(in, e.name, e.shape, static_cast<double*>(e.data)); break;
                    case element_type::uint64: read_entry(in, e.name, e.shape, static_cast<std::uint64_t*>(e.data)); break;
                    }
                }
            }

        private:
            static std::size_t element_size(element_type type) noexcept
            {
                return type == element_type::float32 ? 4 : 8;
            }

            std::vector<entry> m_entries;
        };

        /// What a checkpoint stores of a model's structure: parameter names and shapes, engine entry names.
        struct checkpoint_layout
        {
            std::vector<std::string> parameter_names;
            std::vector<std::vector<std::size_t>> parameter_shapes;
            std::vector<std::string> engine_names;  // "engine.<the model's name for it>"
        };

        template <class Model>
        checkpoint_layout layout_of(Model& model)
        {
            checkpoint_layout layout;
            model.for_each_parameter([&](const auto& name, auto& value, auto&) {
                layout.parameter_names.emplace_back(name);
                layout.parameter_shapes.emplace_back(value.shape().begin(), value.shape().end());
            });
            for_each_random_engine(model, [&](const std::string& name, random_engine&) {
                layout.engine_names.push_back("engine." + name);
            });
            return layout;
        }

        /// The states of a model's random engines, in for_each_random_engine order.
        template <class Model>
        std::vector<random_engine::state_type> copy_engines(Model& model)
        {
            std::vector<random_engine::state_type> states;
            for_each_random_engine(model, [&](const std::string&, random_engine& engine) { states.push_back(engine.state()); });
            return states;
        }

        /// Puts states made by copy_engines (or read from a file and checked) back; never all zeros.
        template <class Model>
        void commit_engines(const std::vector<random_engine::state_type>& states, Model& model)
        {
            std::size_t e = 0;
            for_each_random_engine(model, [&](const std::string&, random_engine& engine) { engine.set_state(states[e++]); });
        }

        inline std::string slot_entry_name(const std::string& slot, const std::string& parameter)
        {
            return "optimizer." + slot + "." + parameter;
        }

        /// Checks that a snapshot's buffers belong to these parameters (names and sizes, in order).
        template <class T>
        void check_optimizer_parameters(const optimizer_snapshot<T>& snapshot, const checkpoint_layout& layout,
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

        /// Sizes a snapshot's buffers for reading: one set of slot buffers per parameter when `with_buffers`, none
        /// otherwise (an optimizer that has not stepped yet).
        template <class T>
        void size_optimizer_buffers(optimizer_snapshot<T>& snapshot, const checkpoint_layout& layout, bool with_buffers)
        {
            snapshot.parameters.clear();
            snapshot.slots.clear();
            if (!with_buffers || snapshot.slot_names.empty())
            {
                return;
            }
            snapshot.parameters = layout.parameter_names;
            for (const auto& shape : layout.parameter_shapes)
            {
                snapshot.slots.emplace_back(snapshot.slot_names.size(), std::vector<T>(element_count(shape)));
            }
        }

        /// Adds the optimizer's per-parameter buffers to a list: "optimizer.<slot>.<parameter>", parameter by
        /// parameter, each of its parameter's shape.
        template <class T>
        void add_optimizer_buffers(entry_list& entries, optimizer_snapshot<T>& snapshot, const checkpoint_layout& layout)
        {
            for (std::size_t k = 0; k < snapshot.slots.size(); ++k)
            {
                for (std::size_t s = 0; s < snapshot.slot_names.size(); ++s)
                {
                    entries.add(slot_entry_name(snapshot.slot_names[s], layout.parameter_names[k]),
                                snapshot.slots[k][s].data(), layout.parameter_shapes[k]);
                }
            }
        }
    }  // namespace io
}  // namespace xrnn

#endif
