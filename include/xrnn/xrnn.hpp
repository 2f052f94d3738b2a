// xtensor-rnn: compile-time-sized RNN and LSTM layers with hand-derived backpropagation through time.
// The umbrella header: include this one file (from include/ or from single_include/) to get the whole library
// but the text pipeline.
// It is also the input of tools/amalgamate.py, which generates single_include/xrnn/xrnn.hpp. The text pipeline
// (tokenizer, vocabulary, padding, the IMDB loader) is opt-in: #include <xrnn/text.hpp> as well (single header:
// single_include/xrnn/xrnn_text.hpp).
#ifndef XRNN_XRNN_HPP
#define XRNN_XRNN_HPP

#include <xrnn/config.hpp>
#include <xrnn/random.hpp>
#include <xrnn/threads.hpp>
#include <xrnn/detail/blas.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/init.hpp>
#include <xrnn/precision.hpp>
#include <xrnn/layers/activations.hpp>
#include <xrnn/layers/dropout.hpp>
#include <xrnn/layers/embedding.hpp>
#include <xrnn/layers/dense.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/layers/recurrent_params.hpp>
#include <xrnn/layers/recurrent_cell.hpp>
#include <xrnn/layers/rnn_cell.hpp>
#include <xrnn/layers/lstm_cell.hpp>
#include <xrnn/layers/gru_cell.hpp>
#include <xrnn/layers/recurrent_stack.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/gru.hpp>
#include <xrnn/layers/bidirectional.hpp>
#include <xrnn/layers/pooling.hpp>
#include <xrnn/connect.hpp>
#include <xrnn/loss.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/model.hpp>

#endif
