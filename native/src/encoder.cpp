#include "encoder.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "parallel.h"
#include "simd_dispatch.h"

namespace docent {

QuantizedLinear quantize_linear(const float* weight, const float* bias, std::size_t out, std::size_t in) {
    if (out % QuantizedLinear::BLOCK != 0 || in % 32 != 0)
        throw std::invalid_argument("a quantized linear layer needs outputs in multiples of 16 and inputs in "
                                    "multiples of 32, got " + std::to_string(out) + " x " + std::to_string(in));
    QuantizedLinear layer;
    layer.in = in;
    layer.out = out;
    layer.scale.resize(out);
    layer.weight_sum.resize(out);
    layer.bias.assign(bias, bias + out);
    std::vector<int8_t> q(out * in);
    for (std::size_t j = 0; j < out; ++j) {
        const float* row = weight + j * in;
        float largest = 0.f;
        for (std::size_t k = 0; k < in; ++k) largest = std::max(largest, std::fabs(row[k]));
        const float scale = largest > 0.f ? largest / QuantizedLinear::QUANT_MAX : 1.f;
        int sum = 0;
        for (std::size_t k = 0; k < in; ++k) {
            const int v = static_cast<int>(std::lround(row[k] / scale));
            q[j * in + k] = static_cast<int8_t>(std::clamp(v, -QuantizedLinear::QUANT_MAX, QuantizedLinear::QUANT_MAX));
            sum += q[j * in + k];
        }
        layer.scale[j] = scale;
        layer.weight_sum[j] = static_cast<float>(sum);
    }
    // [output block][input group of 4][BLOCK outputs][4 inputs]
    constexpr std::size_t B = QuantizedLinear::BLOCK;
    layer.packed.resize(out * in);
    int8_t* p = layer.packed.data();
    for (std::size_t block = 0; block < out; block += B)
        for (std::size_t k = 0; k < in; k += 4)
            for (std::size_t j = block; j < block + B; ++j)
                for (std::size_t kk = 0; kk < 4; ++kk) *p++ = q[j * in + k + kk];
    return layer;
}

void check_encoder_config(const EncoderConfig& c) {
    auto fail = [](const std::string& what) { throw std::invalid_argument("encoder: " + what); };
    if (c.hidden == 0 || c.heads == 0 || c.intermediate == 0 || c.vocab == 0 || c.max_positions == 0)
        fail("hidden size, heads, intermediate size, vocabulary and positions must all be positive");
    if (c.hidden % c.heads != 0) fail("the hidden size must divide into the heads");
    if ((c.hidden / c.heads) % 16 != 0) fail("the head width must be a multiple of 16, got " + std::to_string(c.hidden / c.heads));
    if (c.hidden % 32 != 0) fail("the hidden size must be a multiple of 32, got " + std::to_string(c.hidden));
    if (c.intermediate % 32 != 0) fail("the intermediate size must be a multiple of 32, got " + std::to_string(c.intermediate));
    if (!(c.layer_norm_eps > 0.f)) fail("the layer norm epsilon must be positive");
}

bool encoder_supported() {
#if defined(DOCENT_X86_KERNELS)
    // The AVX2 kernels, unless the CPU lacks them or DOCENT_SIMD / set_simd_level chose generic.
    return std::string(active_kernels().name) != "generic";
#else
    return false;
#endif
}

void encode_sequences(const EncoderModel& model, const int32_t* ids, const int64_t* offsets, std::size_t n,
                      float* out, unsigned threads) {
    if (!encoder_supported()) throw std::invalid_argument("the int8 encoder needs a CPU with AVX2 and FMA");
    const auto& c = model.config;
    for (std::size_t i = 0; i < n; ++i) {
        const int64_t length = offsets[i + 1] - offsets[i];
        if (offsets[i] < 0 || length <= 0)
            throw std::invalid_argument("sequence " + std::to_string(i) + " is empty or its offsets decrease");
        if (static_cast<std::size_t>(length) > c.max_positions)
            throw std::invalid_argument("sequence " + std::to_string(i) + " has " + std::to_string(length) +
                                        " tokens, more than the model's " + std::to_string(c.max_positions));
        for (int64_t t = offsets[i]; t < offsets[i + 1]; ++t)
            if (ids[t] < 0 || static_cast<std::size_t>(ids[t]) >= c.vocab)
                throw std::invalid_argument("token id " + std::to_string(ids[t]) + " in sequence " + std::to_string(i) +
                                            " is outside the vocabulary of " + std::to_string(c.vocab));
    }
    // Longest first, handed out one at a time: the threads finish together.
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return offsets[a + 1] - offsets[a] > offsets[b + 1] - offsets[b];
    });
    parallel_dynamic(n, threads, 1, [&](std::size_t begin, std::size_t end) {
        for (std::size_t r = begin; r < end; ++r) {
            const std::size_t i = order[r];
#if defined(DOCENT_X86_KERNELS)
            encoder_avx2::encode_one(model, ids + offsets[i], static_cast<std::size_t>(offsets[i + 1] - offsets[i]),
                                     out + i * c.hidden);
#endif
        }
    });
}

}  // namespace docent
