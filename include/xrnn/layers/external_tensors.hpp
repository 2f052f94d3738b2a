// xtensor-rnn: a layer's parameters as other frameworks name and lay them out (a PyTorch state_dict, the weights of a
// Keras model), so that files of those frameworks can be read and written (io/safetensors.hpp).
//
// A layer with parameters that maps to another framework has two members, next to its other traits:
//   void export_tensors(weight_convention c, const std::string& prefix, std::vector<external_tensor<T>>& out)
//       appends its tensors, named and laid out as convention c has them (row-major values); throws io_error when
//       it has no such layout
//   void import_tensors(weight_convention c, const std::string& prefix, const external_lookup<T>& get)
//       sets its parameters from tensors of exactly the names and shapes export_tensors gives (get(name) returns
//       their row-major values; the caller has checked everything before, so this cannot fail halfway)
// Nothing outside a layer's own header lists its tensors; the recurrent layers share the generic mapping below,
// written once against the cell layout contract (recurrent_params.hpp).
//
// Names: torch "<prefix>.<name>" (state_dict keys), keras "<prefix>/<name>" (layer name / variable name).
//
// Recurrent cells. Our parameters are w_x (I, Gx), w_h (H, Gh) and one bias b (Gz), whose first Gs columns are the
// summed ones (recurrent_params.hpp). PyTorch has weight_ih (Gx, I) = w_x^T, weight_hh (Gh, H) = w_h^T and two biases
// bias_ih (Gx), bias_hh (Gh), gates in PyTorch's order (ours). Reading: b[:Gs] = bias_ih[:Gs] + bias_hh[:Gs],
// b[Gs:Gx] = bias_ih[Gs:], b[Gx:] = bias_hh[Gs:]. Writing: the summed part goes to bias_ih and bias_hh holds zeros
// there (same outputs; PyTorch then trains the two halves apart again). Keras has kernel (I, Gx) = w_x and
// recurrent_kernel (H, Gh) = w_h with the H-wide gate blocks in Keras's order (a cell's keras_blocks: Keras's block
// j is our block keras_blocks[j]), and bias (Gx) for a cell whose columns are all summed (SimpleRNN, LSTM) or
// (2, Gx) = [input bias; recurrent bias] otherwise (GRU with reset_after=True), split as for PyTorch.
// A stack of L layers is PyTorch's num_layers = L (suffix _l<k>), and L Keras layers named prefix, prefix_1, ...
#ifndef XRNN_LAYERS_EXTERNAL_TENSORS_HPP
#define XRNN_LAYERS_EXTERNAL_TENSORS_HPP

#include <algorithm>
#include <cstddef>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xrnn/config.hpp>

namespace xrnn
{
    /// Whose names and layouts: PyTorch's state_dict() or the weights of a Keras model.
    enum class weight_convention
    {
        torch,
        keras
    };

    inline const char* convention_name(weight_convention c) noexcept
    {
        return c == weight_convention::torch ? "torch" : "keras";
    }

    /// One tensor as another framework has it: its name, shape and row-major values.
    template <class T>
    struct external_tensor
    {
        std::string name;
        std::vector<std::size_t> shape;
        std::vector<T> values;
    };

    /// The row-major values of a tensor already checked to have the name and shape a layer asked for.
    template <class T>
    using external_lookup = std::function<const T*(const std::string&)>;

    namespace detail
    {
        inline std::string external_name(weight_convention c, const std::string& prefix, const std::string& name)
        {
            if (prefix.empty())
            {
                return name;
            }
            return prefix + (c == weight_convention::torch ? "." : "/") + name;
        }

        /// (rows, cols) row-major -> its transpose (cols, rows).
        template <class T>
        std::vector<T> transposed(const T* in, std::size_t rows, std::size_t cols)
        {
            std::vector<T> out(rows * cols);
            for (std::size_t r = 0; r < rows; ++r)
            {
                for (std::size_t c = 0; c < cols; ++c)
                {
                    out[c * rows + r] = in[r * cols + c];
                }
            }
            return out;
        }

        /// Moves column blocks of width `width` of a (rows, blocks * width) matrix: to_keras puts our block
        /// order[j] at j; otherwise block j goes back to order[j].
        template <class T, class Order>
        void permute_blocks(const T* in, T* out, std::size_t rows, std::size_t width, const Order& order,
                            bool to_keras)
        {
            const std::size_t blocks = order.size();
            for (std::size_t r = 0; r < rows; ++r)
            {
                for (std::size_t j = 0; j < blocks; ++j)
                {
                    const std::size_t from = to_keras ? order[j] : j;
                    const std::size_t to = to_keras ? j : order[j];
                    std::copy(in + (r * blocks + from) * width, in + (r * blocks + from + 1) * width,
                              out + (r * blocks + to) * width);
                }
            }
        }

        template <class Cell, class = void>
        struct has_keras_blocks : std::false_type
        {
        };
        template <class Cell>
        struct has_keras_blocks<Cell, std::void_t<decltype(Cell::keras_blocks)>> : std::true_type
        {
        };

        /// Names of one cell's tensors: torch "<prefix>.weight_ih_<suffix>" etc. (suffix "l0", later
        /// "l0_reverse"), keras "<prefix>/kernel" etc.
        struct cell_tensor_names
        {
            std::string input, recurrent, input_bias, recurrent_bias;  // keras: kernel, recurrent_kernel, bias, ""
        };

        inline cell_tensor_names cell_names(weight_convention c, const std::string& prefix, const std::string& suffix)
        {
            if (c == weight_convention::torch)
            {
                return {external_name(c, prefix, "weight_ih_" + suffix),
                        external_name(c, prefix, "weight_hh_" + suffix),
                        external_name(c, prefix, "bias_ih_" + suffix), external_name(c, prefix, "bias_hh_" + suffix)};
            }
            return {external_name(c, prefix, "kernel"), external_name(c, prefix, "recurrent_kernel"),
                    external_name(c, prefix, "bias"), ""};
        }

        /// The generic mapping of a recurrent cell (see the top of this file): appends its tensors to out.
        template <class Cell, class T>
        void export_cell_tensors(Cell& cell, weight_convention c, const cell_tensor_names& n,
                                 std::vector<external_tensor<T>>& out)
        {
            constexpr std::size_t I = Cell::input_size, H = Cell::hidden_size;
            constexpr std::size_t Gx = Cell::Gx, Gh = Cell::Gh, Gs = Cell::Gs, Gz = Cell::Gz;
            const T* b = cell.p.b.data();
            std::vector<T> b_ih(b, b + Gx);  // the summed columns and the input-only ones
            std::vector<T> b_hh(Gh, T(0));   // zeros where summed, then the recurrent-only columns
            std::copy(b + Gx, b + Gz, b_hh.begin() + Gs);
            if (c == weight_convention::torch)
            {
                out.push_back({n.input, {Gx, I}, transposed(cell.p.w_x.data(), I, Gx)});
                out.push_back({n.recurrent, {Gh, H}, transposed(cell.p.w_h.data(), H, Gh)});
                out.push_back({n.input_bias, {Gx}, std::move(b_ih)});
                out.push_back({n.recurrent_bias, {Gh}, std::move(b_hh)});
                return;
            }
            if constexpr (has_keras_blocks<Cell>::value)
            {
                constexpr auto order = Cell::keras_blocks;
                static_assert(order.size() * H == Gx && Gx == Gh, "xrnn: keras_blocks must cover the H-wide blocks");
                external_tensor<T> kernel{n.input, {I, Gx}, std::vector<T>(I * Gx)};
                external_tensor<T> recurrent{n.recurrent, {H, Gh}, std::vector<T>(H * Gh)};
                permute_blocks(cell.p.w_x.data(), kernel.values.data(), I, H, order, true);
                permute_blocks(cell.p.w_h.data(), recurrent.values.data(), H, H, order, true);
                external_tensor<T> bias{n.input_bias, {Gx}, std::vector<T>(Gx)};
                if constexpr (Gs == Gx)
                {
                    permute_blocks(b_ih.data(), bias.values.data(), 1, H, order, true);
                }
                else
                {
                    bias.shape = {2, Gx};
                    bias.values.resize(2 * Gx);
                    permute_blocks(b_ih.data(), bias.values.data(), 1, H, order, true);
                    permute_blocks(b_hh.data(), bias.values.data() + Gx, 1, H, order, true);
                }
                out.push_back(std::move(kernel));
                out.push_back(std::move(recurrent));
                out.push_back(std::move(bias));
            }
            else
            {
                throw io_error(std::string(Cell::layer_name) + ": no Keras layout for this cell (it declares no "
                               "keras_blocks)");
            }
        }

        /// The inverse of export_cell_tensors, from tensors checked to have its names and shapes.
        template <class Cell, class T>
        void import_cell_tensors(Cell& cell, weight_convention c, const cell_tensor_names& n,
                                 const external_lookup<T>& get)
        {
            constexpr std::size_t I = Cell::input_size, H = Cell::hidden_size;
            constexpr std::size_t Gx = Cell::Gx, Gh = Cell::Gh, Gs = Cell::Gs, Gz = Cell::Gz;
            std::vector<T> b_ih(Gx), b_hh(Gh, T(0));
            if (c == weight_convention::torch)
            {
                const auto w_x = transposed(get(n.input), Gx, I);
                const auto w_h = transposed(get(n.recurrent), Gh, H);
                std::copy(w_x.begin(), w_x.end(), cell.p.w_x.data());
                std::copy(w_h.begin(), w_h.end(), cell.p.w_h.data());
                std::copy(get(n.input_bias), get(n.input_bias) + Gx, b_ih.begin());
                std::copy(get(n.recurrent_bias), get(n.recurrent_bias) + Gh, b_hh.begin());
            }
            else if constexpr (has_keras_blocks<Cell>::value)
            {
                constexpr auto order = Cell::keras_blocks;
                permute_blocks(get(n.input), cell.p.w_x.data(), I, H, order, false);
                permute_blocks(get(n.recurrent), cell.p.w_h.data(), H, H, order, false);
                permute_blocks(get(n.input_bias), b_ih.data(), 1, H, order, false);
                if constexpr (Gs != Gx)
                {
                    permute_blocks(get(n.input_bias) + Gx, b_hh.data(), 1, H, order, false);
                }
            }
            T* b = cell.p.b.data();
            for (std::size_t j = 0; j < Gs; ++j)
            {
                b[j] = b_ih[j] + b_hh[j];
            }
            std::copy(b_ih.begin() + Gs, b_ih.end(), b + Gs);
            std::copy(b_hh.begin() + Gs, b_hh.end(), b + Gx);
            static_assert(Gx + Gh - Gs == Gz, "xrnn: cell layout widths");
        }
    }  // namespace detail
}  // namespace xrnn

#endif
