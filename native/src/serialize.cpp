#include "serialize.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"

namespace docent {
namespace {

constexpr char kMagic[8] = {'D', 'O', 'C', 'E', 'N', 'T', 'I', 'X'};

std::string os_error(const std::string& what, const std::string& path) {
    return what + " '" + path + "': " + std::strerror(errno);
}

}  // namespace

std::vector<unsigned char> seal(IndexKind kind, std::uint64_t checkpoint, Writer&& w) {
    std::vector<unsigned char>& bytes = w.bytes();
    unsigned char* header = bytes.data();
    const std::uint32_t version = kFormatVersion, kind_code = static_cast<std::uint32_t>(kind);
    const std::uint64_t payload_size = w.payload_size();
    std::memcpy(header, kMagic, sizeof(kMagic));
    std::memcpy(header + 8, &version, sizeof(version));
    std::memcpy(header + 12, &kind_code, sizeof(kind_code));
    std::memcpy(header + 16, &checkpoint, sizeof(checkpoint));
    std::memcpy(header + 24, &payload_size, sizeof(payload_size));
    const std::uint64_t sum = xxh64(bytes.data(), bytes.size());
    w.put<std::uint64_t>(sum);
    return std::move(bytes);
}

Unsealed unseal(const unsigned char* bytes, std::size_t size) {
    if (size < sizeof(kMagic) || std::memcmp(bytes, kMagic, sizeof(kMagic)) != 0)
        throw FormatError("not a Docent index: the file does not start with the DOCENTIX signature");
    if (size < kHeaderSize + kTrailerSize)
        throw FormatError("Docent index is truncated: " + std::to_string(size) + " bytes is shorter than its header");
    Reader header(bytes + sizeof(kMagic), kHeaderSize - sizeof(kMagic));
    const auto version = header.get<std::uint32_t>();
    const auto kind = header.get<std::uint32_t>();
    const auto checkpoint = header.get<std::uint64_t>();
    const auto payload_size = header.get<std::uint64_t>();
    if (version == 0 || version > kFormatVersion)
        throw FormatError("Docent index format version " + std::to_string(version) +
                          " is not supported by this build (it reads version " + std::to_string(kFormatVersion) + ")");
    if (kind < static_cast<std::uint32_t>(IndexKind::Flat) || kind > static_cast<std::uint32_t>(IndexKind::IVF))
        throw FormatError("Docent index has an unknown index kind " + std::to_string(kind));
    const std::size_t available = size - kHeaderSize - kTrailerSize;
    if (payload_size != available)
        throw FormatError("Docent index is truncated or has trailing bytes: header says " + std::to_string(payload_size) +
                          " payload bytes, the file holds " + std::to_string(available));
    std::uint64_t stored_sum;
    std::memcpy(&stored_sum, bytes + size - kTrailerSize, sizeof(stored_sum));
    if (xxh64(bytes, size - kTrailerSize) != stored_sum)
        throw FormatError("Docent index is damaged: its checksum does not match its contents");
    return {static_cast<IndexKind>(kind), checkpoint, bytes + kHeaderSize, static_cast<std::size_t>(payload_size)};
}

// Opens a file for reading and says how long it is; the caller closes the descriptor.
static int open_for_reading(const std::string& path, std::size_t& size) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(os_error("cannot open index file", path));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        throw std::runtime_error(os_error("cannot stat index file", path));
    }
    size = static_cast<std::size_t>(st.st_size);
    return fd;
}

std::vector<unsigned char> read_file(const std::string& path) {
    std::size_t size = 0;
    const int fd = open_for_reading(path, size);
    std::vector<unsigned char> bytes(size);
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ::close(fd);
            throw std::runtime_error(os_error("cannot read index file", path));
        }
        done += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return bytes;
}

MappedFile::~MappedFile() {
    if (data && size) ::munmap(const_cast<unsigned char*>(data), size);
}

std::shared_ptr<MappedFile> map_file(const std::string& path) {
    std::size_t size = 0;
    const int fd = open_for_reading(path, size);
    auto mapped = std::make_shared<MappedFile>();
    mapped->size = size;
    if (mapped->size) {
        void* p = ::mmap(nullptr, mapped->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            ::close(fd);
            mapped->size = 0;
            throw std::runtime_error(os_error("cannot memory-map index file", path));
        }
        mapped->data = static_cast<const unsigned char*>(p);
    }
    ::close(fd);
    return mapped;
}

void write_file_atomically(const std::string& path, const std::vector<unsigned char>& bytes) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(os_error("cannot create index file", tmp));
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const std::string message = os_error("cannot write index file", tmp);
            ::close(fd);
            ::unlink(tmp.c_str());
            throw std::runtime_error(message);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        const std::string message = os_error("cannot flush index file", tmp);
        ::unlink(tmp.c_str());
        throw std::runtime_error(message);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string message = os_error("cannot rename index file into place", path);
        ::unlink(tmp.c_str());
        throw std::runtime_error(message);
    }
}

}  // namespace docent
