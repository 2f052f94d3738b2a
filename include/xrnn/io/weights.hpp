// xtensor-rnn: weight files, the trained parameters of a model or layer (format: docs/weight-format.md).
//
//   xrnn::save_weights("model.xrnnw", model);   // atomic: the old file survives a failed save
//   xrnn::load_weights("model.xrnnw", model);   // all or nothing: a bad file leaves the model as it was
//   std::string bytes = xrnn::save_weights_to_bytes(model);   // the same, in memory
//   xrnn::load_weights_from_bytes(bytes, model);
//
// A file carries the signature of what wrote it (types and compile-time sizes, e.g.
// "sequential<embedding<float32,10000,128>,lstm<float32,128,128,layers=1,last>,dense<float32,128,1>>"), every
// parameter tensor with its name and shape, and a checksum. Loading checks, in this order: magic and version,
// the signature (a mismatch shows both), the exact file size the signature implies, the checksum, then each
// tensor's name and shape; only then are the values copied into the model, so nothing is overwritten unless
// everything is right, and nothing is allocated from sizes the file claims.
#ifndef XRNN_IO_WEIGHTS_HPP
#define XRNN_IO_WEIGHTS_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/layers/layer_traits.hpp>

namespace xrnn
{
    namespace io
    {
        constexpr char file_magic[8] = {'X', 'R', 'N', 'N', 'F', 'I', 'L', 'E'};
        constexpr std::uint32_t format_version = 1;
        constexpr std::size_t max_signature_bytes = 1u << 16;
        constexpr std::size_t max_name_bytes = 1u << 12;
        constexpr std::size_t max_rank = 8;
        constexpr std::size_t header_bytes_max = 8 + 4 + 4 + 4 + 4 + max_signature_bytes + 4;

        /// What a file holds: a model's weights, or a training checkpoint (weights, optimizer state, progress).
        enum class file_kind : std::uint32_t
        {
            weights = 1,
            checkpoint = 2
        };

        enum class element_type : std::uint32_t
        {
            float32 = 1,
            float64 = 2,
            uint64 = 3
        };

        template <class U>
        constexpr element_type element_type_of() noexcept
        {
            static_assert(std::is_same<U, float>::value || std::is_same<U, double>::value
                              || std::is_same<U, std::uint64_t>::value,
                          "xrnn::io: tensors hold float, double or std::uint64_t");
            return std::is_same<U, float>::value    ? element_type::float32
                   : std::is_same<U, double>::value ? element_type::float64
                                                    : element_type::uint64;
        }

        inline const char* kind_name(std::uint32_t kind) noexcept
        {
            return kind == 1 ? "weights" : kind == 2 ? "checkpoint" : "unknown";
        }

        /// "a weights file", "a checkpoint file", "an unknown file".
        inline std::string a_kind_file(std::uint32_t kind)
        {
            const std::string name = kind_name(kind);
            return (name[0] == 'u' ? "an " : "a ") + name + " file";
        }

        /// "float32", "float64", "uint64", or the code of a type this library does not know.
        inline std::string element_type_name(std::uint32_t type)
        {
            return type == 1   ? "float32"
                   : type == 2 ? "float64"
                   : type == 3 ? "uint64"
                               : "an unknown type (code " + std::to_string(type) + ")";
        }

        /// One named tensor of a file: its element type and shape (the values follow in the file).
        struct entry_header
        {
            std::string name;
            element_type type;
            std::vector<std::uint64_t> shape;
        };

        /// Builds a file: header, entries, checksum.
        class file_writer
        {
        public:
            file_writer(file_kind kind, element_type scalar, const std::string& signature, std::size_t entries)
            {
                m_out.put_raw(file_magic, sizeof file_magic);
                m_out.put(format_version);
                m_out.put(static_cast<std::uint32_t>(kind));
                m_out.put(static_cast<std::uint32_t>(scalar));
                m_out.put_string(signature);
                m_out.put(static_cast<std::uint32_t>(entries));
            }

            template <class U, class Shape>
            void add(const std::string& name, const U* values, const Shape& shape)
            {
                m_out.put_string(name);
                m_out.put(static_cast<std::uint32_t>(element_type_of<U>()));
                m_out.put(static_cast<std::uint32_t>(shape.size()));
                std::size_t count = 1;
                for (auto d : shape)
                {
                    m_out.put(static_cast<std::uint64_t>(d));
                    count *= static_cast<std::size_t>(d);
                }
                m_out.put_array(values, count);
            }

            /// The finished bytes, with the checksum of everything before it appended.
            const std::string& finish()
            {
                const std::uint64_t checksum = fnv1a64(m_out.bytes().data(), m_out.bytes().size());
                m_out.put(checksum);
                return m_out.bytes();
            }

        private:
            binary_writer m_out;
        };

        /// Bytes an entry takes in the file.
        inline std::size_t entry_bytes(const std::string& name, std::size_t rank, std::size_t count,
                                       std::size_t element_size) noexcept
        {
            return 4 + name.size() + 4 + 4 + 8 * rank + count * element_size;
        }

        /// Reads a file in two stages: the header (bounded), then, once the caller knows from the signature how
        /// big the file must be, the whole file with its checksum verified. The file is a path, or bytes already in
        /// memory (the same checks; `source` names them in messages).
        class file_reader
        {
        public:
            file_reader(const std::string& path, file_kind expected_kind)
                : m_path(path)
            {
                // Stage 1: at most the largest possible header, whatever the file's size.
                const char* what = kind_name(static_cast<std::uint32_t>(expected_kind));
                m_file_size = regular_file_size(path, what);
                const std::string prefix = read_prefix(path, header_bytes_max, what);
                read_header(prefix.data(), prefix.size(), expected_kind);
            }

            file_reader(std::string bytes, std::string source, file_kind expected_kind)
                : m_path(std::move(source))
                , m_bytes(std::move(bytes))
                , m_in_memory(true)
            {
                m_file_size = m_bytes.size();
                read_header(m_bytes.data(), std::min(m_bytes.size(), header_bytes_max), expected_kind);
            }

            /// The first min(bytes, file_size()) bytes, before any check of the checksum: for a caller that needs
            /// a fixed-size entry right after the header to know how big the file must be.
            std::string prefix(std::size_t bytes) const
            {
                if (m_in_memory)
                {
                    return m_bytes.substr(0, std::min(bytes, m_bytes.size()));
                }
                return read_prefix(m_path, bytes, kind_name(static_cast<std::uint32_t>(m_kind)));
            }

            const std::string& source() const noexcept
            {
                return m_path;
            }

            const std::string& signature() const noexcept
            {
                return m_signature;
            }

            std::uint32_t scalar() const noexcept
            {
                return m_scalar;
            }

            std::size_t entries() const noexcept
            {
                return m_entries;
            }

            std::size_t file_size() const noexcept
            {
                return m_file_size;
            }

            /// Stage 2: reads the whole file, which must be exactly expected_size bytes, and checks the checksum.
            binary_reader body(std::size_t expected_size)
            {
                if (m_file_size != expected_size)
                {
                    throw io_error(m_path + ": " + std::to_string(m_file_size) + " bytes, but a file of this signature "
                                   + "has " + std::to_string(expected_size) + " ("
                                   + (m_file_size < expected_size ? "truncated" : "extra bytes at the end") + ")");
                }
                if (!m_in_memory)
                {
                    m_bytes = read_file(m_path, expected_size, "file");
                    if (m_bytes.size() != expected_size)
                    {
                        throw io_error(m_path + ": " + std::to_string(m_bytes.size()) + " bytes, but a file of this "
                                       + "signature has " + std::to_string(expected_size)
                                       + " (the file changed while read)");
                    }
                }
                binary_reader tail(m_bytes.data() + expected_size - 8, 8, m_path);
                const auto stored = tail.get<std::uint64_t>("the checksum");
                const auto actual = fnv1a64(m_bytes.data(), expected_size - 8);
                if (stored != actual)
                {
                    throw io_error(m_path + ": checksum mismatch (the file is corrupted)");
                }
                binary_reader in(m_bytes.data(), expected_size - 8, m_path);
                in.skip(m_body_offset, "the header");
                return in;
            }

            /// Bytes of the header this file has (its signature included).
            std::size_t header_size() const noexcept
            {
                return m_body_offset;
            }

            static entry_header read_entry_header(binary_reader& in)
            {
                entry_header e;
                e.name = in.get_string("a tensor name", max_name_bytes);
                const auto type = in.get<std::uint32_t>("a tensor's element type");
                if (type < 1 || type > 3)
                {
                    in.fail("tensor " + e.name + " has the unknown element type " + std::to_string(type));
                }
                e.type = static_cast<element_type>(type);
                const auto rank = in.get<std::uint32_t>("a tensor's rank");
                if (rank > max_rank)
                {
                    in.fail("tensor " + e.name + " has rank " + std::to_string(rank) + ", more than "
                            + std::to_string(max_rank));
                }
                for (std::uint32_t r = 0; r < rank; ++r)
                {
                    e.shape.push_back(in.get<std::uint64_t>("a tensor's shape"));
                }
                return e;
            }

        private:
            void read_header(const char* data, std::size_t size, file_kind expected_kind)
            {
                m_kind = expected_kind;
                binary_reader in(data, size, m_path);
                char magic[sizeof file_magic];
                if (size < sizeof magic)
                {
                    in.fail("not an xrnn file: " + std::to_string(size) + " bytes, too short for the header");
                }
                in.get_array(magic, sizeof magic, "the magic number");
                if (std::memcmp(magic, file_magic, sizeof magic) != 0)
                {
                    in.fail("not an xrnn file (the magic number is not XRNNFILE)");
                }
                const auto version = in.get<std::uint32_t>("the format version");
                if (version != format_version)
                {
                    in.fail("format version " + std::to_string(version) + ", but this library reads version "
                            + std::to_string(format_version));
                }
                const auto kind = in.get<std::uint32_t>("the file kind");
                if (kind != static_cast<std::uint32_t>(expected_kind))
                {
                    in.fail(a_kind_file(kind) + " (kind " + std::to_string(kind) + "), expected "
                            + a_kind_file(static_cast<std::uint32_t>(expected_kind)));
                }
                m_scalar = in.get<std::uint32_t>("the scalar type");
                m_signature = in.get_string("the model signature", max_signature_bytes);
                m_entries = in.get<std::uint32_t>("the tensor count");
                m_body_offset = in.offset();
            }

            std::string m_path;
            std::string m_bytes;
            bool m_in_memory = false;
            file_kind m_kind = file_kind::weights;
            std::string m_signature;
            std::uint32_t m_scalar = 0;
            std::size_t m_entries = 0;
            std::size_t m_file_size = 0;
            std::size_t m_body_offset = 0;
        };

        inline std::string shape_text(const std::vector<std::uint64_t>& shape)
        {
            std::string text = "(";
            for (std::size_t i = 0; i < shape.size(); ++i)
            {
                text += (i ? ", " : "") + std::to_string(shape[i]);
            }
            return text + ")";
        }

        /// Reads the next entry into `values`, which must have the name, type and shape the file declares.
        template <class U, class Shape>
        void read_entry(binary_reader& in, const std::string& name, const Shape& shape, U* values)
        {
            const entry_header e = file_reader::read_entry_header(in);
            std::vector<std::uint64_t> expected(shape.begin(), shape.end());
            if (e.name == name && e.shape == expected && e.type != element_type_of<U>())
            {
                in.fail("tensor '" + name + "' of shape " + shape_text(expected) + " holds "
                        + element_type_name(static_cast<std::uint32_t>(e.type)) + " values where "
                        + element_type_name(static_cast<std::uint32_t>(element_type_of<U>())) + " was expected");
            }
            if (e.name != name || e.type != element_type_of<U>() || e.shape != expected)
            {
                in.fail("tensor '" + e.name + "' of shape " + shape_text(e.shape) + " where '" + name + "' of shape "
                        + shape_text(expected) + " was expected");
            }
            std::size_t count = 1;
            for (auto d : shape)
            {
                count *= static_cast<std::size_t>(d);
            }
            in.get_array(values, count, name.c_str());
        }

        /// The signature of a model or of a single layer: its own signature() (layers/layer_traits.hpp).
        template <class Model>
        std::string signature_text()
        {
            return Model::signature();
        }

        template <class Model>
        using scalar_t = typename Model::value_type;

        /// Parameter tensors of a model as (name, shape, count) in visiting order.
        template <class Model>
        std::size_t parameter_entries_bytes(Model& model, std::size_t& count)
        {
            std::size_t bytes = 0;
            count = 0;
            model.for_each_parameter([&](const auto& name, auto& value, auto&) {
                bytes += entry_bytes(std::string(name), value.dimension(), value.size(), sizeof(scalar_t<Model>));
                ++count;
            });
            return bytes;
        }

        /// Adds every parameter of model to the writer.
        template <class Model>
        void write_parameters(file_writer& out, Model& model)
        {
            model.for_each_parameter(
                [&](const auto& name, auto& value, auto&) { out.add(std::string(name), value.data(), value.shape()); });
        }

        /// Reads every parameter of model from `in` into fresh buffers (the model is not touched).
        template <class Model>
        std::vector<std::vector<scalar_t<Model>>> read_parameters(binary_reader& in, Model& model)
        {
            std::vector<std::vector<scalar_t<Model>>> values;
            model.for_each_parameter([&](const auto& name, auto& value, auto&) {
                values.emplace_back(value.size());
                read_entry(in, std::string(name), value.shape(), values.back().data());
            });
            return values;
        }

        /// Every parameter of the model copied out, in visiting order (commit_parameters puts them back).
        template <class Model>
        std::vector<std::vector<scalar_t<Model>>> copy_parameters(Model& model)
        {
            std::vector<std::vector<scalar_t<Model>>> values;
            model.for_each_parameter([&](const auto&, auto& value, auto&) { values.emplace_back(value.begin(), value.end()); });
            return values;
        }

        /// Copies buffers made by read_parameters or copy_parameters into the model (cannot fail: the sizes match).
        template <class Model>
        void commit_parameters(const std::vector<std::vector<scalar_t<Model>>>& values, Model& model) noexcept
        {
            std::size_t k = 0;
            model.for_each_parameter([&](const auto&, auto& value, auto&) {
                std::copy(values[k].begin(), values[k].end(), value.begin());
                ++k;
            });
        }

        /// Checks that an opened file was written by a model of this signature and scalar type.
        template <class Model>
        void check_written_by(const file_reader& file, const char* where)
        {
            const std::string expected = signature_text<Model>();
            const auto scalar = static_cast<std::uint32_t>(element_type_of<scalar_t<Model>>());
            if (file.signature() == expected && file.scalar() != scalar)
            {
                throw io_error(std::string(where) + ": '" + file.source() + "' has the signature of this model but "
                               + "says its scalar type is " + element_type_name(file.scalar()) + ", not "
                               + element_type_name(scalar) + " as the signature says: the file is damaged");
            }
            if (file.signature() != expected || file.scalar() != scalar)
            {
                throw io_error(std::string(where) + ": '" + file.source() + "' was written by\n  " + file.signature()
                               + "\nbut this model is\n  " + expected);
            }
        }

        /// Opens a file of `kind` and checks that it was written by a model of this signature and scalar type.
        template <class Model>
        file_reader open_for(const std::string& path, file_kind kind, const char* where)
        {
            file_reader file(path, kind);
            check_written_by<Model>(file, where);
            return file;
        }

        /// load_weights and load_weights_from_bytes, once the file is open.
        template <class Model>
        void load_weights_from(file_reader& file, Model& model)
        {
            check_written_by<Model>(file, "load_weights");
            std::size_t count = 0;
            const std::size_t expected_size = file.header_size() + parameter_entries_bytes(model, count) + 8;
            if (file.entries() != count)
            {
                throw io_error("load_weights: '" + file.source() + "' has " + std::to_string(file.entries())
                               + " tensors, the model " + std::to_string(count));
            }
            binary_reader in = file.body(expected_size);
            auto values = read_parameters(in, model);
            commit_parameters(values, model);
        }
    }  // namespace io

    /// The bytes save_weights would write: the same format, for a caller that stores them elsewhere.
    template <class Model>
    std::string save_weights_to_bytes(Model& model)
    {
        std::size_t count = 0;
        io::parameter_entries_bytes(model, count);
        io::file_writer out(io::file_kind::weights, io::element_type_of<typename Model::value_type>(),
                            io::signature_text<Model>(), count);
        io::write_parameters(out, model);
        return out.finish();
    }

    /// Saves the parameters of a model (or of one layer) to path, atomically.
    template <class Model>
    void save_weights(const std::string& path, Model& model)
    {
        io::atomic_write_file(path, save_weights_to_bytes(model), "weights");
    }

    /// Loads parameters saved by save_weights into a model of the same signature; all or nothing.
    template <class Model>
    void load_weights(const std::string& path, Model& model)
    {
        io::file_reader file(path, io::file_kind::weights);
        io::load_weights_from(file, model);
    }

    /// The signature of the model that wrote a weight file (e.g. "sequential<embedding<float32,10000,128>,
    /// lstm<float32,128,128,layers=1,last>,dense<float32,128,1>>"), read from its header: a program that can build
    /// several models picks the one a file needs.
    inline std::string weights_signature(const std::string& path)
    {
        return io::file_reader(path, io::file_kind::weights).signature();
    }

    /// load_weights from bytes in memory (e.g. embedded in a program); `source` names them in error messages.
    template <class Model>
    void load_weights_from_bytes(std::string bytes, Model& model, std::string source = "weights in memory")
    {
        io::file_reader file(std::move(bytes), std::move(source), io::file_kind::weights);
        io::load_weights_from(file, model);
    }
}  // namespace xrnn

#endif
