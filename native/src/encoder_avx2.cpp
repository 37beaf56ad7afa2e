// The int8 encoder's forward pass with AVX2 and FMA (compiled with those flags; called only when
// the CPU has them). See encoder.h for the quantization.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "encoder.h"

namespace docent::encoder_avx2 {
namespace {

constexpr int ACTIVATION_MAX = 127;  // 7-bit activations: 4 products of 127 x 63 fit in int16

// exp for 8 floats (Cephes' polynomial), accurate to about 2 ulp over the range used here.
inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.f)));
    const __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(exponent));
}

// GELU as BERT defines it, 0.5 x (1 + erf(x / sqrt 2)); erf by Abramowitz and Stegun 7.1.26
// (absolute error under 1.5e-7).
inline __m256 gelu8(__m256 x) {
    const __m256 sign_mask = _mm256_set1_ps(-0.f);
    const __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    const __m256 a = _mm256_andnot_ps(sign_mask, z);
    // t = 1 / (1 + p a): the reciprocal estimate and one Newton step (about 23 bits), not a division.
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_fmadd_ps(a, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.f)));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    const __m256 erf_abs = _mm256_fnmadd_ps(p, exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a))), _mm256_set1_ps(1.f));
    const __m256 erf = _mm256_or_ps(erf_abs, _mm256_and_ps(sign_mask, z));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.f), erf));
}

inline float sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

inline float max8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

// Each row of x (rows x width, width a multiple of 32) to 7-bit codes: x ~= low + step * code.
void quantize_rows(const float* x, std::size_t rows, std::size_t width, uint8_t* codes, float* low, float* step) {
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (std::size_t i = 0; i < rows; ++i) {
        const float* row = x + i * width;
        __m256 lo = _mm256_loadu_ps(row), hi = lo;
        for (std::size_t k = 8; k < width; k += 8) {
            const __m256 v = _mm256_loadu_ps(row + k);
            lo = _mm256_min_ps(lo, v);
            hi = _mm256_max_ps(hi, v);
        }
        const float minimum = -max8(_mm256_sub_ps(_mm256_setzero_ps(), lo)), maximum = max8(hi);
        const float s = maximum > minimum ? (maximum - minimum) / ACTIVATION_MAX : 1.f;
        low[i] = minimum;
        step[i] = s;
        const __m256 vmin = _mm256_set1_ps(minimum), inv = _mm256_set1_ps(1.f / s);
        uint8_t* out = codes + i * width;
        for (std::size_t k = 0; k < width; k += 32) {
            __m256i q[4];
            for (int part = 0; part < 4; ++part)
                q[part] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(row + k + 8 * part), vmin), inv));
            const __m256i words = _mm256_packs_epi32(q[0], q[1]), words2 = _mm256_packs_epi32(q[2], q[3]);
            __m256i bytes = _mm256_packus_epi16(words, words2);
            bytes = _mm256_permutevar8x32_epi32(bytes, order);
            bytes = _mm256_min_epu8(bytes, _mm256_set1_epi8(ACTIVATION_MAX));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + k), bytes);
        }
    }
}

inline __m256i broadcast4(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// R rows of codes times one block of outputs (COLUMNS vectors of 8);
// y = scale * (step * sum + low * weight_sum) + bias.
// 4 rows x 2 vectors: 8 accumulators, 4 weight vectors and the temporaries fit in AVX2's 16
// registers (4 x 3 spilled accumulators, and 3 x 3 or 6 x 1 ran slower).
constexpr int COLUMNS = QuantizedLinear::BLOCK / 8;
constexpr int ROWS = 4;

template <int R>
void int8_block(const uint8_t* codes, std::size_t in, const float* low, const float* step, const QuantizedLinear& layer,
                std::size_t block, float* y, std::size_t y_stride) {
    const __m256i ones = _mm256_set1_epi16(1);
    const auto* w = reinterpret_cast<const __m256i*>(layer.packed.data() + block * in);
    __m256i acc[R][COLUMNS];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < COLUMNS; ++c) acc[r][c] = _mm256_setzero_si256();
    for (std::size_t k = 0; k < in; k += 8, w += 2 * COLUMNS) {
        __m256i w0[COLUMNS], w1[COLUMNS];
        for (int c = 0; c < COLUMNS; ++c) {
            w0[c] = _mm256_load_si256(w + c);
            w1[c] = _mm256_load_si256(w + COLUMNS + c);
        }
        for (int r = 0; r < R; ++r) {
            const __m256i a0 = broadcast4(codes + r * in + k), a1 = broadcast4(codes + r * in + k + 4);
            for (int c = 0; c < COLUMNS; ++c) {
                // Two pairs of products summed in 16 bits: |4 x 127 x 63| < 32768, never saturates.
                const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(a0, w0[c]), _mm256_maddubs_epi16(a1, w1[c]));
                acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(pairs, ones));
            }
        }
    }
    for (int c = 0; c < COLUMNS; ++c) {
        const std::size_t j = block + 8 * c;
        const __m256 scale = _mm256_loadu_ps(layer.scale.data() + j), sum = _mm256_loadu_ps(layer.weight_sum.data() + j),
                     bias = _mm256_loadu_ps(layer.bias.data() + j);
        for (int r = 0; r < R; ++r) {
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][c]), _mm256_set1_ps(step[r]));
            v = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(low[r]), sum, v), scale, bias);
            _mm256_storeu_ps(y + r * y_stride + j, v);
        }
    }
}

template <int R>
void int8_rows(const uint8_t* codes, std::size_t rows, const float* low, const float* step, const QuantizedLinear& layer,
               std::size_t block, float* y) {
    if constexpr (R > 0) {
        if (rows == R) return int8_block<R>(codes, layer.in, low, step, layer, block, y, layer.out);
        int8_rows<R - 1>(codes, rows, low, step, layer, block, y);
    }
}

struct Scratch {
    std::vector<uint8_t> codes;
    std::vector<float> low, step;
};

// y (rows x layer.out) = x (rows x layer.in) W^T + b.
void linear(const float* x, std::size_t rows, const QuantizedLinear& layer, float* y, Scratch& s) {
    s.codes.resize(rows * layer.in);
    s.low.resize(rows);
    s.step.resize(rows);
    quantize_rows(x, rows, layer.in, s.codes.data(), s.low.data(), s.step.data());
    for (std::size_t block = 0; block < layer.out; block += QuantizedLinear::BLOCK) {
        for (std::size_t i = 0; i < rows; i += ROWS) {
            const std::size_t n = std::min<std::size_t>(ROWS, rows - i);
            int8_rows<ROWS>(s.codes.data() + i * layer.in, n, &s.low[i], &s.step[i], layer, block, y + i * layer.out);
        }
    }
}

// x = LayerNorm(x + add) row by row (add may be null).
void add_and_norm(float* x, const float* add, std::size_t rows, std::size_t width, const LayerNormWeights& norm, float eps) {
    for (std::size_t i = 0; i < rows; ++i) {
        float* row = x + i * width;
        __m256 sum = _mm256_setzero_ps();
        for (std::size_t k = 0; k < width; k += 8) {
            __m256 v = _mm256_loadu_ps(row + k);
            if (add) v = _mm256_add_ps(v, _mm256_loadu_ps(add + i * width + k));
            _mm256_storeu_ps(row + k, v);
            sum = _mm256_add_ps(sum, v);
        }
        const __m256 mean = _mm256_set1_ps(sum8(sum) / static_cast<float>(width));
        __m256 squares = _mm256_setzero_ps();
        for (std::size_t k = 0; k < width; k += 8) {
            const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(row + k), mean);
            squares = _mm256_fmadd_ps(d, d, squares);
        }
        const __m256 rstd = _mm256_set1_ps(1.f / std::sqrt(sum8(squares) / static_cast<float>(width) + eps));
        for (std::size_t k = 0; k < width; k += 8) {
            const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(row + k), mean), rstd);
            _mm256_storeu_ps(row + k, _mm256_fmadd_ps(d, _mm256_loadu_ps(norm.gamma.data() + k), _mm256_loadu_ps(norm.beta.data() + k)));
        }
    }
}

// c (R x 16, stride ldc) = a (R x depth, stride lda) b (depth x 16, stride ldb), all float.
template <int R>
void float_block(const float* a, std::size_t lda, const float* b, std::size_t ldb, std::size_t depth, float* c, std::size_t ldc) {
    __m256 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (std::size_t d = 0; d < depth; ++d) {
        const __m256 b0 = _mm256_loadu_ps(b + d * ldb), b1 = _mm256_loadu_ps(b + d * ldb + 8);
        for (int r = 0; r < R; ++r) {
            const __m256 x = _mm256_broadcast_ss(a + r * lda + d);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; ++r) {
        _mm256_storeu_ps(c + r * ldc, acc[r][0]);
        _mm256_storeu_ps(c + r * ldc + 8, acc[r][1]);
    }
}

template <int R>
void float_rows(const float* a, std::size_t lda, const float* b, std::size_t ldb, std::size_t rows, std::size_t depth, float* c,
                std::size_t ldc) {
    if constexpr (R > 0) {
        if (rows == R) return float_block<R>(a, lda, b, ldb, depth, c, ldc);
        float_rows<R - 1>(a, lda, b, ldb, rows, depth, c, ldc);
    }
}

// c (rows x cols, cols a multiple of 16) = a (rows x depth) b (depth x cols), in tiles of 4 rows
// x 16 (6 rows ran slower).
void float_product(const float* a, std::size_t lda, const float* b, std::size_t ldb, std::size_t rows, std::size_t depth,
                   std::size_t cols, float* c, std::size_t ldc) {
    for (std::size_t j = 0; j < cols; j += 16)
        for (std::size_t i = 0; i < rows; i += ROWS)
            float_rows<ROWS>(a + i * lda, lda, b + j, ldb, std::min<std::size_t>(ROWS, rows - i), depth, c + i * ldc + j, ldc);
}

// One head's queries, keys and values out of the fused projection (T rows of 3H, the head's
// columns at `offset`, H and 2H + offset): queries and values as contiguous T x width blocks,
// keys transposed (width x padded) and scaled by the temperature. Contiguous copies keep the
// products in cache: rows 3H floats apart fall into a few of L1's sets and evict each other.
void gather_head(const float* qkv, std::size_t T, std::size_t H, std::size_t offset, std::size_t width, float temperature,
                 float* queries, float* keys, std::size_t padded, float* values) {
    for (std::size_t t = 0; t < T; ++t) {
        std::memcpy(queries + t * width, qkv + t * 3 * H + offset, width * sizeof(float));
        std::memcpy(values + t * width, qkv + t * 3 * H + 2 * H + offset, width * sizeof(float));
    }
    const float* k = qkv + H + offset;
    const __m256 scale = _mm256_set1_ps(temperature);
    std::size_t t = 0;
    for (; t + 8 <= T; t += 8) {
        for (std::size_t d = 0; d < width; d += 8) {  // an 8 x 8 block transposed in registers
            __m256 r[8], u[8];
            for (int i = 0; i < 8; ++i) r[i] = _mm256_mul_ps(_mm256_loadu_ps(k + (t + i) * 3 * H + d), scale);
            for (int i = 0; i < 8; i += 2) {
                u[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
                u[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 8; i += 4) {
                r[i] = _mm256_shuffle_ps(u[i], u[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
                r[i + 1] = _mm256_shuffle_ps(u[i], u[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
                r[i + 2] = _mm256_shuffle_ps(u[i + 1], u[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
                r[i + 3] = _mm256_shuffle_ps(u[i + 1], u[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
            }
            for (int i = 0; i < 4; ++i) {
                _mm256_storeu_ps(keys + (d + i) * padded + t, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
                _mm256_storeu_ps(keys + (d + i + 4) * padded + t, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
            }
        }
    }
    for (; t < T; ++t)
        for (std::size_t d = 0; d < width; ++d) keys[d * padded + t] = k[t * 3 * H + d] * temperature;
}

// exp(row[j] - max) for j < length, in place, row[length, padded) set to 0; returns 1 / their
// sum, by which the caller scales the row's product with the values (T multiplications, not T^2).
float softmax_unscaled(float* row, std::size_t length, std::size_t padded) {
    const std::size_t whole = length / 8 * 8;
    __m256 most = _mm256_set1_ps(-INFINITY);
    for (std::size_t j = 0; j < whole; j += 8) most = _mm256_max_ps(most, _mm256_loadu_ps(row + j));
    float largest = max8(most);
    for (std::size_t j = whole; j < length; ++j) largest = std::max(largest, row[j]);
    const __m256 top = _mm256_set1_ps(largest);
    __m256 sum = _mm256_setzero_ps();
    for (std::size_t j = 0; j < whole; j += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), top));
        _mm256_storeu_ps(row + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    float total = sum8(sum);
    if (whole < length) {
        alignas(32) float tail[8] = {};
        std::memcpy(tail, row + whole, (length - whole) * sizeof(float));
        const __m256 e = exp8(_mm256_sub_ps(_mm256_load_ps(tail), top));
        _mm256_store_ps(tail, e);
        for (std::size_t j = whole; j < length; ++j) total += row[j] = tail[j - whole];
    }
    std::fill(row + length, row + padded, 0.f);
    return 1.f / total;
}

}  // namespace

void encode_one(const EncoderModel& model, const int32_t* ids, std::size_t length, float* out) {
    const auto& cfg = model.config;
    const std::size_t H = cfg.hidden, T = length, I = cfg.intermediate, width = H / cfg.heads;
    const std::size_t padded = (T + 15) / 16 * 16;
    Scratch s;
    std::vector<float> x(T * H), qkv(T * 3 * H), context(T * H), y(T * std::max(H, I)), keys(width * padded, 0.f),
        queries(T * width), values(T * width), scores(T * padded), inverse_sums(T);

    for (std::size_t t = 0; t < T; ++t) {
        const float* word = model.word_embeddings.data() + static_cast<std::size_t>(ids[t]) * H;
        const float* position = model.position_embeddings.data() + t * H;
        for (std::size_t k = 0; k < H; ++k) x[t * H + k] = word[k] + position[k] + model.token_type_embeddings[k];
    }
    add_and_norm(x.data(), nullptr, T, H, model.embedding_norm, cfg.layer_norm_eps);

    const float temperature = 1.f / std::sqrt(static_cast<float>(width));
    for (const EncoderLayer& layer : model.layers) {
        linear(x.data(), T, layer.qkv, qkv.data(), s);
        for (std::size_t head = 0; head < cfg.heads; ++head) {
            gather_head(qkv.data(), T, H, head * width, width, temperature, queries.data(), keys.data(), padded, values.data());
            float_product(queries.data(), width, keys.data(), padded, T, width, padded, scores.data(), padded);
            for (std::size_t t = 0; t < T; ++t) inverse_sums[t] = softmax_unscaled(scores.data() + t * padded, T, padded);
            float* out = context.data() + head * width;
            float_product(scores.data(), padded, values.data(), width, T, T, width, out, H);
            for (std::size_t t = 0; t < T; ++t) {
                const __m256 inverse = _mm256_set1_ps(inverse_sums[t]);
                for (std::size_t d = 0; d < width; d += 8)
                    _mm256_storeu_ps(out + t * H + d, _mm256_mul_ps(_mm256_loadu_ps(out + t * H + d), inverse));
            }
        }
        linear(context.data(), T, layer.attention_out, y.data(), s);
        add_and_norm(x.data(), y.data(), T, H, layer.attention_norm, cfg.layer_norm_eps);
        linear(x.data(), T, layer.ffn_in, y.data(), s);
        for (std::size_t k = 0; k < T * I; k += 8) _mm256_storeu_ps(y.data() + k, gelu8(_mm256_loadu_ps(y.data() + k)));
        linear(y.data(), T, layer.ffn_out, context.data(), s);
        add_and_norm(x.data(), context.data(), T, H, layer.output_norm, cfg.layer_norm_eps);
    }

    // Mean of the token vectors, scaled to unit length.
    std::vector<double> pooled(H, 0.0);
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t k = 0; k < H; ++k) pooled[k] += x[t * H + k];
    double norm = 0.0;
    for (double v : pooled) norm += v * v;
    norm = std::max(std::sqrt(norm), 1e-12);
    for (std::size_t k = 0; k < H; ++k) out[k] = static_cast<float>(pooled[k] / norm);
}

}  // namespace docent::encoder_avx2
