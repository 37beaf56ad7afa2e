#include "hnsw_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <queue>
#include <thread>

#include <sys/mman.h>

#include "errors.h"
#include "parallel.h"
#include "simd_dispatch.h"
#include "topk.h"

namespace docent {
namespace {

constexpr std::size_t kQueriesPerPiece = 8;  // queries a search thread takes at a time

// Slots come in chunks of 2^16; the chunk table has room for 2^12 of them (2^28 vectors).
// Chunk memory is committed by the kernel only where it is touched.
constexpr unsigned kChunkShift = 16;
constexpr std::uint32_t kChunkSlots = 1u << kChunkShift;
constexpr std::size_t kMaxChunks = 4096;
constexpr std::size_t kHeaderBytes = 16;  // int64 id, uint32 flags, uint32 link count
constexpr std::uint32_t kDeletedFlag = 1;
constexpr int kMaxLevel = 32;
constexpr std::size_t kMaxLinks0 = 512;  // 2 * the largest M
constexpr std::size_t kHeadLines = 2;
// A filter keeping at most 1/kFilterExactShare of the nodes is answered by exact search over them.
constexpr std::size_t kFilterExactShare = 20;

// Lock-free reads of link lists that a writer may be rewriting (see the header).
inline std::uint32_t load_relaxed(const std::uint32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
inline std::uint32_t load_acquire(const std::uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
inline void store_relaxed(std::uint32_t* p, std::uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
inline void store_release(std::uint32_t* p, std::uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

inline void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

class SpinGuard {
public:
    explicit SpinGuard(std::atomic<std::uint8_t>& flag) : flag_(flag) {
        while (flag_.exchange(1, std::memory_order_acquire)) {
            while (flag_.load(std::memory_order_relaxed)) std::this_thread::yield();
        }
    }
    ~SpinGuard() { flag_.store(0, std::memory_order_release); }
    SpinGuard(const SpinGuard&) = delete;
    SpinGuard& operator=(const SpinGuard&) = delete;

private:
    std::atomic<std::uint8_t>& flag_;
};

struct FurtherFirst {
    bool operator()(const std::pair<float, std::uint32_t>& a, const std::pair<float, std::uint32_t>& b) const {
        return a.first > b.first;
    }
};
struct CloserFirst {
    bool operator()(const std::pair<float, std::uint32_t>& a, const std::pair<float, std::uint32_t>& b) const {
        return a.first < b.first;
    }
};

}  // namespace

// Zeroed memory from mmap, asking the kernel for 2 MiB pages: a search touches nodes all over
// the index, and with 4 KiB pages nearly every visit would also miss the TLB. Pages are
// committed when first touched, so a chunk's unused tail costs nothing.
class PageBuffer {
public:
    PageBuffer() = default;
    explicit PageBuffer(std::size_t bytes) {
        size_ = (bytes + kHugePage - 1) / kHugePage * kHugePage;
        void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
        ::madvise(p, size_, MADV_HUGEPAGE);
#endif
        data_ = static_cast<unsigned char*>(p);
    }
    ~PageBuffer() {
        if (data_) ::munmap(data_, size_);
    }
    PageBuffer(const PageBuffer&) = delete;
    PageBuffer& operator=(const PageBuffer&) = delete;
    unsigned char* get() const { return data_; }

private:
    static constexpr std::size_t kHugePage = std::size_t{2} << 20;
    unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
};

// Per-slot data that searches rarely touch.
struct HnswIndex::Chunk {
    std::unique_ptr<PageBuffer> owned_blocks;
    std::unique_ptr<PageBuffer> owned_originals;
    float* originals = nullptr;
    std::unique_ptr<std::uint8_t[]> levels{new std::uint8_t[kChunkSlots]()};
    std::unique_ptr<std::atomic<std::uint8_t>[]> locks{new std::atomic<std::uint8_t>[kChunkSlots]()};
    std::unique_ptr<std::unique_ptr<std::uint32_t[]>[]> upper{new std::unique_ptr<std::uint32_t[]>[kChunkSlots]()};
};

// Visited marks as a bitset (100,000 nodes fit in 12.5 KiB, so the checks stay in L1). The
// words a search touched are remembered and cleared after it, so a search costs in proportion
// to what it visits, not to the size of the index.
struct HnswIndex::Visited {
    std::vector<std::uint64_t> bits;
    std::vector<std::uint32_t> touched;
    std::size_t limit = 0;  // slots that existed when the search began

    void reset(std::size_t slots) {
        for (std::uint32_t w : touched) bits[w] = 0;
        touched.clear();
        if (bits.size() * 64 < slots) bits.resize((slots + slots / 4 + 1024) / 64 + 1, 0);
        limit = slots;
    }
    // True when already visited; a slot added after this search began counts as visited.
    bool test_and_set(std::uint32_t slot) {
        if (slot >= limit) return true;
        std::uint64_t& word = bits[slot >> 6];
        const std::uint64_t bit = std::uint64_t{1} << (slot & 63);
        if (word & bit) return true;
        if (!word) touched.push_back(slot >> 6);
        word |= bit;
        return false;
    }
};

class HnswIndex::VisitedPool {
public:
    struct Lease {
        VisitedPool* pool;
        std::unique_ptr<Visited> visited;
        ~Lease() {
            std::lock_guard<std::mutex> lock(pool->mutex_);
            pool->free_.push_back(std::move(visited));
        }
        Visited* operator->() { return visited.get(); }
    };
    Lease acquire(std::size_t slots) {
        std::unique_ptr<Visited> v;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!free_.empty()) {
                v = std::move(free_.back());
                free_.pop_back();
            }
        }
        if (!v) v = std::make_unique<Visited>();
        v->reset(slots);
        return Lease{this, std::move(v)};
    }

private:
    std::mutex mutex_;
    std::vector<std::unique_ptr<Visited>> free_;
};

HnswIndex::HnswIndex(std::size_t dim, Metric metric, HnswParams params)
    : codec_(dim, metric, params.storage), params_(params) {
    if (dim == 0 || dim > 65536) throw ArgumentError("dimension must be between 1 and 65536, got " + std::to_string(dim));
    if (params.M < 2 || params.M > 256) throw ArgumentError("HNSW M must be between 2 and 256, got " + std::to_string(params.M));
    if (params.ef_construction < 1) throw ArgumentError("ef_construction must be at least 1");
    max_links0_ = 2 * params.M;
    code_offset_ = kHeaderBytes + 4 * max_links0_;
    node_bytes_ = (code_offset_ + codec_.code_size() + 7) / 8 * 8;
    level_mult_ = 1.0 / std::log(static_cast<double>(params.M));
    code_lines_ = (codec_.code_size() + 63) / 64;
    head_lines_ = std::min(kHeadLines, code_lines_);
    rng_state_ = params.seed ? params.seed : 1;
    chunk_table_.reset(new std::atomic<Chunk*>[kMaxChunks]);
    for (std::size_t i = 0; i < kMaxChunks; ++i) chunk_table_[i].store(nullptr, std::memory_order_relaxed);
    block_table_.reset(new std::atomic<unsigned char*>[kMaxChunks]);
    for (std::size_t i = 0; i < kMaxChunks; ++i) block_table_[i].store(nullptr, std::memory_order_relaxed);
    visited_ = std::make_unique<VisitedPool>();
}

HnswIndex::~HnswIndex() = default;
HnswIndex::HnswIndex(HnswIndex&& other) noexcept
    : codec_(other.codec_),
      params_(other.params_),
      max_links0_(other.max_links0_),
      node_bytes_(other.node_bytes_),
      code_offset_(other.code_offset_),
      level_mult_(other.level_mult_),
      code_lines_(other.code_lines_),
      head_lines_(other.head_lines_),
      chunk_table_(std::move(other.chunk_table_)),
      block_table_(std::move(other.block_table_)),
      chunks_(std::move(other.chunks_)),
      next_slot_(other.next_slot_),
      slots_(other.slots_.load()),
      entry_(other.entry_.load()),
      max_level_(other.max_level_.load()),
      slot_of_(std::move(other.slot_of_)),
      free_slots_(std::move(other.free_slots_)),
      rng_state_(other.rng_state_),
      visited_(std::move(other.visited_)),
      mapping_(std::move(other.mapping_)) {}

// ---- slot accessors -------------------------------------------------------------------------

unsigned char* HnswIndex::block(std::uint32_t slot) const {
    return block_table_[slot >> kChunkShift].load(std::memory_order_relaxed) + std::size_t{slot & (kChunkSlots - 1)} * node_bytes_;
}
std::int64_t HnswIndex::id_of(std::uint32_t slot) const {
    std::int64_t id;
    std::memcpy(&id, block(slot), sizeof id);
    return id;
}
std::uint32_t* HnswIndex::links(std::uint32_t slot, int level) const {
    if (level == 0) return reinterpret_cast<std::uint32_t*>(block(slot) + 12);
    Chunk* chunk = chunk_table_[slot >> kChunkShift].load(std::memory_order_relaxed);
    return chunk->upper[slot & (kChunkSlots - 1)].get() + static_cast<std::size_t>(level - 1) * (params_.M + 1);
}
const unsigned char* HnswIndex::code(std::uint32_t slot) const { return block(slot) + code_offset_; }
float* HnswIndex::original(std::uint32_t slot) const {
    Chunk* chunk = chunk_table_[slot >> kChunkShift].load(std::memory_order_relaxed);
    return chunk->originals + std::size_t{slot & (kChunkSlots - 1)} * dim();
}
int HnswIndex::level_of(std::uint32_t slot) const {
    return chunk_table_[slot >> kChunkShift].load(std::memory_order_relaxed)->levels[slot & (kChunkSlots - 1)];
}
bool HnswIndex::deleted(std::uint32_t slot) const {
    return load_acquire(reinterpret_cast<const std::uint32_t*>(block(slot) + 8)) & kDeletedFlag;
}
void HnswIndex::set_deleted(std::uint32_t slot, bool value) {
    store_release(reinterpret_cast<std::uint32_t*>(block(slot) + 8), value ? kDeletedFlag : 0);
}
std::atomic<std::uint8_t>& HnswIndex::lock_of(std::uint32_t slot) const {
    return chunk_table_[slot >> kChunkShift].load(std::memory_order_relaxed)->locks[slot & (kChunkSlots - 1)];
}

std::size_t HnswIndex::size() const {
    std::shared_lock<std::shared_mutex> lock(ids_mutex_);
    return slot_of_.size();
}

bool HnswIndex::contains(std::int64_t id) const {
    std::shared_lock<std::shared_mutex> lock(ids_mutex_);
    return slot_of_.count(id) != 0;
}

std::vector<std::int64_t> HnswIndex::ids() const {
    std::shared_lock<std::shared_mutex> lock(ids_mutex_);
    std::vector<std::int64_t> out;
    out.reserve(slot_of_.size());
    const std::uint32_t n = slots();
    for (std::uint32_t s = 0; s < n; ++s)
        if (!deleted(s)) out.push_back(id_of(s));
    return out;
}

std::vector<float> HnswIndex::reconstruct(std::int64_t id) const {
    std::shared_lock<std::shared_mutex> lock(ids_mutex_);
    auto it = slot_of_.find(id);
    if (it == slot_of_.end()) throw ArgumentError("id " + std::to_string(id) + " is not in the index");
    std::vector<float> out(dim());
    if (params_.rerank) std::memcpy(out.data(), original(it->second), dim() * sizeof(float));
    else codec_.decode(code(it->second), out.data());
    return out;
}

std::size_t HnswIndex::memory_bytes() const {
    const std::size_t n = slots();
    std::size_t upper = 0;
    for (std::uint32_t s = 0; s < n; ++s) upper += static_cast<std::size_t>(level_of(s)) * (params_.M + 1) * 4;
    // per slot: the level-0 block, level byte, lock byte, upper-links pointer; per id: a hash map node
    return n * (node_bytes_ + 2 + sizeof(void*)) + upper + (params_.rerank ? n * dim() * sizeof(float) : 0) +
           slot_of_.size() * 32;
}

void HnswIndex::check_writable() const {
    if (mapping_) throw ArgumentError("this index was loaded read-only (memory-mapped); load it without mmap to change it");
}

// ---- growth -------------------------------------------------------------------------------

void HnswIndex::ensure_slots(std::size_t count) {
    if (count > kMaxChunks * kChunkSlots) throw ArgumentError("an HNSW index holds at most 2^28 vectors");
    while (chunks_.size() * kChunkSlots < count) {
        auto chunk = std::make_unique<Chunk>();
        chunk->owned_blocks = std::make_unique<PageBuffer>(std::size_t{kChunkSlots} * node_bytes_);
        if (params_.rerank) {
            chunk->owned_originals = std::make_unique<PageBuffer>(std::size_t{kChunkSlots} * dim() * sizeof(float));
            chunk->originals = reinterpret_cast<float*>(chunk->owned_originals->get());
        }
        const std::size_t c = chunks_.size();
        block_table_[c].store(chunk->owned_blocks->get(), std::memory_order_release);
        chunk_table_[c].store(chunk.get(), std::memory_order_release);
        chunks_.push_back(std::move(chunk));
    }
}

int HnswIndex::random_level() {
    // splitmix64: a fixed seed gives the same graph for the same inserts
    std::uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const double u = (static_cast<double>(z >> 11) + 0.5) / 9007199254740992.0;
    return std::min(kMaxLevel, static_cast<int>(-std::log(u) * level_mult_));
}

// A free slot keeps its level (and its upper link arrays); a new slot draws one.
std::uint32_t HnswIndex::take_slot(int& level) {
    if (!free_slots_.empty()) {
        const std::uint32_t slot = free_slots_.back();
        free_slots_.pop_back();
        level = level_of(slot);
        return slot;
    }
    const std::uint32_t slot = next_slot_;
    ensure_slots(std::size_t{slot} + 1);
    ++next_slot_;
    level = random_level();
    Chunk* chunk = chunks_[slot >> kChunkShift].get();
    chunk->levels[slot & (kChunkSlots - 1)] = static_cast<std::uint8_t>(level);
    if (level > 0) chunk->upper[slot & (kChunkSlots - 1)].reset(new std::uint32_t[static_cast<std::size_t>(level) * (params_.M + 1)]());
    return slot;
}

void HnswIndex::add(const float* vectors, const std::int64_t* ids, std::size_t n, unsigned threads) {
    check_writable();
    for (std::size_t i = 0; i < n; ++i)
        if (ids[i] < 0) throw ArgumentError("ids must be non-negative (-1 marks 'no result'), got " + std::to_string(ids[i]));
    const std::vector<float> prepared = prepare_vectors(vectors, n, dim(), metric(), "vectors");
    std::lock_guard<std::mutex> adding(add_mutex_);

    // The last occurrence of an id in the batch wins, as if the batch were added row by row.
    // (Sorting positions keeps this to one flat allocation: a hash map of a large batch would
    // leave its many small freed nodes in the process's heap.)
    std::vector<std::size_t> rows(n);
    for (std::size_t i = 0; i < n; ++i) rows[i] = i;
    std::stable_sort(rows.begin(), rows.end(), [ids](std::size_t a, std::size_t b) { return ids[a] < ids[b]; });
    std::size_t kept = 0;
    for (std::size_t j = 0; j < n; ++j)
        if (j + 1 == n || ids[rows[j]] != ids[rows[j + 1]]) rows[kept++] = rows[j];
    rows.resize(kept);
    std::sort(rows.begin(), rows.end());

    std::vector<std::uint32_t> slot_for(rows.size());
    std::vector<int> level_for(rows.size());
    {
        std::unique_lock<std::shared_mutex> lock(ids_mutex_);
        for (std::size_t j = 0; j < rows.size(); ++j) {
            auto it = slot_of_.find(ids[rows[j]]);
            if (it != slot_of_.end()) {  // an update: the old node is retired and its slot freed
                set_deleted(it->second, true);
                free_slots_.push_back(it->second);
                slot_of_.erase(it);
            }
            slot_for[j] = take_slot(level_for[j]);
        }
    }
    // Write every node's data before any of them becomes reachable.
    for (std::size_t j = 0; j < rows.size(); ++j) {
        const std::uint32_t slot = slot_for[j];
        const float* v = prepared.data() + rows[j] * dim();
        set_deleted(slot, true);
        std::memcpy(block(slot), &ids[rows[j]], sizeof(std::int64_t));
        codec_.encode(v, block(slot) + code_offset_);
        if (params_.rerank) std::memcpy(original(slot), v, dim() * sizeof(float));
    }
    slots_.store(next_slot_, std::memory_order_release);
    {
        std::unique_lock<std::shared_mutex> lock(ids_mutex_);
        for (std::size_t j = 0; j < rows.size(); ++j) slot_of_[ids[rows[j]]] = slot_for[j];
    }
    // The first node alone, so that the parallel inserts all start from an entry point.
    std::size_t start = 0;
    if (max_level_.load() < 0 && !rows.empty()) {
        insert(slot_for[0], level_for[0], prepared.data() + rows[0] * dim());
        set_deleted(slot_for[0], false);
        start = 1;
    }
    const unsigned use_threads = rows.size() - start < 64 ? 1u : std::max(1u, threads);
    parallel_ranges(rows.size() - start, use_threads, [&](std::size_t begin, std::size_t end) {
        for (std::size_t j = start + begin; j < start + end; ++j) {
            insert(slot_for[j], level_for[j], prepared.data() + rows[j] * dim());
            set_deleted(slot_for[j], false);
        }
    });
}

std::size_t HnswIndex::remove(const std::int64_t* ids, std::size_t n) {
    check_writable();
    std::lock_guard<std::mutex> adding(add_mutex_);
    std::unique_lock<std::shared_mutex> lock(ids_mutex_);
    std::size_t removed = 0;
    for (std::size_t i = 0; i < n; ++i) {
        auto it = slot_of_.find(ids[i]);
        if (it == slot_of_.end()) continue;
        set_deleted(it->second, true);
        free_slots_.push_back(it->second);
        slot_of_.erase(it);
        ++removed;
    }
    return removed;
}

// ---- graph construction -----------------------------------------------------------------------

float HnswIndex::distance_to_slot(const float* a_vector, std::uint32_t b) const {
    if (params_.rerank) return codec_.distance(a_vector, original(b));
    return codec_.distance(codec_.prepare(a_vector), code(b));
}

void HnswIndex::insert(std::uint32_t slot, int level, const float* vector) {
    const VectorCodec::Query q = codec_.prepare(vector);
    std::unique_lock<std::mutex> top_lock(entry_mutex_, std::defer_lock);
    if (level > max_level_.load(std::memory_order_acquire)) top_lock.lock();
    const int top = max_level_.load(std::memory_order_acquire);
    if (top < 0) {
        entry_.store(slot, std::memory_order_release);
        max_level_.store(level, std::memory_order_release);
        return;
    }
    std::uint32_t entry = entry_.load(std::memory_order_acquire);
    if (level < top) entry = greedy_descent(q, entry, top, level + 1);
    // Search top-down, then link bottom-up: once the node is reachable on a level, its links on
    // every level below already exist, so a concurrent search that reaches it never dead-ends.
    const int start = std::min(level, top);
    std::vector<std::vector<Candidate>> found(static_cast<std::size_t>(start) + 1);
    for (int l = start; l >= 0; --l) {
        auto& at_level = found[static_cast<std::size_t>(l)];
        pool_search(q, entry, l, params_.ef_construction, at_level);
        at_level.erase(std::remove_if(at_level.begin(), at_level.end(), [slot](const Candidate& c) { return c.second == slot; }),
                       at_level.end());
        if (!at_level.empty()) entry = at_level.front().second;
    }
    std::vector<float> scratch(dim());
    for (int l = 0; l <= start; ++l)
        if (!found[static_cast<std::size_t>(l)].empty()) connect(slot, l, found[static_cast<std::size_t>(l)], scratch);
    if (level > top) {
        entry_.store(slot, std::memory_order_release);
        max_level_.store(level, std::memory_order_release);
    }
}

// The heuristic of the HNSW paper (and hnswlib): a candidate is kept only if it is closer to the
// new node than to every neighbour kept so far, which spreads links in all directions.
std::vector<HnswIndex::Candidate> HnswIndex::select_neighbours(std::vector<Candidate> candidates, std::size_t limit,
                                                               std::vector<float>& scratch) const {
    if (candidates.size() <= limit) return candidates;
    std::vector<Candidate> kept;
    kept.reserve(limit);
    for (const Candidate& c : candidates) {
        const float* c_vector;
        if (params_.rerank) {
            c_vector = original(c.second);
        } else if (codec_.storage() == Storage::F32) {
            c_vector = reinterpret_cast<const float*>(code(c.second));
        } else {
            codec_.decode(code(c.second), scratch.data());
            c_vector = scratch.data();
        }
        bool diverse = true;
        for (const Candidate& k : kept) {
            if (distance_to_slot(c_vector, k.second) < c.first) {
                diverse = false;
                break;
            }
        }
        if (diverse) {
            kept.push_back(c);
            if (kept.size() == limit) break;
        }
    }
    return kept;
}

void HnswIndex::connect(std::uint32_t slot, int level, std::vector<Candidate>& candidates, std::vector<float>& scratch) {
    const std::size_t cap = level == 0 ? max_links0_ : params_.M;
    const std::vector<Candidate> chosen = select_neighbours(candidates, params_.M, scratch);
    {
        SpinGuard guard(lock_of(slot));
        std::uint32_t* own = links(slot, level);
        for (std::size_t i = 0; i < chosen.size(); ++i) store_relaxed(own + 1 + i, chosen[i].second);
        store_release(own, static_cast<std::uint32_t>(chosen.size()));
    }
    std::vector<float> neighbour_vector(dim());
    for (const Candidate& c : chosen) {
        const std::uint32_t n = c.second;
        SpinGuard guard(lock_of(n));
        std::uint32_t* list = links(n, level);
        const std::uint32_t count = load_relaxed(list);
        bool present = false;
        for (std::uint32_t i = 0; i < count && !present; ++i) present = load_relaxed(list + 1 + i) == slot;
        if (present) continue;
        if (count < cap) {
            store_relaxed(list + 1 + count, slot);
            store_release(list, count + 1);
            continue;
        }
        // Full: choose the best `cap` among the old links and the new node, seen from n.
        const float* n_vector;
        if (params_.rerank) {
            n_vector = original(n);
        } else {
            codec_.decode(code(n), neighbour_vector.data());
            n_vector = neighbour_vector.data();
        }
        std::vector<Candidate> pool;
        pool.reserve(count + 1);
        pool.emplace_back(c.first, slot);
        for (std::uint32_t i = 0; i < count; ++i) {
            const std::uint32_t other = load_relaxed(list + 1 + i);
            pool.emplace_back(distance_to_slot(n_vector, other), other);
        }
        std::sort(pool.begin(), pool.end());
        const std::vector<Candidate> kept = select_neighbours(std::move(pool), cap, scratch);
        for (std::size_t i = 0; i < kept.size(); ++i) store_relaxed(list + 1 + i, kept[i].second);
        store_release(list, static_cast<std::uint32_t>(kept.size()));
    }
}

// ---- search ---------------------------------------------------------------------------------

std::uint32_t HnswIndex::greedy_descent(const VectorCodec::Query& q, std::uint32_t entry, int top_level,
                                        int bottom_level) const {
    float best = codec_.distance(q, code(entry));
    for (int level = top_level; level >= bottom_level; --level) {
        bool moved = true;
        while (moved) {
            moved = false;
            const std::uint32_t* list = links(entry, level);
            const std::uint32_t count = load_acquire(list);
            for (std::uint32_t i = 0; i < count; ++i) {
                const std::uint32_t n = load_relaxed(list + 1 + i);
                const float d = codec_.distance(q, code(n));
                if (d < best) {
                    best = d;
                    entry = n;
                    moved = true;
                }
            }
        }
    }
    return entry;
}

// Best-first search of one level. allow_bits == nullptr and level > 0 or during construction:
// every node can be a result. For queries on level 0 (`allow_bits` set, possibly to an empty
// vector meaning "no filter"), deleted and filtered-out nodes route but are not returned.
std::vector<HnswIndex::Candidate> HnswIndex::search_level(const VectorCodec::Query& q, std::uint32_t entry, int level,
                                                          std::size_t ef, const std::vector<std::uint64_t>* allow_bits) const {
    const bool query_mode = allow_bits != nullptr;
    const bool filtered = query_mode && !allow_bits->empty();
    auto eligible = [&](std::uint32_t s) {
        if (!query_mode) return true;
        if (deleted(s)) return false;
        return !filtered || ((*allow_bits)[s >> 6] >> (s & 63) & 1u);
    };
    auto visited = visited_->acquire(slots());
    std::priority_queue<Candidate, std::vector<Candidate>, FurtherFirst> frontier;  // closest on top
    std::priority_queue<Candidate, std::vector<Candidate>, CloserFirst> results;    // furthest on top
    const float d0 = codec_.distance(q, code(entry));
    visited->test_and_set(entry);
    frontier.emplace(d0, entry);
    if (eligible(entry)) results.emplace(d0, entry);
    // Without filters or deletions the beam may stop once the nearest open node is worse than the
    // worst result; otherwise it keeps going until it holds ef results.
    const bool may_skip = query_mode;
    float bound = results.empty() ? std::numeric_limits<float>::infinity() : d0;
    while (!frontier.empty()) {
        const Candidate current = frontier.top();
        if (current.first > bound && (results.size() >= ef || !may_skip)) break;
        frontier.pop();
        const std::uint32_t* list = links(current.second, level);
        const std::uint32_t count = load_acquire(list);
        if (count) prefetch(code(load_relaxed(list + 1)));
        for (std::uint32_t i = 0; i < count; ++i) {
            const std::uint32_t n = load_relaxed(list + 1 + i);
            if (i + 1 < count) prefetch(code(load_relaxed(list + 2 + i)));
            if (visited->test_and_set(n)) continue;
            const float d = codec_.distance(q, code(n));
            if (results.size() < ef || d < bound) {
                frontier.emplace(d, n);
                if (eligible(n)) {
                    results.emplace(d, n);
                    if (results.size() > ef) results.pop();
                    bound = results.top().first;
                }
            }
        }
    }
    std::vector<Candidate> out(results.size());
    for (std::size_t i = out.size(); i-- > 0;) {
        out[i] = results.top();
        results.pop();
    }
    return out;
}

// The unfiltered query path: one sorted pool of the ef best nodes seen (NSG / DiskANN style),
// cheaper than the two heaps of the general path. Neighbours of the expanded node are first
// gathered and their blocks prefetched, then scored in one pass.
template <typename Distance>
void HnswIndex::search_pool(const Distance& distance, std::uint32_t entry, int level, std::size_t ef,
                            std::vector<Candidate>& out) const {
    constexpr std::uint32_t kExpanded = 1u << 31;  // slots stay below 2^28, so the top bit is free
    auto visited = visited_->acquire(slots());
    Visited& seen = *visited.visited;
    std::vector<Candidate> pool(ef + 1);  // sorted by distance; .second = slot | kExpanded once expanded
    std::size_t size = 1;
    seen.test_and_set(entry);
    pool[0] = {distance(entry), entry};
    std::uint32_t fresh[kMaxLinks0];
    const std::uint32_t cap = static_cast<std::uint32_t>(level == 0 ? max_links0_ : params_.M);
    std::size_t next = 0;
    while (next < size) {
        const std::uint32_t current = pool[next].second;
        pool[next].second |= kExpanded;
        const std::uint32_t* list = links(current, level);
        // the node likely expanded next: start loading its link list now
        for (std::size_t ahead = next + 1; ahead < size; ++ahead)
            if (!(pool[ahead].second & kExpanded)) {
                prefetch(links(pool[ahead].second, level));
                break;
            }
        const std::uint32_t count = std::min<std::uint32_t>(load_acquire(list), cap);
        std::size_t n_fresh = 0;
        for (std::uint32_t i = 0; i < count; ++i) {
            const std::uint32_t n = load_relaxed(list + 1 + i);
            if (seen.test_and_set(n)) continue;
            prefetch_head(code(n));
            fresh[n_fresh++] = n;
        }
        std::size_t lowest = size;
        for (std::size_t i = 0; i < n_fresh; ++i) {
            if (i + 1 < n_fresh) prefetch_tail(code(fresh[i + 1]));
            const float d = distance(fresh[i]);
            if (size == ef && !(d < pool[size - 1].first)) continue;
            // insert keeping the pool sorted; when full, the worst falls off the end
            std::size_t at = size;
            while (at > 0 && pool[at - 1].first > d) --at;
            const std::size_t end = size < ef ? size : ef - 1;
            std::copy_backward(pool.begin() + static_cast<std::ptrdiff_t>(at), pool.begin() + static_cast<std::ptrdiff_t>(end),
                               pool.begin() + static_cast<std::ptrdiff_t>(end + 1));
            pool[at] = {d, fresh[i]};
            if (size < ef) ++size;
            lowest = std::min(lowest, at);
        }
        next = std::min(next + 1, lowest);
        while (next < size && (pool[next].second & kExpanded)) ++next;
    }
    out.resize(size);
    for (std::size_t i = 0; i < size; ++i) out[i] = {pool[i].first, pool[i].second & ~kExpanded};
}

// A vector spans several cache lines (1.5 KiB for 384 fp32 values). Its first lines are
// requested for all fresh neighbours at once; the rest one neighbour ahead of the scoring.
void HnswIndex::prefetch_head(const unsigned char* code) const {
    for (std::size_t i = 0; i < head_lines_; ++i) prefetch(code + 64 * i);
}
void HnswIndex::prefetch_tail(const unsigned char* code) const {
    for (std::size_t i = head_lines_; i < code_lines_; ++i) prefetch(code + 64 * i);
}

// Picks the distance function once per query, so the inner loop calls the kernel directly.
void HnswIndex::pool_search(const VectorCodec::Query& q, std::uint32_t entry, int level, std::size_t ef,
                            std::vector<Candidate>& pool) const {
    const Kernels& k = active_kernels();
    const std::size_t d = dim();
    const float* v = q.vector;
    const bool l2 = metric() == Metric::L2;
    switch (params_.storage) {
        case Storage::F32:
            if (l2)
                search_pool([&](std::uint32_t s) { return k.l2_squared(v, reinterpret_cast<const float*>(code(s)), d); }, entry, level, ef, pool);
            else
                search_pool([&](std::uint32_t s) { return -k.inner_product(v, reinterpret_cast<const float*>(code(s)), d); }, entry, level, ef, pool);
            return;
        case Storage::F16:
            if (l2)
                search_pool([&](std::uint32_t s) { return k.l2_squared_f16(v, reinterpret_cast<const unsigned short*>(code(s)), d); }, entry, level, ef, pool);
            else
                search_pool([&](std::uint32_t s) { return -k.inner_product_f16(v, reinterpret_cast<const unsigned short*>(code(s)), d); }, entry, level, ef, pool);
            return;
        case Storage::SQ8:
            search_pool([&](std::uint32_t s) { return codec_.distance(q, code(s)); }, entry, level, ef, pool);
            return;
    }
}

void HnswIndex::write_results(std::vector<Candidate>& found, const float* query, std::size_t k, float* out_distances,
                              std::int64_t* out_ids) const {
    if (params_.rerank) {
        for (Candidate& c : found) c.first = codec_.distance(query, original(c.second));
    }
    std::vector<std::pair<float, std::int64_t>> ranked;
    ranked.reserve(found.size());
    for (const Candidate& c : found) ranked.emplace_back(c.first, id_of(c.second));
    std::sort(ranked.begin(), ranked.end());
    for (std::size_t j = 0; j < k; ++j) {
        if (j < ranked.size()) {
            out_distances[j] = public_distance(metric(), ranked[j].first);
            out_ids[j] = ranked[j].second;
        } else {
            out_distances[j] = metric() == Metric::L2 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
            out_ids[j] = -1;
        }
    }
}

void HnswIndex::search_one(const float* query, std::size_t k, std::size_t ef, const std::vector<std::uint64_t>* allow_bits,
                           float* out_distances, std::int64_t* out_ids) const {
    std::vector<Candidate> found;
    const int top = max_level_.load(std::memory_order_acquire);
    if (top >= 0) {
        const VectorCodec::Query q = codec_.prepare(query);
        const std::uint32_t entry = greedy_descent(q, entry_.load(std::memory_order_acquire), top, 1);
        if (allow_bits) {
            found = search_level(q, entry, 0, ef, allow_bits);
        } else {
            pool_search(q, entry, 0, ef, found);
            // Deleted nodes route but are not results; if too many sat in the pool, search again
            // the general way, which keeps going until it holds ef live nodes.
            const std::size_t before = found.size();
            found.erase(std::remove_if(found.begin(), found.end(), [this](const Candidate& c) { return deleted(c.second); }),
                        found.end());
            if (found.size() < before && found.size() < k) {
                static const std::vector<std::uint64_t> no_filter;
                found = search_level(q, entry, 0, ef, &no_filter);
            }
        }
    }
    write_results(found, query, k, out_distances, out_ids);
}

void HnswIndex::exact_over(const float* query, const std::vector<std::uint32_t>& slots, std::size_t k, float* out_distances,
                           std::int64_t* out_ids) const {
    const VectorCodec::Query q = codec_.prepare(query);
    std::vector<Candidate> found;
    found.reserve(slots.size());
    for (std::uint32_t s : slots) {
        if (deleted(s)) continue;
        found.emplace_back(params_.rerank ? codec_.distance(query, original(s)) : codec_.distance(q, code(s)), s);
    }
    const std::size_t keep = std::min(found.size(), k);
    std::partial_sort(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(keep), found.end());
    found.resize(keep);
    write_results(found, query, k, out_distances, out_ids);
}

SearchResult HnswIndex::search(const float* queries, std::size_t nq, std::size_t k, std::size_t ef,
                               const std::vector<std::int64_t>* allowed, unsigned threads) const {
    if (k == 0) throw ArgumentError("k must be at least 1");
    if (ef == 0) throw ArgumentError("ef must be at least 1");
    const std::vector<float> prepared = prepare_vectors(queries, nq, dim(), metric(), "queries");
    ef = std::max(ef, k);

    std::vector<std::uint64_t> allow_bits;
    std::vector<std::uint32_t> allowed_slots;
    std::size_t live = 0;
    if (allowed) {
        std::shared_lock<std::shared_mutex> lock(ids_mutex_);
        live = slot_of_.size();
        allow_bits.assign((slots() + 63) / 64 + 1, 0);
        for (std::int64_t id : *allowed) {
            auto it = slot_of_.find(id);
            if (it == slot_of_.end()) continue;
            const std::uint32_t s = it->second;
            if (!(allow_bits[s >> 6] >> (s & 63) & 1u)) allowed_slots.push_back(s);
            allow_bits[s >> 6] |= std::uint64_t{1} << (s & 63);
        }
    }
    // A filter that keeps few nodes makes the graph walk wander; scanning them is cheaper and exact.
    bool exact = allowed && allowed_slots.size() * kFilterExactShare <= live + kFilterExactShare * k;
    // Asking for as many results as there are nodes: a walk may miss some, a scan returns them all.
    if (!allowed && k >= size()) {
        exact = true;
        for (std::uint32_t s = 0, n = slots(); s < n; ++s)
            if (!deleted(s)) allowed_slots.push_back(s);
    }

    SearchResult result;
    result.distances.resize(nq * k);
    result.ids.resize(nq * k);
    parallel_dynamic(nq, nq < 2 ? 1u : threads, kQueriesPerPiece, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
            const float* query = prepared.data() + i * dim();
            if (exact)
                exact_over(query, allowed_slots, k, &result.distances[i * k], &result.ids[i * k]);
            else
                search_one(query, k, ef, allowed ? &allow_bits : nullptr, &result.distances[i * k], &result.ids[i * k]);
        }
    });
    return result;
}

RangeResult HnswIndex::range_search(const float* queries, std::size_t nq, float radius, std::size_t ef, unsigned threads) const {
    if (!std::isfinite(radius)) throw ArgumentError("radius must be a finite number");
    const std::vector<float> prepared = prepare_vectors(queries, nq, dim(), metric(), "queries");
    const float limit = metric() == Metric::L2 ? radius : -radius;  // internal distance bound
    std::vector<std::vector<std::pair<float, std::int64_t>>> per_query(nq);
    parallel_dynamic(nq, nq < 2 ? 1u : threads, kQueriesPerPiece, [&](std::size_t begin, std::size_t end) {
        static const std::vector<std::uint64_t> no_filter;
        for (std::size_t i = begin; i < end; ++i) {
            const float* query = prepared.data() + i * dim();
            const int top = max_level_.load(std::memory_order_acquire);
            if (top < 0) continue;
            const VectorCodec::Query q = codec_.prepare(query);
            const std::uint32_t entry = greedy_descent(q, entry_.load(std::memory_order_acquire), top, 1);
            const std::vector<Candidate> seeds = search_level(q, entry, 0, std::max<std::size_t>(ef, 1), &no_filter);
            // Grow the region from every hit inside the radius, following level-0 links.
            auto visited = visited_->acquire(slots());
            std::vector<std::uint32_t> queue;
            for (const Candidate& c : seeds) {
                visited->test_and_set(c.second);
                if (c.first <= limit) queue.push_back(c.second);
            }
            auto& out = per_query[i];
            for (std::size_t head = 0; head < queue.size(); ++head) {
                const std::uint32_t s = queue[head];
                const float exact = params_.rerank ? codec_.distance(query, original(s)) : codec_.distance(q, code(s));
                if (exact <= limit && !deleted(s)) out.emplace_back(exact, id_of(s));
                const std::uint32_t* list = links(s, 0);
                const std::uint32_t count = load_acquire(list);
                for (std::uint32_t j = 0; j < count; ++j) {
                    const std::uint32_t n = load_relaxed(list + 1 + j);
                    if (visited->test_and_set(n)) continue;
                    if (codec_.distance(q, code(n)) <= limit) queue.push_back(n);
                }
            }
            std::sort(out.begin(), out.end());
        }
    });
    return flatten_range(per_query, metric());
}

// ---- persistence ------------------------------------------------------------------------------

std::vector<unsigned char> HnswIndex::serialize(std::uint64_t checkpoint) const {
    std::lock_guard<std::mutex> adding(const_cast<std::mutex&>(add_mutex_));
    const std::uint32_t n = slots();
    Writer w;
    std::size_t upper_links = 0;
    for (std::uint32_t s = 0; s < n; ++s) upper_links += static_cast<std::size_t>(level_of(s)) * (params_.M + 1);
    w.reserve(128 + std::size_t{n} * node_bytes_ + (params_.rerank ? std::size_t{n} * dim() * sizeof(float) : 0) + n +
              upper_links * sizeof(std::uint32_t));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(dim()));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(metric()));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(params_.storage));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(params_.M));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(params_.ef_construction));
    w.put<std::uint32_t>(params_.rerank ? 1u : 0u);
    w.put<std::uint64_t>(params_.seed);
    w.put<std::uint64_t>(rng_state_);
    w.put<std::uint64_t>(n);
    w.put<std::uint32_t>(entry_.load());
    w.put<std::int32_t>(max_level_.load());
    w.put<std::uint64_t>(node_bytes_);
    w.align(64);
    for (std::uint32_t c = 0; std::size_t{c} * kChunkSlots < n; ++c) {
        const std::size_t in_chunk = std::min<std::size_t>(kChunkSlots, n - std::size_t{c} * kChunkSlots);
        w.append(block_table_[c].load(), in_chunk * node_bytes_);
    }
    if (params_.rerank) {
        for (std::uint32_t c = 0; std::size_t{c} * kChunkSlots < n; ++c) {
            const std::size_t in_chunk = std::min<std::size_t>(kChunkSlots, n - std::size_t{c} * kChunkSlots);
            w.put_array(chunk_table_[c].load()->originals, in_chunk * dim());
        }
    }
    for (std::uint32_t s = 0; s < n; ++s) w.put<std::uint8_t>(static_cast<std::uint8_t>(level_of(s)));
    for (std::uint32_t s = 0; s < n; ++s) {
        const int level = level_of(s);
        if (level > 0) w.put_array(links(s, 1), static_cast<std::size_t>(level) * (params_.M + 1));
    }
    return seal(IndexKind::HNSW, checkpoint, std::move(w));
}

HnswIndex HnswIndex::deserialize(const Unsealed& sealed, std::shared_ptr<const void> mapping) {
    if (sealed.kind != IndexKind::HNSW) throw FormatError("Docent index holds another index kind, not an HNSW index");
    Reader r(sealed.payload, sealed.payload_size);
    const auto dim = r.get<std::uint32_t>();
    const auto metric = r.get<std::uint32_t>();
    const auto storage = r.get<std::uint32_t>();
    const auto M = r.get<std::uint32_t>();
    const auto ef_construction = r.get<std::uint32_t>();
    const auto rerank = r.get<std::uint32_t>();
    const auto seed = r.get<std::uint64_t>();
    const auto rng_state = r.get<std::uint64_t>();
    const auto n = r.get<std::uint64_t>();
    const auto entry = r.get<std::uint32_t>();
    const auto max_level = r.get<std::int32_t>();
    const auto node_bytes = r.get<std::uint64_t>();
    if (dim == 0 || dim > 65536) throw FormatError("HNSW index has an invalid dimension " + std::to_string(dim));
    if (metric > static_cast<std::uint32_t>(Metric::Cosine)) throw FormatError("HNSW index has an unknown metric code");
    if (storage > static_cast<std::uint32_t>(Storage::SQ8)) throw FormatError("HNSW index has an unknown storage code");
    if (M < 2 || M > 256 || ef_construction < 1 || rerank > 1) throw FormatError("HNSW index has invalid parameters");
    if (n > kMaxChunks * kChunkSlots) throw FormatError("HNSW index claims too many nodes");
    if (max_level < -1 || max_level > kMaxLevel || (n == 0) != (max_level == -1) || (n && entry >= n))
        throw FormatError("HNSW index has an invalid entry point or top level");
    HnswParams params{M, ef_construction, static_cast<Storage>(storage), rerank == 1, seed};
    HnswIndex index(dim, static_cast<Metric>(metric), params);
    if (node_bytes != index.node_bytes_) throw FormatError("HNSW index node size does not match its parameters");
    r.align(64, kHeaderSize);
    const std::uint32_t slots = static_cast<std::uint32_t>(n);
    if (n > r.remaining() / node_bytes) throw FormatError("HNSW index is truncated: fewer nodes than it claims");
    const unsigned char* blocks = r.take(n * node_bytes);
    const float* originals = nullptr;
    if (rerank) {
        if (n * dim > r.remaining() / sizeof(float)) throw FormatError("HNSW index is truncated: originals missing");
        originals = reinterpret_cast<const float*>(r.take(n * dim * sizeof(float)));
    }
    index.mapping_ = std::move(mapping);
    const std::size_t chunks = (n + kChunkSlots - 1) / kChunkSlots;
    for (std::size_t c = 0; c < chunks; ++c) {
        auto chunk = std::make_unique<Chunk>();
        const std::size_t in_chunk = std::min<std::size_t>(kChunkSlots, n - c * kChunkSlots);
        const unsigned char* src = blocks + c * kChunkSlots * node_bytes;
        unsigned char* chunk_blocks;
        if (index.mapping_) {
            chunk_blocks = const_cast<unsigned char*>(src);  // never written: the index is read-only
        } else {
            chunk->owned_blocks = std::make_unique<PageBuffer>(std::size_t{kChunkSlots} * node_bytes);
            std::memcpy(chunk->owned_blocks->get(), src, in_chunk * node_bytes);
            chunk_blocks = chunk->owned_blocks->get();
        }
        if (rerank) {
            const float* osrc = originals + c * kChunkSlots * dim;
            if (index.mapping_) {
                chunk->originals = const_cast<float*>(osrc);
            } else {
                chunk->owned_originals = std::make_unique<PageBuffer>(std::size_t{kChunkSlots} * dim * sizeof(float));
                chunk->originals = reinterpret_cast<float*>(chunk->owned_originals->get());
                std::memcpy(chunk->originals, osrc, in_chunk * dim * sizeof(float));
            }
        }
        index.block_table_[c].store(chunk_blocks);
        index.chunk_table_[c].store(chunk.get());
        index.chunks_.push_back(std::move(chunk));
    }
    index.next_slot_ = slots;
    index.slots_.store(slots);
    if (n > r.remaining()) throw FormatError("HNSW index is truncated: node levels missing");
    int highest = -1;
    for (std::uint32_t s = 0; s < slots; ++s) {
        const auto level = r.get<std::uint8_t>();
        if (level > max_level) throw FormatError("HNSW index is damaged: a node is above the top level");
        index.chunks_[s >> kChunkShift]->levels[s & (kChunkSlots - 1)] = level;
        highest = std::max<int>(highest, level);
    }
    if (highest != max_level || (slots && index.level_of(entry) != max_level))
        throw FormatError("HNSW index is damaged: the entry point is not on the top level");
    for (std::uint32_t s = 0; s < slots; ++s) {
        const int level = index.level_of(s);
        if (level == 0) continue;
        const std::size_t words = static_cast<std::size_t>(level) * (M + 1);
        if (words > r.remaining() / 4) throw FormatError("HNSW index is truncated: upper links missing");
        auto& upper = index.chunks_[s >> kChunkShift]->upper[s & (kChunkSlots - 1)];
        upper.reset(new std::uint32_t[words]);
        std::memcpy(upper.get(), r.take(words * 4), words * 4);
        for (int l = 1; l <= level; ++l) {
            const std::uint32_t* list = index.links(s, l);
            if (list[0] > M) throw FormatError("HNSW index is damaged: too many links on a node");
            for (std::uint32_t i = 0; i < list[0]; ++i)
                if (list[1 + i] >= slots || index.level_of(list[1 + i]) < l)
                    throw FormatError("HNSW index is damaged: a link points outside the graph");
        }
    }
    if (r.remaining() != 0) throw FormatError("HNSW index has unexpected trailing bytes");
    index.slot_of_.reserve(slots);
    std::vector<float> decoded(dim);
    for (std::uint32_t s = 0; s < slots; ++s) {
        index.codec_.decode(index.code(s), decoded.data());
        for (float v : decoded)
            if (!std::isfinite(v)) throw FormatError("HNSW index is damaged: a stored vector holds NaN or infinite values");
        if (rerank)
            for (std::size_t j = 0; j < dim; ++j)
                if (!std::isfinite(index.original(s)[j])) throw FormatError("HNSW index is damaged: a stored vector holds NaN or infinite values");
        const std::uint32_t* list = index.links(s, 0);
        if (list[0] > index.max_links0_) throw FormatError("HNSW index is damaged: too many links on a node");
        for (std::uint32_t i = 0; i < list[0]; ++i)
            if (list[1 + i] >= slots) throw FormatError("HNSW index is damaged: a link points outside the graph");
        const std::uint32_t flags = *reinterpret_cast<const std::uint32_t*>(index.block(s) + 8);
        if (flags > kDeletedFlag) throw FormatError("HNSW index is damaged: unknown node flags");
        if (flags & kDeletedFlag) {
            index.free_slots_.push_back(s);
            continue;
        }
        const std::int64_t id = index.id_of(s);
        if (id < 0 || !index.slot_of_.emplace(id, s).second)
            throw FormatError("HNSW index is damaged: id " + std::to_string(id) + " is negative or repeated");
    }
    index.rng_state_ = rng_state;
    index.entry_.store(entry);
    index.max_level_.store(max_level);
    return index;
}

}  // namespace docent
