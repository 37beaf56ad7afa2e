// The one file format of every index kind:
//
//   offset  size  field
//   0       8     magic "DOCENTIX"
//   8       4     format version (uint32, currently 1)
//   12      4     index kind (uint32: 1 flat, 2 bm25)
//   16      8     checkpoint (uint64: the database change the index reflects, set by the caller)
//   24      8     payload size in bytes (uint64)
//   32      n     payload (kind-specific, little-endian)
//   32+n    8     XXH64 of bytes [0, 32+n)
//
// Readers check magic, version, sizes and checksum before looking at the payload, and every
// payload read is bounds-checked, so a damaged file becomes a FormatError, never a crash.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "errors.h"

namespace docent {

enum class IndexKind : std::uint32_t { Flat = 1, BM25 = 2, HNSW = 3, IVF = 4 };

constexpr std::uint32_t kFormatVersion = 1;
constexpr std::size_t kHeaderSize = 32;
constexpr std::size_t kTrailerSize = 8;

// Builds a whole index file in one buffer: the header's bytes are kept free at the start and
// filled in by seal(), so the payload is never copied (at a million chunks a copy is gigabytes).
class Writer {
public:
    Writer() : bytes_(kHeaderSize, 0) {}
    // Room for this many payload bytes (and the trailer) at once: growing a buffer of gigabytes
    // step by step holds the old and the new one together at each step.
    void reserve(std::size_t payload_bytes) { bytes_.reserve(kHeaderSize + payload_bytes + kTrailerSize); }
    template <typename T>
    void put(const T& value) {
        static_assert(std::is_trivially_copyable_v<T>);
        append(&value, sizeof(T));
    }
    template <typename T>
    void put_array(const T* values, std::size_t count) {
        static_assert(std::is_trivially_copyable_v<T>);
        append(values, sizeof(T) * count);
    }
    void append(const void* data, std::size_t size) {
        const auto* p = static_cast<const unsigned char*>(data);
        bytes_.insert(bytes_.end(), p, p + size);
    }
    // Pads with zeros so that the next byte lands on a multiple of `alignment` in the file,
    // which lets a memory-mapped load use arrays in place.
    void align(std::size_t alignment) {
        while (bytes_.size() % alignment) bytes_.push_back(0);
    }
    std::size_t payload_size() const { return bytes_.size() - kHeaderSize; }
    std::vector<unsigned char>& bytes() { return bytes_; }

private:
    std::vector<unsigned char> bytes_;
};

class Reader {
public:
    Reader(const unsigned char* data, std::size_t size) : data_(data), size_(size) {}

    template <typename T>
    T get() {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        std::memcpy(&value, take(sizeof(T)), sizeof(T));
        return value;
    }
    // Reads `count` items; the count is checked against what is left before allocating.
    template <typename T>
    void get_array(std::vector<T>& out, std::uint64_t count) {
        static_assert(std::is_trivially_copyable_v<T>);
        if (count > remaining() / sizeof(T)) throw FormatError("index payload is truncated: an array runs past the end");
        out.resize(static_cast<std::size_t>(count));
        if (count) std::memcpy(out.data(), take(sizeof(T) * out.size()), sizeof(T) * out.size());
    }
    std::size_t remaining() const { return size_ - pos_; }
    void align(std::size_t alignment, std::size_t base) {
        while ((base + pos_) % alignment) take(1);
    }
    // A pointer to the next n bytes (in place), after checking they exist.
    const unsigned char* take(std::size_t n) {
        if (n > remaining()) throw FormatError("index payload is truncated");
        const unsigned char* p = data_ + pos_;
        pos_ += n;
        return p;
    }

private:
    const unsigned char* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

// Fills in the header and appends the checksum: the finished file's bytes.
std::vector<unsigned char> seal(IndexKind kind, std::uint64_t checkpoint, Writer&& w);

struct Unsealed {
    IndexKind kind;
    std::uint64_t checkpoint;
    const unsigned char* payload;
    std::size_t payload_size;
};

// Validates header and checksum; the result points into `bytes`.
Unsealed unseal(const unsigned char* bytes, std::size_t size);

// Whole-file I/O. write_file_atomically writes to PATH.tmp, fsyncs and renames, so a crash
// leaves either the old file or the new one, never half of one.
std::vector<unsigned char> read_file(const std::string& path);
void write_file_atomically(const std::string& path, const std::vector<unsigned char>& bytes);

// A read-only memory mapping of a whole file; unmapped when the last owner lets go.
struct MappedFile {
    const unsigned char* data = nullptr;
    std::size_t size = 0;
    MappedFile() = default;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile();
};
std::shared_ptr<MappedFile> map_file(const std::string& path);

}  // namespace docent
