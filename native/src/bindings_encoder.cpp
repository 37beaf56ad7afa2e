// pybind11 bindings of the int8 sentence encoder (encoder.h): the weights come in by the names a
// BERT checkpoint gives them, each checked for its shape, and encoding releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "encoder.h"
#include "parallel.h"

namespace py = pybind11;
using namespace docent;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

class WeightReader {
public:
    explicit WeightReader(const py::dict& weights) : weights_(weights) {}

    // The named tensor as floats, after checking it has `rows` x `cols` values (cols 0: a vector).
    std::vector<float> get(const std::string& name, std::size_t rows, std::size_t cols = 0) const {
        if (!weights_.contains(name)) throw std::invalid_argument("encoder weights: '" + name + "' is missing");
        const auto array = weights_[name.c_str()].cast<FloatArray>();
        const bool matches = cols == 0 ? array.ndim() == 1 && static_cast<std::size_t>(array.shape(0)) == rows
                                       : array.ndim() == 2 && static_cast<std::size_t>(array.shape(0)) == rows &&
                                             static_cast<std::size_t>(array.shape(1)) == cols;
        if (!matches) {
            std::string shape;
            for (py::ssize_t d = 0; d < array.ndim(); ++d) shape += (d ? " x " : "") + std::to_string(array.shape(d));
            throw std::invalid_argument("encoder weights: '" + name + "' is " + shape + ", expected " + std::to_string(rows) +
                                        (cols ? " x " + std::to_string(cols) : ""));
        }
        return {array.data(), array.data() + array.size()};
    }

    LayerNormWeights norm(const std::string& prefix, std::size_t width) const {
        return {get(prefix + ".weight", width), get(prefix + ".bias", width)};
    }

    QuantizedLinear linear(const std::string& prefix, std::size_t out, std::size_t in) const {
        const auto weight = get(prefix + ".weight", out, in);
        const auto bias = get(prefix + ".bias", out);
        return quantize_linear(weight.data(), bias.data(), out, in);
    }

private:
    const py::dict& weights_;
};

std::shared_ptr<EncoderModel> build(const EncoderConfig& config, std::size_t layers, const py::dict& weights) {
    check_encoder_config(config);
    if (layers == 0) throw std::invalid_argument("encoder: it needs at least one layer");
    const WeightReader read(weights);
    const std::size_t H = config.hidden, I = config.intermediate;
    auto model = std::make_shared<EncoderModel>();
    model->config = config;
    model->word_embeddings = read.get("embeddings.word_embeddings.weight", config.vocab, H);
    model->position_embeddings = read.get("embeddings.position_embeddings.weight", config.max_positions, H);
    model->token_type_embeddings = read.get("embeddings.token_type_embeddings.weight", 2, H);
    model->embedding_norm = read.norm("embeddings.LayerNorm", H);
    for (std::size_t i = 0; i < layers; ++i) {
        const std::string p = "encoder.layer." + std::to_string(i) + ".";
        // Query, key and value stacked into one product.
        std::vector<float> qkv_weight, qkv_bias;
        for (const char* part : {"query", "key", "value"}) {
            const auto w = read.get(p + "attention.self." + part + ".weight", H, H);
            const auto b = read.get(p + "attention.self." + part + ".bias", H);
            qkv_weight.insert(qkv_weight.end(), w.begin(), w.end());
            qkv_bias.insert(qkv_bias.end(), b.begin(), b.end());
        }
        EncoderLayer layer;
        layer.qkv = quantize_linear(qkv_weight.data(), qkv_bias.data(), 3 * H, H);
        layer.attention_out = read.linear(p + "attention.output.dense", H, H);
        layer.attention_norm = read.norm(p + "attention.output.LayerNorm", H);
        layer.ffn_in = read.linear(p + "intermediate.dense", I, H);
        layer.ffn_out = read.linear(p + "output.dense", H, I);
        layer.output_norm = read.norm(p + "output.LayerNorm", H);
        model->layers.push_back(std::move(layer));
    }
    return model;
}

}  // namespace

void bind_encoder(py::module_& m) {
    m.def("encoder_supported", &encoder_supported, "Whether the int8 encoder can run here (AVX2 and FMA, not DOCENT_SIMD=generic).");
    py::class_<EncoderModel, std::shared_ptr<EncoderModel>>(m, "Int8Encoder",
        "A BERT-style sentence encoder with int8 products (mean pooling, unit length); see encoder.h.")
        .def(py::init([](std::size_t hidden, std::size_t heads, std::size_t intermediate, std::size_t layers, std::size_t vocab,
                         std::size_t max_positions, float layer_norm_eps, const py::dict& weights) {
                 EncoderConfig config{hidden, heads, intermediate, vocab, max_positions, layer_norm_eps};
                 return build(config, layers, weights);
             }),
             py::kw_only(), py::arg("hidden"), py::arg("heads"), py::arg("intermediate"), py::arg("layers"), py::arg("vocab"),
             py::arg("max_positions"), py::arg("layer_norm_eps"), py::arg("weights"))
        .def_property_readonly("dim", [](const EncoderModel& m) { return m.config.hidden; })
        .def_property_readonly("max_positions", [](const EncoderModel& m) { return m.config.max_positions; })
        .def("encode", [](const EncoderModel& model, const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& ids,
                          const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& offsets, unsigned threads) {
                 if (ids.ndim() != 1 || offsets.ndim() != 1) throw std::invalid_argument("ids and offsets must be 1-D arrays");
                 if (offsets.size() < 1) throw std::invalid_argument("offsets must hold at least one value (0)");
                 const std::size_t n = static_cast<std::size_t>(offsets.size() - 1);
                 const int64_t* o = offsets.data();
                 if (o[0] != 0 || o[n] != static_cast<int64_t>(ids.size()))
                     throw std::invalid_argument("offsets must run from 0 to the number of ids (" + std::to_string(ids.size()) + ")");
                 py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(model.config.hidden)});
                 float* result = out.mutable_data();
                 {
                     py::gil_scoped_release release;
                     encode_sequences(model, ids.data(), o, n, result, threads ? threads : default_threads());
                 }
                 return out;
             },
             py::arg("ids"), py::arg("offsets"), py::arg("threads") = 0,
             "Vectors (n, dim) of n token sequences: ids concatenated, sequence i is ids[offsets[i]:offsets[i+1]].");
}
