// A BERT-style sentence encoder (transformer, mean pooling, unit length) with int8 matrix
// products, for CPUs without VNNI: the four linear layers of each transformer block run on
// 7-bit weights (per output channel) and 7-bit activations (per token, quantized as they are
// made), whose products AVX2 sums exactly in 16 bits; attention, layer norms and GELU stay in
// float. No calibration: every scale comes from the weights or the token at hand, so the same
// input gives the same vector on every machine with AVX2.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace docent {

struct EncoderConfig {
    std::size_t hidden = 0;        // 384 for all-MiniLM-L6-v2
    std::size_t heads = 0;         // hidden / heads is the head width
    std::size_t intermediate = 0;  // the feed-forward width
    std::size_t vocab = 0;
    std::size_t max_positions = 0;
    float layer_norm_eps = 1e-12f;
};

// Storage on 64-byte boundaries: the kernels' 32-byte loads never straddle a cache line.
template <typename T>
struct CacheLineAllocator {
    using value_type = T;
    CacheLineAllocator() = default;
    template <typename U>
    CacheLineAllocator(const CacheLineAllocator<U>&) {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
    void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
    bool operator==(const CacheLineAllocator&) const { return true; }
    bool operator!=(const CacheLineAllocator&) const { return false; }
};

// A linear layer y = x W^T + b with W quantized per output channel to [-QUANT_MAX, QUANT_MAX],
// packed for the kernels: blocks of 16 outputs, inside them groups of 4 inputs, each output's
// 4 weights together (16 x 4 bytes a group).
struct QuantizedLinear {
    static constexpr int QUANT_MAX = 63;
    static constexpr std::size_t BLOCK = 16;
    std::size_t in = 0, out = 0;
    std::vector<int8_t, CacheLineAllocator<int8_t>> packed;
    std::vector<float> scale;       // per output: W[j][k] ~= scale[j] * q[j][k]
    std::vector<float> weight_sum;  // per output: sum over k of q[j][k], for the activations' offset
    std::vector<float> bias;
};

struct LayerNormWeights {
    std::vector<float> gamma, beta;
};

struct EncoderLayer {
    QuantizedLinear qkv;       // query, key and value in one product (3 x hidden outputs)
    QuantizedLinear attention_out;
    LayerNormWeights attention_norm;
    QuantizedLinear ffn_in;    // followed by GELU
    QuantizedLinear ffn_out;
    LayerNormWeights output_norm;
};

struct EncoderModel {
    EncoderConfig config;
    std::vector<float> word_embeddings, position_embeddings, token_type_embeddings;  // row-major
    LayerNormWeights embedding_norm;
    std::vector<EncoderLayer> layers;
};

// weight (out x in, row-major, as PyTorch stores it) and bias (out) into a QuantizedLinear.
QuantizedLinear quantize_linear(const float* weight, const float* bias, std::size_t out, std::size_t in);

// Checks the shapes the kernels need; throws std::invalid_argument naming what is wrong.
void check_encoder_config(const EncoderConfig& config);

// Whether this CPU (and DOCENT_SIMD, if set) allows the encoder's AVX2 kernels.
bool encoder_supported();

// Encodes n token sequences (ids concatenated, sequence i is ids[offsets[i], offsets[i+1])) into
// out (n x hidden), each row of unit length. Sequences are spread over `threads` threads.
// Throws std::invalid_argument for an empty or too long sequence or an id outside the vocabulary.
void encode_sequences(const EncoderModel& model, const int32_t* ids, const int64_t* offsets, std::size_t n,
                      float* out, unsigned threads);

namespace encoder_avx2 {
// One sequence of `length` ids (checked by the caller) through the model, pooled, into out.
void encode_one(const EncoderModel& model, const int32_t* ids, std::size_t length, float* out);
}  // namespace encoder_avx2

}  // namespace docent
