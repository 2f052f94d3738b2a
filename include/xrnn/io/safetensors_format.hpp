// xtensor-rnn: the safetensors file format itself: its JSON header, its dtypes, and reading and writing its tensors
// with every rule of the format checked. It knows tensors (external_tensor: name, shape, row-major values), not
// layers or models; io/safetensors.hpp, the public entry, maps a model's layers onto them.
// Opt-in like io/safetensors.hpp: not part of <xrnn/xrnn.hpp>; it needs nlohmann-json.
//
//   const io::safetensors_view view = io::parse_safetensors(bytes, "model.safetensors");  // io_error if invalid
//   std::vector<float> w = io::safetensors_values<float>(view, *view.find("fc.weight"));
//   std::string file = io::safetensors_bytes(tensors, {{"format", "pt"}});
//
// The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes of a
// JSON object {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__":
// {"key": "value"}} (possibly padded with spaces), then the tensors' raw little-endian bytes, row-major. Reading
// enforces the format's rules: the header is at most 100 MB and fits in the file, it is valid UTF-8 JSON whose top
// is an object, names are unique, every tensor has exactly dtype, shape and data_offsets, its byte count is
// shape's product times the dtype's size, and the offsets, sorted, tile the data buffer exactly (contiguous, not
// overlapping, from 0 to its end). Every violation is an io_error naming the file; nothing is allocated from sizes
// the file claims beyond the file's own size.
//
// Dtypes: F32, F64, F16 and BF16 tensors are read into the model's scalar type. F16 and BF16 values are exact in
// float and double; F32 is exact in double; F64 into float rounds to the nearest float (relative error at most
// 2^-24), and a finite F64 value beyond float's range is refused. Files are written in the model's type (F32 or
// F64), so a save and a load give back the same bits.
#ifndef XRNN_IO_SAFETENSORS_FORMAT_HPP
#define XRNN_IO_SAFETENSORS_FORMAT_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/layers/external_tensors.hpp>

namespace xrnn
{
    namespace io
    {
        /// The largest JSON header read (the limit of the reference implementation).
        constexpr std::uint64_t safetensors_max_header_bytes = 100u * 1000u * 1000u;
        constexpr std::size_t safetensors_max_rank = 16;

        /// One tensor of a safetensors file, as its header describes it; its bytes are data[begin, end).
        struct safetensors_entry
        {
            std::string name;
            std::string dtype;
            std::vector<std::uint64_t> shape;
            std::size_t begin = 0;
            std::size_t end = 0;
        };

        /// A parsed file: its tensors in the order of their data, its metadata, and the data buffer (pointing into
        /// the bytes that were parsed, which must outlive it).
        struct safetensors_view
        {
            std::string source;
            std::vector<safetensors_entry> tensors;
            std::map<std::string, std::string> metadata;
            const char* data = nullptr;
            std::size_t data_size = 0;

            const safetensors_entry* find(const std::string& name) const
            {
                for (const auto& t : tensors)
                {
                    if (t.name == name)
                    {
                        return &t;
                    }
                }
                return nullptr;
            }
        };

        /// Bytes per element of every dtype of the format; 0 for an unknown one.
        inline std::size_t safetensors_dtype_size(const std::string& dtype) noexcept
        {
            static const std::pair<const char*, std::size_t> sizes[] = {
                {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2},
                {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},     {"I64", 8}, {"U64", 8},
                {"F64", 8}};
            for (const auto& s : sizes)
            {
                if (dtype == s.first)
                {
                    return s.second;
                }
            }
            return 0;
        }

        /// Whether a dtype is one xrnn reads as weights.
        inline bool safetensors_dtype_readable(const std::string& dtype) noexcept
        {
            return dtype == "F32" || dtype == "F64" || dtype == "F16" || dtype == "BF16";
        }

        inline std::string shape_string(const std::vector<std::uint64_t>& shape)
        {
            std::string text = "(";
            for (std::size_t i = 0; i < shape.size(); ++i)
            {
                text += (i ? ", " : "") + std::to_string(shape[i]);
            }
            return text + (shape.size() == 1 ? ",)" : ")");
        }

        namespace detail_st
        {
            struct json_refusal
            {
                std::string what;
            };

            inline std::uint64_t read_u64_le(const char* p) noexcept
            {
                std::uint64_t v = 0;
                for (int i = 7; i >= 0; --i)
                {
                    v = (v << 8) | static_cast<unsigned char>(p[i]);
                }
                return v;
            }

            /// An unsigned JSON integer, or fail.
            template <class Fail>
            std::uint64_t unsigned_of(const nlohmann::json& j, const std::string& what, Fail&& fail)
            {
                if (!j.is_number_unsigned())
                {
                    fail(what + " must be a non-negative integer, found " + j.dump());
                }
                return j.get<std::uint64_t>();
            }

            /// IEEE half to float (exact).
            inline float half_to_float(std::uint16_t h) noexcept
            {
                const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
                const std::uint32_t exponent = (h >> 10) & 0x1fu;
                const std::uint32_t mantissa = h & 0x3ffu;
                float magnitude;
                if (exponent == 0)
                {
                    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
                }
                else if (exponent == 31)
                {
                    magnitude = mantissa == 0 ? std::numeric_limits<float>::infinity()
                                              : std::numeric_limits<float>::quiet_NaN();
                }
                else
                {
                    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
                }
                std::uint32_t bits;
                std::memcpy(&bits, &magnitude, 4);
                bits |= sign;
                float out;
                std::memcpy(&out, &bits, 4);
                return out;
            }

            inline float bf16_to_float(std::uint16_t h) noexcept
            {
                const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
                float out;
                std::memcpy(&out, &bits, 4);
                return out;
            }

            template <class U>
            U load_le(const char* p) noexcept
            {
                char bytes[sizeof(U)];
                std::memcpy(bytes, p, sizeof(U));
                if (!host_is_little_endian())
                {
                    std::reverse(bytes, bytes + sizeof(U));
                }
                U v;
                std::memcpy(&v, bytes, sizeof(U));
                return v;
            }
        }  // namespace detail_st

        /// Parses and checks a safetensors file held in `bytes` (which the view then points into). io_error on any
        /// violation of the format; `source` names the bytes in messages.
        inline safetensors_view parse_safetensors(const std::string& bytes, const std::string& source)
        {
            auto fail = [&](const std::string& problem) -> void {
                throw io_error(source + ": not a valid safetensors file: " + problem);
            };
            if (bytes.size() < 8)
            {
                fail(std::to_string(bytes.size()) + " bytes, less than the 8-byte header length (truncated)");
            }
            const std::uint64_t header_size = detail_st::read_u64_le(bytes.data());
            if (header_size > safetensors_max_header_bytes)
            {
                fail("header length " + std::to_string(header_size) + " exceeds the limit of "
                     + std::to_string(safetensors_max_header_bytes) + " bytes");
            }
            if (header_size > bytes.size() - 8)
            {
                fail("header length " + std::to_string(header_size) + " but only " + std::to_string(bytes.size() - 8)
                     + " bytes follow (truncated)");
            }
            if (header_size < 2 || bytes[8] != '{')
            {
                fail("the header must be a JSON object starting with '{'");
            }

            // Parse, refusing duplicate names (nlohmann would keep the last one) and nesting deeper than the format's.
            nlohmann::json header;
            std::vector<std::set<std::string>> keys;
            try
            {
                const char* begin = bytes.data() + 8;
                header = nlohmann::json::parse(
                    begin, begin + header_size,
                    [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
                        if (depth > 3)
                        {
                            throw detail_st::json_refusal{"the header nests deeper than the format allows"};
                        }
                        if (event == nlohmann::json::parse_event_t::object_start)
                        {
                            keys.emplace_back();
                        }
                        else if (event == nlohmann::json::parse_event_t::object_end && !keys.empty())
                        {
                            keys.pop_back();
                        }
                        else if (event == nlohmann::json::parse_event_t::key && !keys.empty())
                        {
                            const std::string key = parsed.get<std::string>();
                            if (!keys.back().insert(key).second)
                            {
                                throw detail_st::json_refusal{"the name \"" + key + "\" appears twice"};
                            }
                        }
                        return true;
                    });
            }
            catch (const detail_st::json_refusal& refusal)
            {
                fail(refusal.what);
            }
            catch (const nlohmann::json::exception& error)
            {
                fail(std::string("the header is not valid JSON: ") + error.what());
            }
            if (!header.is_object())
            {
                fail("the header must be a JSON object");
            }

            safetensors_view view;
            view.source = source;
            view.data = bytes.data() + 8 + header_size;
            view.data_size = bytes.size() - 8 - static_cast<std::size_t>(header_size);
            for (const auto& item : header.items())
            {
                const std::string& name = item.key();
                const nlohmann::json& info = item.value();
                if (name == "__metadata__")
                {
                    if (!info.is_object())
                    {
                        fail("__metadata__ must be an object of strings");
                    }
                    for (const auto& m : info.items())
                    {
                        if (!m.value().is_string())
                        {
                            fail("__metadata__ value of \"" + m.key() + "\" is not a string");
                        }
                        view.metadata[m.key()] = m.value().get<std::string>();
                    }
                    continue;
                }
                const std::string where = "tensor \"" + name + "\"";
                if (!info.is_object())
                {
                    fail(where + " is not an object");
                }
                for (const auto& field : info.items())
                {
                    if (field.key() != "dtype" && field.key() != "shape" && field.key() != "data_offsets")
                    {
                        fail(where + " has an unknown field \"" + field.key() + "\"");
                    }
                }
                if (!info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
                {
                    fail(where + " needs dtype, shape and data_offsets");
                }
                safetensors_entry entry;
                entry.name = name;
                if (!info["dtype"].is_string())
                {
                    fail(where + ": dtype is not a string");
                }
                entry.dtype = info["dtype"].get<std::string>();
                const std::size_t element = safetensors_dtype_size(entry.dtype);
                if (element == 0)
                {
                    fail(where + ": unknown dtype \"" + entry.dtype + "\"");
                }
                const auto& shape = info["shape"];
                if (!shape.is_array() || shape.size() > safetensors_max_rank)
                {
                    fail(where + ": shape must be an array of at most " + std::to_string(safetensors_max_rank)
                         + " sizes");
                }
                // bytes = product(shape) * element, refused as soon as it exceeds the data buffer (no overflow)
                std::uint64_t count = 1;
                bool empty = false;
                for (const auto& d : shape)
                {
                    const std::uint64_t extent = detail_st::unsigned_of(d, where + ": a shape size", fail);
                    entry.shape.push_back(extent);
                    empty = empty || extent == 0;
                }
                for (std::uint64_t extent : entry.shape)
                {
                    if (!empty && count > view.data_size / extent)
                    {
                        fail(where + ": shape " + shape_string(entry.shape) + " holds more values than the "
                             + std::to_string(view.data_size) + "-byte data buffer");
                    }
                    count = empty ? 0 : count * extent;
                }
                const auto& offsets = info["data_offsets"];
                if (!offsets.is_array() || offsets.size() != 2)
                {
                    fail(where + ": data_offsets must be [begin, end]");
                }
                const std::uint64_t begin = detail_st::unsigned_of(offsets[0], where + ": data_offsets", fail);
                const std::uint64_t end = detail_st::unsigned_of(offsets[1], where + ": data_offsets", fail);
                if (begin > end || end > view.data_size)
                {
                    fail(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end)
                         + "] are not a range inside the " + std::to_string(view.data_size) + "-byte data buffer");
                }
                // count <= data_size here, so count * element (element <= 8) cannot overflow
                if (count * element != end - begin)
                {
                    fail(where + ": dtype " + entry.dtype + " and shape " + shape_string(entry.shape) + " need "
                         + std::to_string(count * element) + " bytes, data_offsets give "
                         + std::to_string(end - begin));
                }
                entry.begin = static_cast<std::size_t>(begin);
                entry.end = static_cast<std::size_t>(end);
                view.tensors.push_back(std::move(entry));
            }
            // The offsets, in order, must tile the buffer: from 0, each tensor starting where the one before ended.
            // The view lists the tensors in that order (the file's), not the JSON's.
            std::stable_sort(view.tensors.begin(), view.tensors.end(),
                             [](const safetensors_entry& a, const safetensors_entry& b) {
                                 return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                             });
            std::size_t at = 0;
            for (const auto* t = view.tensors.data(); t != view.tensors.data() + view.tensors.size(); ++t)
            {
                if (t->begin != at)
                {
                    fail("tensor \"" + t->name + "\" starts at byte " + std::to_string(t->begin) + " of the data, "
                         + (t->begin < at ? "overlapping the tensor before it" : "leaving a gap")
                         + " (the previous tensor ends at " + std::to_string(at) + ")");
                }
                at = t->end;
            }
            if (at != view.data_size)
            {
                fail("the tensors cover " + std::to_string(at) + " bytes of the " + std::to_string(view.data_size)
                     + "-byte data buffer");
            }
            return view;
        }

        /// The values of a tensor of dtype F32, F64, F16 or BF16 as U (float or double), row-major; io_error for
        /// another dtype, or an F64 value beyond float's range when U is float.
        template <class U>
        std::vector<U> safetensors_values(const safetensors_view& view, const safetensors_entry& t)
        {
            static_assert(std::is_same<U, float>::value || std::is_same<U, double>::value, "float or double");
            if (!safetensors_dtype_readable(t.dtype))
            {
                throw io_error(view.source + ": tensor \"" + t.name + "\" has dtype " + t.dtype
                               + "; weights are read from F32, F64, F16 or BF16");
            }
            const std::size_t element = safetensors_dtype_size(t.dtype);
            const std::size_t count = (t.end - t.begin) / element;
            std::vector<U> out(count);
            const char* p = view.data + t.begin;
            const char kind = t.dtype == "F32" ? 'f' : t.dtype == "F64" ? 'd' : t.dtype == "F16" ? 'h' : 'b';
            for (std::size_t i = 0; i < count; ++i, p += element)
            {
                if (kind == 'f')
                {
                    out[i] = static_cast<U>(detail_st::load_le<float>(p));
                }
                else if (kind == 'd')
                {
                    const double v = detail_st::load_le<double>(p);
                    if (std::is_same<U, float>::value && std::isfinite(v)
                        && std::fabs(v) > static_cast<double>(std::numeric_limits<float>::max()))
                    {
                        throw io_error(view.source + ": tensor \"" + t.name + "\" value " + std::to_string(i) + " ("
                                       + std::to_string(v) + ") is beyond the range of float");
                    }
                    out[i] = static_cast<U>(v);
                }
                else if (kind == 'h')
                {
                    out[i] = static_cast<U>(detail_st::half_to_float(detail_st::load_le<std::uint16_t>(p)));
                }
                else
                {
                    out[i] = static_cast<U>(detail_st::bf16_to_float(detail_st::load_le<std::uint16_t>(p)));
                }
            }
            return out;
        }

        /// A safetensors file of these tensors (data in the given order) and metadata; the header is padded with
        /// spaces so that the data starts at a multiple of 8 bytes.
        template <class U>
        std::string safetensors_bytes(const std::vector<external_tensor<U>>& tensors,
                                      const std::map<std::string, std::string>& metadata)
        {
            static_assert(std::is_same<U, float>::value || std::is_same<U, double>::value, "float or double");
            const char* dtype = std::is_same<U, float>::value ? "F32" : "F64";
            nlohmann::json header = nlohmann::json::object();
            std::size_t offset = 0;
            for (const auto& t : tensors)
            {
                if (header.contains(t.name) || t.name == "__metadata__")
                {
                    throw io_error("safetensors: the tensor name \"" + t.name + "\" is used twice");
                }
                const std::size_t bytes = t.values.size() * sizeof(U);
                header[t.name] = {{"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
                offset += bytes;
            }
            if (!metadata.empty())
            {
                header["__metadata__"] = metadata;
            }
            std::string text = header.dump();
            text.append((8 - (8 + text.size()) % 8) % 8, ' ');
            binary_writer out;
            out.put(static_cast<std::uint64_t>(text.size()));
            out.put_raw(text.data(), text.size());
            for (const auto& t : tensors)
            {
                out.put_array(t.values.data(), t.values.size());
            }
            return std::move(out.bytes());
        }
    }  // namespace io
}  // namespace xrnn

#endif
