#include "vector_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "errors.h"
#include "simd_dispatch.h"

namespace docent {

Metric parse_metric(const std::string& name) {
    if (name == "ip" || name == "inner_product") return Metric::InnerProduct;
    if (name == "l2") return Metric::L2;
    if (name == "cosine" || name == "cos") return Metric::Cosine;
    throw ArgumentError("unknown metric '" + name + "': use 'ip', 'l2' or 'cosine'");
}

std::string metric_name(Metric metric) {
    switch (metric) {
        case Metric::InnerProduct: return "ip";
        case Metric::L2: return "l2";
        case Metric::Cosine: return "cosine";
    }
    return "?";
}

Storage parse_storage(const std::string& name) {
    if (name == "f32" || name == "fp32" || name == "Flat") return Storage::F32;
    if (name == "f16" || name == "fp16" || name == "SQfp16") return Storage::F16;
    if (name == "sq8" || name == "int8" || name == "SQ8") return Storage::SQ8;
    throw ArgumentError("unknown vector storage '" + name + "': use 'f32', 'f16' or 'sq8'");
}

std::string storage_name(Storage storage) {
    switch (storage) {
        case Storage::F32: return "f32";
        case Storage::F16: return "f16";
        case Storage::SQ8: return "sq8";
    }
    return "?";
}

namespace {
constexpr std::size_t kSq8Header = 3 * sizeof(float);

float load_float(const unsigned char* p) {
    float f;
    std::memcpy(&f, p, sizeof f);
    return f;
}
}  // namespace

VectorCodec::VectorCodec(std::size_t dim, Metric metric, Storage storage) : dim_(dim), metric_(metric), storage_(storage) {
    switch (storage) {
        case Storage::F32: code_size_ = dim * sizeof(float); break;
        case Storage::F16: code_size_ = dim * sizeof(std::uint16_t); break;
        case Storage::SQ8: code_size_ = kSq8Header + dim; break;
        default: throw ArgumentError("unknown vector storage code " + std::to_string(static_cast<unsigned>(storage)));
    }
}

void VectorCodec::encode(const float* v, unsigned char* code) const {
    switch (storage_) {
        case Storage::F32: std::memcpy(code, v, dim_ * sizeof(float)); return;
        case Storage::F16: {
            for (std::size_t i = 0; i < dim_; ++i) {
                const std::uint16_t h = float_to_half(v[i]);
                std::memcpy(code + 2 * i, &h, 2);
            }
            return;
        }
        case Storage::SQ8: {
            const auto [lo, hi] = std::minmax_element(v, v + dim_);
            const float offset = *lo, scale = *hi > *lo ? (*hi - *lo) / 255.0f : 1.0f;
            float norm2 = 0;
            for (std::size_t i = 0; i < dim_; ++i) {
                const float level = std::nearbyint((v[i] - offset) / scale);
                const auto byte = static_cast<unsigned char>(std::clamp(level, 0.0f, 255.0f));
                code[kSq8Header + i] = byte;
                const float x = offset + scale * byte;
                norm2 += x * x;
            }
            std::memcpy(code, &scale, 4);
            std::memcpy(code + 4, &offset, 4);
            std::memcpy(code + 8, &norm2, 4);
            return;
        }
    }
}

void VectorCodec::decode(const unsigned char* code, float* v) const {
    switch (storage_) {
        case Storage::F32: std::memcpy(v, code, dim_ * sizeof(float)); return;
        case Storage::F16:
            for (std::size_t i = 0; i < dim_; ++i) {
                std::uint16_t h;
                std::memcpy(&h, code + 2 * i, 2);
                v[i] = half_to_float(h);
            }
            return;
        case Storage::SQ8: {
            const float scale = load_float(code), offset = load_float(code + 4);
            for (std::size_t i = 0; i < dim_; ++i) v[i] = offset + scale * code[kSq8Header + i];
            return;
        }
    }
}

VectorCodec::Query VectorCodec::prepare(const float* v) const {
    Query q{v, 0, 0};
    if (storage_ == Storage::SQ8) {
        for (std::size_t i = 0; i < dim_; ++i) {
            q.sum += v[i];
            q.norm2 += v[i] * v[i];
        }
    }
    return q;
}

float VectorCodec::distance(const Query& q, const unsigned char* code) const {
    const Kernels& k = active_kernels();
    const bool l2 = metric_ == Metric::L2;
    switch (storage_) {
        case Storage::F32: {
            const auto* x = reinterpret_cast<const float*>(code);
            return l2 ? k.l2_squared(q.vector, x, dim_) : -k.inner_product(q.vector, x, dim_);
        }
        case Storage::F16: {
            const auto* x = reinterpret_cast<const unsigned short*>(code);
            return l2 ? k.l2_squared_f16(q.vector, x, dim_) : -k.inner_product_f16(q.vector, x, dim_);
        }
        case Storage::SQ8: {
            const float ip = load_float(code + 4) * q.sum + load_float(code) * k.dot_u8(q.vector, code + kSq8Header, dim_);
            return l2 ? q.norm2 - 2 * ip + load_float(code + 8) : -ip;
        }
    }
    return 0;
}

float VectorCodec::distance(const float* a, const float* b) const {
    const Kernels& k = active_kernels();
    return metric_ == Metric::L2 ? k.l2_squared(a, b, dim_) : -k.inner_product(a, b, dim_);
}

RangeResult flatten_range(const std::vector<std::vector<std::pair<float, std::int64_t>>>& per_query, Metric metric) {
    RangeResult result;
    result.lims.push_back(0);
    for (const auto& hits : per_query) {
        for (const auto& [distance, id] : hits) {
            result.distances.push_back(public_distance(metric, distance));
            result.ids.push_back(id);
        }
        result.lims.push_back(result.ids.size());
    }
    return result;
}

void check_finite(const float* values, std::size_t count, const char* what) {
    for (std::size_t i = 0; i < count; ++i)
        if (!std::isfinite(values[i]))
            throw ArgumentError(std::string(what) + " contain NaN or infinite values (first at flat position " +
                                std::to_string(i) + ")");
}

void normalize_rows(float* values, std::size_t count, std::size_t dim, const char* what) {
    const auto& k = active_kernels();
    for (std::size_t r = 0; r < count; ++r) {
        float* row = values + r * dim;
        const float norm = std::sqrt(k.inner_product(row, row, dim));
        if (!(norm > 0))
            throw ArgumentError(std::string(what) + " row " + std::to_string(r) +
                                " has zero length and no direction, so cosine is undefined for it");
        const float inv = 1.0f / norm;
        for (std::size_t j = 0; j < dim; ++j) row[j] *= inv;
    }
}

std::vector<float> prepare_vectors(const float* vectors, std::size_t n, std::size_t dim, Metric metric, const char* what) {
    check_finite(vectors, n * dim, what);
    std::vector<float> out(vectors, vectors + n * dim);
    if (metric == Metric::Cosine) normalize_rows(out.data(), n, dim, what);
    return out;
}

}  // namespace docent
