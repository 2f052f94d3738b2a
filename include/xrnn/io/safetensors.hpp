// xtensor-rnn: safetensors files, to run and keep training models of PyTorch or Keras here, and back.
// Opt-in: not part of <xrnn/xrnn.hpp>; it needs nlohmann-json (Debian: nlohmann-json3-dev; CMake: xrnn::safetensors).
//
//   #include <xrnn/io/safetensors.hpp>
//   xrnn::load_safetensors("model.safetensors", model, xrnn::weight_convention::torch, {"embedding", "lstm", "fc"});
//   xrnn::save_safetensors("out.safetensors", model, xrnn::weight_convention::torch, {"embedding", "lstm", "fc"});
//
// The file format, the checks every file passes when it is read, and the dtypes read and written (F32, F64, F16,
// BF16 in; the model's F32 or F64 out): io/safetensors_format.hpp (parse_safetensors, safetensors_values).
//
// Names and layouts (layers/external_tensors.hpp, and each layer's export_tensors): each layer with weights has a
// prefix, by default its name ("embedding", "lstm", "gru", "rnn", "dense"; a repeated name gets "_1", "_2", ... as
// Keras names layers), or the ones you give (one per layer with weights, in order).
//   torch: Embedding weight (V, D); Linear weight (Out, In), bias (Out); RNN/LSTM/GRU weight_ih_l{k} (G, In),
//          weight_hh_l{k} (G, H), bias_ih_l{k}, bias_hh_l{k} (G), gates in PyTorch's order (LSTM i,f,g,o; GRU r,z,n).
//   keras: Embedding embeddings (V, D); Dense kernel (In, Out), bias (Out); SimpleRNN/LSTM/GRU kernel (In, G),
//          recurrent_kernel (H, G), bias (G), or (2, 3H) for GRU(reset_after=True); gates in Keras's order
//          (LSTM i,f,c,o; GRU z,r,h); a stack of L layers is L Keras layers named prefix, prefix_1, ...
//
// Biases. Our recurrent layers keep one bias where the cell sums two (b = bias_ih + bias_hh; for the GRU all but
// b_in and b_hn). Loading PyTorch's weights gives the same outputs. Training on from them follows a slightly
// different path than PyTorch would: the gradient of the two biases is the same, so SGD moves their sum by twice
// the step PyTorch's two would, and Adam, which is not linear, moves it differently again. Saving writes each
// summed column in bias_ih and a zero in bias_hh (same outputs); the GRU's b_hn goes to bias_hh.
//
// Loading is all or nothing: the file is parsed and every tensor checked (names, shapes, dtypes, values in range)
// before the model is touched. When the file does not fit the model, the io_error lists the missing tensors, the
// extra ones, and each shape or dtype that differs, with the expected and the found.
#ifndef XRNN_IO_SAFETENSORS_HPP
#define XRNN_IO_SAFETENSORS_HPP

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/io/safetensors_format.hpp>
#include <xrnn/layers/external_tensors.hpp>
#include <xrnn/layers/layer_traits.hpp>

namespace xrnn
{
    namespace io
    {
        template <class L, class T, class = void>
        struct has_external_tensors : std::false_type
        {
        };
        template <class L, class T>
        struct has_external_tensors<
            L, T,
            std::void_t<decltype(std::declval<L&>().export_tensors(weight_convention::torch, std::string(),
                                                                   std::declval<std::vector<external_tensor<T>>&>())),
                        decltype(std::declval<L&>().import_tensors(weight_convention::torch, std::string(),
                                                                   std::declval<const external_lookup<T>&>()))>>
            : std::true_type
        {
        };

        template <class M, class = void>
        struct is_sequential_model : std::false_type
        {
        };
        template <class M>
        struct is_sequential_model<
            M, std::void_t<decltype(M::layer_count), decltype(std::declval<M&>().template layer<0>())>>
            : std::true_type
        {
        };

        /// Calls f(index, layer) for every layer of a sequential model, or f(0, model) for a single layer.
        template <class Model, class F, std::size_t... K>
        void visit_model_layers(Model& model, F&& f, std::index_sequence<K...>)
        {
            (f(K, model.template layer<K>()), ...);
        }

        template <class Model, class F>
        void visit_model_layers(Model& model, F&& f)
        {
            if constexpr (is_sequential_model<Model>::value)
            {
                visit_model_layers(model, f, std::make_index_sequence<Model::layer_count>{});
            }
            else
            {
                f(std::size_t(0), model);
            }
        }

        /// The layers with weights, each with its prefix and its tensors now; io_error for a layer with weights and
        /// no mapping, or prefixes that do not fit.
        template <class Model>
        std::vector<std::pair<std::string, std::vector<external_tensor<typename Model::value_type>>>> external_layers(
            Model& model, weight_convention c, const std::vector<std::string>& prefixes, const char* where)
        {
            using T = typename Model::value_type;
            std::vector<std::pair<std::string, std::vector<external_tensor<T>>>> layers;
            std::map<std::string, std::size_t> seen;
            std::vector<std::string> names;
            visit_model_layers(model, [&](std::size_t k, auto& layer) {
                using L = std::decay_t<decltype(layer)>;
                std::size_t values = 0;
                layer.for_each_parameter([&](const auto&, auto& value, auto&) { values += value.size(); });
                if (values == 0)
                {
                    return;
                }
                if constexpr (has_external_tensors<L, T>::value)
                {
                    std::string prefix;
                    if (prefixes.empty())
                    {
                        const std::size_t n = seen[L::name()]++;
                        prefix = std::string(L::name()) + (n == 0 ? "" : "_" + std::to_string(n));
                    }
                    else if (layers.size() < prefixes.size())
                    {
                        prefix = prefixes[layers.size()];
                    }
                    names.push_back(L::name());
                    layers.emplace_back(prefix, std::vector<external_tensor<T>>());
                    layer.export_tensors(c, prefix, layers.back().second);
                }
                else
                {
                    throw io_error(std::string(where) + ": layer " + std::to_string(k) + " (" + L::name()
                                   + ") has weights but no " + convention_name(c)
                                   + " mapping (export_tensors/import_tensors, layers/external_tensors.hpp)");
                }
            });
            if (!prefixes.empty() && prefixes.size() != layers.size())
            {
                std::string list;
                for (const auto& n : names)
                {
                    list += (list.empty() ? "" : ", ") + n;
                }
                throw io_error(std::string(where) + ": " + std::to_string(prefixes.size())
                               + " name prefixes for the model's " + std::to_string(layers.size())
                               + " layers with weights (" + list + ")");
            }
            return layers;
        }

        template <class T>
        std::vector<std::uint64_t> shape_u64(const std::vector<std::size_t>& shape)
        {
            return std::vector<std::uint64_t>(shape.begin(), shape.end());
        }

        /// Checks a parsed file against a model and, only when everything fits, sets its weights.
        template <class Model>
        void load_safetensors_view(const safetensors_view& view, Model& model, weight_convention c,
                                   const std::vector<std::string>& prefixes)
        {
            using T = typename Model::value_type;
            auto layers = external_layers(model, c, prefixes, "load_safetensors");
            std::vector<std::string> missing, different;
            std::set<std::string> expected;
            std::map<std::string, std::vector<T>> values;
            for (const auto& layer : layers)
            {
                for (const auto& t : layer.second)
                {
                    if (!expected.insert(t.name).second)
                    {
                        throw io_error("load_safetensors: two layers would read the tensor \"" + t.name
                                       + "\" (give each layer with weights its own prefix)");
                    }
                    const safetensors_entry* found = view.find(t.name);
                    if (found == nullptr)
                    {
                        missing.push_back(t.name + " " + shape_string(shape_u64<T>(t.shape)));
                        continue;
                    }
                    const bool shape_ok = found->shape == shape_u64<T>(t.shape);
                    const bool dtype_ok = safetensors_dtype_readable(found->dtype);
                    if (!shape_ok || !dtype_ok)
                    {
                        different.push_back(t.name + ": expected " + shape_string(shape_u64<T>(t.shape))
                                            + " F32/F64/F16/BF16, found " + shape_string(found->shape) + " "
                                            + found->dtype);
                    }
                }
            }
            std::vector<std::string> extra;
            for (const auto& t : view.tensors)
            {
                if (expected.count(t.name) == 0)
                {
                    extra.push_back(t.name + " " + shape_string(t.shape) + " " + t.dtype);
                }
            }
            if (!missing.empty() || !extra.empty() || !different.empty())
            {
                std::string text = "load_safetensors: '" + view.source + "' does not fit this model ("
                                   + convention_name(c) + " names); the model is unchanged";
                auto list = [&](const char* what, const std::vector<std::string>& items) {
                    for (const auto& item : items)
                    {
                        text += std::string("\n  ") + what + item;
                    }
                };
                list("missing: ", missing);
                list("extra: ", extra);
                list("differs: ", different);
                throw io_error(text);
            }
            for (const auto& name : expected)
            {
                values[name] = safetensors_values<T>(view, *view.find(name));
            }
            const external_lookup<T> get = [&](const std::string& name) -> const T* { return values.at(name).data(); };
            std::size_t index = 0;
            visit_model_layers(model, [&](std::size_t, auto& layer) {
                using L = std::decay_t<decltype(layer)>;
                if constexpr (has_external_tensors<L, T>::value)
                {
                    std::size_t count = 0;
                    layer.for_each_parameter([&](const auto&, auto& value, auto&) { count += value.size(); });
                    if (count != 0)
                    {
                        layer.import_tensors(c, layers[index++].first, get);
                    }
                }
            });
        }
    }  // namespace io

    /// The bytes save_safetensors writes. Metadata: "format" ("pt" for torch), "xrnn.signature", "xrnn.convention".
    template <class Model>
    std::string save_safetensors_to_bytes(Model& model, weight_convention c = weight_convention::torch,
                                          const std::vector<std::string>& prefixes = {})
    {
        using T = typename Model::value_type;
        std::vector<external_tensor<T>> all;
        for (auto& layer : io::external_layers(model, c, prefixes, "save_safetensors"))
        {
            for (auto& t : layer.second)
            {
                all.push_back(std::move(t));
            }
        }
        std::map<std::string, std::string> metadata{{"xrnn.signature", Model::signature()},
                                                    {"xrnn.convention", convention_name(c)}};
        if (c == weight_convention::torch)
        {
            metadata["format"] = "pt";
        }
        return io::safetensors_bytes(all, metadata);
    }

    /// Saves a model's weights in PyTorch's or Keras's names and layouts, atomically.
    template <class Model>
    void save_safetensors(const std::string& path, Model& model, weight_convention c = weight_convention::torch,
                          const std::vector<std::string>& prefixes = {})
    {
        io::atomic_write_file(path, save_safetensors_to_bytes(model, c, prefixes), "safetensors");
    }

    /// Loads weights named and laid out as convention c has them; all or nothing.
    template <class Model>
    void load_safetensors_from_bytes(const std::string& bytes, Model& model,
                                     weight_convention c = weight_convention::torch,
                                     const std::vector<std::string>& prefixes = {},
                                     const std::string& source = "safetensors in memory")
    {
        const io::safetensors_view view = io::parse_safetensors(bytes, source);
        io::load_safetensors_view(view, model, c, prefixes);
    }

    template <class Model>
    void load_safetensors(const std::string& path, Model& model, weight_convention c = weight_convention::torch,
                          const std::vector<std::string>& prefixes = {})
    {
        const std::string bytes = io::read_file(path, std::numeric_limits<std::size_t>::max(), "safetensors");
        load_safetensors_from_bytes(bytes, model, c, prefixes, path);
    }

    /// The __metadata__ of a safetensors file (e.g. "xrnn.signature" of a file this library wrote).
    inline std::map<std::string, std::string> safetensors_metadata(const std::string& path)
    {
        const std::string bytes = io::read_file(path, std::numeric_limits<std::size_t>::max(), "safetensors");
        return io::parse_safetensors(bytes, path).metadata;
    }
}  // namespace xrnn

#endif
