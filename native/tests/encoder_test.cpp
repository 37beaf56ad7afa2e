// C++ tests of the int8 encoder (encoder.h), built and run under ASan/UBSan by `make sanitize`:
// a small random BERT encoded by the int8 kernels against the same model in plain float loops,
// sequence lengths that leave every kind of tail (rows in fours, keys in sixteens), and the
// checks at its boundary.
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "encoder.h"

using namespace docent;

namespace {

struct FloatLinear {
    std::vector<float> weight, bias;  // out x in, out
    std::size_t in, out;
};

struct FloatLayer {
    FloatLinear qkv, attention_out, ffn_in, ffn_out;
    LayerNormWeights attention_norm, output_norm;
};

struct Reference {
    EncoderConfig config;
    std::vector<float> words, positions, types;
    LayerNormWeights embedding_norm;
    std::vector<FloatLayer> layers;
};

std::vector<float> random(std::size_t n, float spread, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.f, spread);
    std::vector<float> v(n);
    for (auto& x : v) x = normal(rng);
    return v;
}

FloatLinear random_linear(std::size_t out, std::size_t in, std::mt19937& rng) {
    return {random(out * in, 1.f / std::sqrt(static_cast<float>(in)), rng), random(out, 0.1f, rng), in, out};
}

LayerNormWeights random_norm(std::size_t width, std::mt19937& rng) {
    auto gamma = random(width, 0.1f, rng);
    for (auto& g : gamma) g += 1.f;
    return {gamma, random(width, 0.1f, rng)};
}

void linear(const FloatLinear& l, const std::vector<float>& x, std::size_t rows, std::vector<float>& y) {
    y.assign(rows * l.out, 0.f);
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < l.out; ++j) {
            double sum = l.bias[j];
            for (std::size_t k = 0; k < l.in; ++k) sum += double(x[i * l.in + k]) * l.weight[j * l.in + k];
            y[i * l.out + j] = static_cast<float>(sum);
        }
}

void norm(std::vector<float>& x, std::size_t rows, std::size_t width, const LayerNormWeights& n, float eps) {
    for (std::size_t i = 0; i < rows; ++i) {
        double mean = 0, var = 0;
        for (std::size_t k = 0; k < width; ++k) mean += x[i * width + k];
        mean /= width;
        for (std::size_t k = 0; k < width; ++k) var += (x[i * width + k] - mean) * (x[i * width + k] - mean);
        const double rstd = 1.0 / std::sqrt(var / width + eps);
        for (std::size_t k = 0; k < width; ++k)
            x[i * width + k] = static_cast<float>((x[i * width + k] - mean) * rstd * n.gamma[k] + n.beta[k]);
    }
}

std::vector<float> encode_reference(const Reference& m, const std::vector<int32_t>& ids) {
    const std::size_t H = m.config.hidden, T = ids.size(), heads = m.config.heads, width = H / heads;
    std::vector<float> x(T * H), qkv, context(T * H), y;
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t k = 0; k < H; ++k) x[t * H + k] = m.words[ids[t] * H + k] + m.positions[t * H + k] + m.types[k];
    norm(x, T, H, m.embedding_norm, m.config.layer_norm_eps);
    for (const auto& layer : m.layers) {
        linear(layer.qkv, x, T, qkv);
        for (std::size_t h = 0; h < heads; ++h)
            for (std::size_t i = 0; i < T; ++i) {
                std::vector<double> p(T);
                double top = -1e30, total = 0;
                for (std::size_t j = 0; j < T; ++j) {
                    double s = 0;
                    for (std::size_t d = 0; d < width; ++d) s += double(qkv[i * 3 * H + h * width + d]) * qkv[j * 3 * H + H + h * width + d];
                    p[j] = s / std::sqrt(double(width));
                    top = std::max(top, p[j]);
                }
                for (auto& v : p) total += v = std::exp(v - top);
                for (std::size_t d = 0; d < width; ++d) {
                    double s = 0;
                    for (std::size_t j = 0; j < T; ++j) s += p[j] / total * qkv[j * 3 * H + 2 * H + h * width + d];
                    context[i * H + h * width + d] = static_cast<float>(s);
                }
            }
        linear(layer.attention_out, context, T, y);
        for (std::size_t k = 0; k < T * H; ++k) x[k] += y[k];
        norm(x, T, H, layer.attention_norm, m.config.layer_norm_eps);
        linear(layer.ffn_in, x, T, y);
        for (auto& v : y) v = static_cast<float>(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
        std::vector<float> z;
        linear(layer.ffn_out, y, T, z);
        for (std::size_t k = 0; k < T * H; ++k) x[k] += z[k];
        norm(x, T, H, layer.output_norm, m.config.layer_norm_eps);
    }
    std::vector<float> pooled(H, 0.f);
    double length = 0;
    for (std::size_t k = 0; k < H; ++k) {
        double s = 0;
        for (std::size_t t = 0; t < T; ++t) s += x[t * H + k];
        pooled[k] = static_cast<float>(s);
        length += s * s;
    }
    for (auto& v : pooled) v = static_cast<float>(v / std::sqrt(length));
    return pooled;
}

QuantizedLinear quantized(const FloatLinear& l) { return quantize_linear(l.weight.data(), l.bias.data(), l.out, l.in); }

void test_matches_float_reference() {
    std::mt19937 rng(7);
    Reference ref;
    ref.config = {64, 2, 128, 50, 40, 1e-12f};
    const std::size_t H = 64, I = 128;
    ref.words = random(50 * H, 1.f, rng);
    ref.positions = random(40 * H, 0.3f, rng);
    ref.types = random(2 * H, 0.1f, rng);
    ref.embedding_norm = random_norm(H, rng);
    EncoderModel model;
    model.config = ref.config;
    model.word_embeddings = ref.words;
    model.position_embeddings = ref.positions;
    model.token_type_embeddings = ref.types;
    model.embedding_norm = ref.embedding_norm;
    for (int l = 0; l < 2; ++l) {
        FloatLayer f{random_linear(3 * H, H, rng), random_linear(H, H, rng), random_linear(I, H, rng),
                     random_linear(H, I, rng), random_norm(H, rng), random_norm(H, rng)};
        model.layers.push_back({quantized(f.qkv), quantized(f.attention_out), f.attention_norm, quantized(f.ffn_in),
                                quantized(f.ffn_out), f.output_norm});
        ref.layers.push_back(f);
    }
    // Lengths 1..40 leave every tail: rows not a multiple of 4, keys not a multiple of 16.
    std::vector<int32_t> ids;
    std::vector<int64_t> offsets{0};
    std::uniform_int_distribution<int32_t> token(0, 49);
    for (std::size_t length : {1, 2, 3, 5, 16, 17, 31, 40}) {
        for (std::size_t t = 0; t < length; ++t) ids.push_back(token(rng));
        offsets.push_back(static_cast<int64_t>(ids.size()));
    }
    const std::size_t n = offsets.size() - 1;
    std::vector<float> out(n * H), again(n * H);
    encode_sequences(model, ids.data(), offsets.data(), n, out.data(), 2);
    encode_sequences(model, ids.data(), offsets.data(), n, again.data(), 1);
    CHECK(out == again);  // the same bits whatever the threads
    for (std::size_t i = 0; i < n; ++i) {
        const std::vector<int32_t> one(ids.begin() + offsets[i], ids.begin() + offsets[i + 1]);
        const auto expected = encode_reference(ref, one);
        double cosine = 0, length = 0;
        for (std::size_t k = 0; k < H; ++k) {
            cosine += double(out[i * H + k]) * expected[k];
            length += double(out[i * H + k]) * out[i * H + k];
        }
        CHECK(std::fabs(length - 1.0) < 1e-4);
        CHECK(cosine > 0.99);
        if (!(cosine > 0.99)) std::fprintf(stderr, "sequence of %zu tokens: cosine %f\n", one.size(), cosine);
    }
}

template <typename F>
bool rejects(F call) {
    try {
        call();
    } catch (const std::invalid_argument&) {
        return true;
    }
    return false;
}

void test_rejects_bad_input() {
    EncoderConfig config{64, 2, 128, 50, 40, 1e-12f};
    check_encoder_config(config);
    CHECK(rejects([&] { check_encoder_config({64, 3, 128, 50, 40, 1e-12f}); }));   // 64 / 3 heads
    CHECK(rejects([&] { check_encoder_config({48, 2, 128, 50, 40, 1e-12f}); }));   // head width 24
    CHECK(rejects([&] { check_encoder_config({64, 2, 100, 50, 40, 1e-12f}); }));   // intermediate 100
    std::vector<float> w(20 * 32, 0.f), b(20, 0.f);
    CHECK(rejects([&] { quantize_linear(w.data(), b.data(), 20, 32); }));  // 20 outputs
    EncoderModel model;
    model.config = config;
    model.word_embeddings.assign(50 * 64, 0.f);
    model.position_embeddings.assign(40 * 64, 0.f);
    model.token_type_embeddings.assign(2 * 64, 0.f);
    float out[64 * 2];
    const int32_t outside[] = {3, 50};
    const int64_t two[] = {0, 1, 2};
    CHECK(rejects([&] { encode_sequences(model, outside, two, 2, out, 1); }));
    const int32_t negative[] = {-1};
    const int64_t one[] = {0, 1};
    CHECK(rejects([&] { encode_sequences(model, negative, one, 1, out, 1); }));
    std::vector<int32_t> long_ids(41, 1);
    const int64_t too_long[] = {0, 41};
    CHECK(rejects([&] { encode_sequences(model, long_ids.data(), too_long, 1, out, 1); }));
    const int64_t empty[] = {0, 0, 1};
    CHECK(rejects([&] { encode_sequences(model, long_ids.data(), empty, 2, out, 1); }));
}

}  // namespace

int main() {
    if (!encoder_supported()) {
        std::printf("encoder_test: skipped, the AVX2 kernels cannot run here (no AVX2, or DOCENT_SIMD=generic)\n");
        return 0;
    }
    test_matches_float_reference();
    test_rejects_bad_input();
    return checks_passed("encoder_test");
}
