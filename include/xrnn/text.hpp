// xtensor-rnn: the text pipeline, opt-in (it is not part of the umbrella <xrnn/xrnn.hpp>):
//
//   #include <xrnn/xrnn.hpp>
//   #include <xrnn/text.hpp>
//
//   xrnn::vocabulary vocab = ...;  auto ids = xrnn::pad_sequences(...);  auto data = xrnn::load_imdb(options);
//
// tokenize and validate_utf8 (text/tokenizer.hpp), vocabulary with Keras's ids (text/vocabulary.hpp),
// pad_sequences (text/padding.hpp) and the aclImdb loader with its binary cache (text/imdb.hpp). With the single
// header, copy single_include/xrnn/xrnn_text.hpp beside xrnn.hpp and include it: it includes "xrnn.hpp" itself.
#ifndef XRNN_TEXT_HPP
#define XRNN_TEXT_HPP

#include <xrnn/text/tokenizer.hpp>
#include <xrnn/text/vocabulary.hpp>
#include <xrnn/text/padding.hpp>
#include <xrnn/text/imdb.hpp>

#endif
