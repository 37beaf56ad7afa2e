// pybind11 bindings: shape and size checks at the boundary, the GIL released around every
// call that touches many vectors, and each engine error mapped to its Python exception.
// The friendly keyword-only API lives in retrieval/index.py on top of this.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "bm25_index.h"
#include "checksum.h"
#include "flat_index.h"
#include "hnsw_index.h"
#include "ivf_index.h"
#include "kmeans.h"
#include "numpy_results.h"
#include "parallel.h"
#include "simd_dispatch.h"

namespace py = pybind11;
using namespace docent;

void bind_encoder(py::module_& m);  // bindings_encoder.cpp

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IdArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
using TokenArray = py::array_t<std::uint32_t, py::array::c_style | py::array::forcecast>;

std::size_t check_matrix(const FloatArray& a, std::size_t dim, const char* what) {
    if (a.ndim() != 2)
        throw ArgumentError(std::string(what) + " must be a 2-D array (n, dim), got " + std::to_string(a.ndim()) + " dimensions");
    if (static_cast<std::size_t>(a.shape(1)) != dim)
        throw ArgumentError(std::string(what) + " have dimension " + std::to_string(a.shape(1)) + ", the index has dimension " +
                            std::to_string(dim));
    return static_cast<std::size_t>(a.shape(0));
}

std::vector<std::int64_t> to_id_vector(const IdArray& ids) {
    if (ids.ndim() != 1) throw ArgumentError("ids must be a 1-D array");
    return {ids.data(), ids.data() + ids.size()};
}

py::tuple range_to_numpy(RangeResult&& result) {
    py::array_t<std::int64_t> lims(result.lims.size());
    py::array_t<float> distances(result.distances.size());
    py::array_t<std::int64_t> ids(result.ids.size());
    std::copy(result.lims.begin(), result.lims.end(), lims.mutable_data());
    std::copy(result.distances.begin(), result.distances.end(), distances.mutable_data());
    std::copy(result.ids.begin(), result.ids.end(), ids.mutable_data());
    return py::make_tuple(lims, distances, ids);
}

py::bytes to_bytes(const std::vector<unsigned char>& blob) {
    return py::bytes(reinterpret_cast<const char*>(blob.data()), blob.size());
}

// What every vector index binds the same way.
template <typename Index>
void bind_common(py::class_<Index>& cls) {
    cls.def_property_readonly("dim", &Index::dim)
        .def_property_readonly("metric", [](const Index& self) { return metric_name(self.metric()); })
        .def("__len__", &Index::size)
        .def("__contains__", &Index::contains)
        .def("remove", [](Index& self, const IdArray& ids) {
            const auto list = to_id_vector(ids);
            py::gil_scoped_release release;
            return self.remove(list.data(), list.size());
        }, py::arg("ids"))
        .def("reconstruct", [](const Index& self, std::int64_t id) {
            const auto v = self.reconstruct(id);
            py::array_t<float> out(v.size());
            std::copy(v.begin(), v.end(), out.mutable_data());
            return out;
        }, py::arg("id"))
        .def("ids", [](const Index& self) {
            const std::vector<std::int64_t> ids = self.ids();
            py::array_t<std::int64_t> out(ids.size());
            std::copy(ids.begin(), ids.end(), out.mutable_data());
            return out;
        })
        .def("serialize", [](const Index& self, std::uint64_t checkpoint) {
            std::vector<unsigned char> blob;
            {
                py::gil_scoped_release release;
                blob = self.serialize(checkpoint);
            }
            return to_bytes(blob);
        }, py::arg("checkpoint") = 0)
        .def("save", [](const Index& self, const std::string& path, std::uint64_t checkpoint) {
            py::gil_scoped_release release;
            write_file_atomically(path, self.serialize(checkpoint));
        }, py::arg("path"), py::arg("checkpoint") = 0);
}

// add / search / range_search of the approximate indexes, whose search knob (HNSW's ef, IVF's
// nprobe) comes right after k or the radius.
template <typename Index>
void bind_knob_search(py::class_<Index>& cls, const char* knob, std::size_t knob_default) {
    cls.def("add", [](Index& self, const FloatArray& vectors, const IdArray& ids, unsigned threads) {
            const std::size_t n = check_matrix(vectors, self.dim(), "vectors");
            if (ids.ndim() != 1 || static_cast<std::size_t>(ids.size()) != n)
                throw ArgumentError("got " + std::to_string(n) + " vectors but " + std::to_string(ids.size()) + " ids");
            py::gil_scoped_release release;
            self.add(vectors.data(), ids.data(), n, threads ? threads : default_threads());
        }, py::arg("vectors"), py::arg("ids"), py::arg("threads") = 0)
        .def("search", [](const Index& self, const FloatArray& queries, std::size_t k, std::size_t knob_value,
                          std::optional<IdArray> allowed, unsigned threads) {
            const std::size_t nq = check_matrix(queries, self.dim(), "queries");
            std::optional<std::vector<std::int64_t>> allow;
            if (allowed) allow = to_id_vector(*allowed);
            SearchResult result;
            {
                py::gil_scoped_release release;
                result = self.search(queries.data(), nq, k, knob_value, allow ? &*allow : nullptr, threads ? threads : default_threads());
            }
            return to_numpy(std::move(result), nq, k);
        }, py::arg("queries"), py::arg("k"), py::arg(knob) = knob_default, py::arg("allowed") = py::none(), py::arg("threads") = 0)
        .def("range_search", [](const Index& self, const FloatArray& queries, float radius, std::size_t knob_value, unsigned threads) {
            const std::size_t nq = check_matrix(queries, self.dim(), "queries");
            RangeResult result;
            {
                py::gil_scoped_release release;
                result = self.range_search(queries.data(), nq, radius, knob_value, threads ? threads : default_threads());
            }
            return range_to_numpy(std::move(result));
        }, py::arg("queries"), py::arg("radius"), py::arg(knob) = knob_default, py::arg("threads") = 0);
}

template <typename Index, typename... Extra>
py::object build(const Unsealed& sealed, Extra&&... extra) {
    Index* index;
    {
        py::gil_scoped_release release;
        index = new Index(Index::deserialize(sealed, std::forward<Extra>(extra)...));
    }
    return py::cast(index, py::return_value_policy::take_ownership);
}

// Returns (index, checkpoint) for whichever kind the bytes hold. With `mapping`, the bytes are
// a memory-mapped file and an index kind that can (Flat, HNSW) keeps using them in place, read-only.
py::tuple load_from(const unsigned char* data, std::size_t size, std::shared_ptr<MappedFile> mapping = nullptr) {
    Unsealed sealed{};
    {
        py::gil_scoped_release release;
        sealed = unseal(data, size);
    }
    py::object index;
    switch (sealed.kind) {
        case IndexKind::Flat: index = build<FlatIndex>(sealed, std::shared_ptr<const void>(mapping)); break;
        case IndexKind::BM25: index = build<BM25Index>(sealed); break;
        case IndexKind::HNSW: index = build<HnswIndex>(sealed, std::shared_ptr<const void>(mapping)); break;
        case IndexKind::IVF: index = build<IvfIndex>(sealed); break;
        default: throw FormatError("Docent index of an unknown kind " + std::to_string(static_cast<unsigned>(sealed.kind)));
    }
    return py::make_tuple(index, sealed.checkpoint);
}

}  // namespace

PYBIND11_MODULE(_engine, m) {
    m.doc() = "Docent's native search engine (exact vector search and BM25)";
    py::register_exception<FormatError>(m, "IndexFormatError", PyExc_ValueError);

    m.def("simd_level", [] { return std::string(active_kernels().name); }, "The SIMD kernels in use.");
    m.def("supported_simd_levels", &supported_simd_levels, "SIMD levels this CPU can run, best last.");
    m.def("set_simd_level", &set_simd_level, py::arg("level"), "Force the SIMD kernels (generic, avx2, avx512).");
    m.def("xxh64", [](py::bytes data) {
        const std::string_view view(data);
        return xxh64(view.data(), view.size());
    }, py::arg("data"));
    bind_encoder(m);

    py::class_<FlatIndex> flat(m, "FlatIndex");
    flat.def(py::init([](std::size_t dim, const std::string& metric) { return FlatIndex(dim, parse_metric(metric)); }),
             py::arg("dim"), py::arg("metric"))
        .def("add", [](FlatIndex& self, const FloatArray& vectors, const IdArray& ids) {
            const std::size_t n = check_matrix(vectors, self.dim(), "vectors");
            if (ids.ndim() != 1 || static_cast<std::size_t>(ids.size()) != n)
                throw ArgumentError("got " + std::to_string(n) + " vectors but " + std::to_string(ids.size()) + " ids");
            py::gil_scoped_release release;
            self.add(vectors.data(), ids.data(), n);
        }, py::arg("vectors"), py::arg("ids"))
        .def("search", [](const FlatIndex& self, const FloatArray& queries, std::size_t k, std::optional<IdArray> allowed,
                          unsigned threads) {
            const std::size_t nq = check_matrix(queries, self.dim(), "queries");
            std::optional<std::vector<std::int64_t>> allow;
            if (allowed) allow = to_id_vector(*allowed);
            SearchResult result;
            {
                py::gil_scoped_release release;
                result = self.search(queries.data(), nq, k, allow ? &*allow : nullptr, threads ? threads : default_threads());
            }
            return to_numpy(std::move(result), nq, k);
        }, py::arg("queries"), py::arg("k"), py::arg("allowed") = py::none(), py::arg("threads") = 0)
        .def("range_search", [](const FlatIndex& self, const FloatArray& queries, float radius, unsigned threads) {
            const std::size_t nq = check_matrix(queries, self.dim(), "queries");
            RangeResult result;
            {
                py::gil_scoped_release release;
                result = self.range_search(queries.data(), nq, radius, threads ? threads : default_threads());
            }
            return range_to_numpy(std::move(result));
        }, py::arg("queries"), py::arg("radius"), py::arg("threads") = 0)
        .def_property_readonly("read_only", &FlatIndex::read_only)
        .def("vectors", [](const FlatIndex& self) {
            py::array_t<float> out({self.size(), self.dim()});
            std::copy(self.data(), self.data() + self.size() * self.dim(), out.mutable_data());
            return out;
        });
    bind_common(flat);

    py::class_<HnswIndex> hnsw(m, "HnswIndex");
    hnsw.def(py::init([](std::size_t dim, const std::string& metric, std::size_t M, std::size_t ef_construction,
                         const std::string& storage, bool rerank, std::uint64_t seed) {
            return new HnswIndex(dim, parse_metric(metric), HnswParams{M, ef_construction, parse_storage(storage), rerank, seed});
        }), py::arg("dim"), py::arg("metric"), py::arg("M") = 32, py::arg("ef_construction") = 200, py::arg("storage") = "f32",
            py::arg("rerank") = false, py::arg("seed") = 100)
        .def_property_readonly("M", [](const HnswIndex& self) { return self.params().M; })
        .def_property_readonly("ef_construction", [](const HnswIndex& self) { return self.params().ef_construction; })
        .def_property_readonly("storage", [](const HnswIndex& self) { return storage_name(self.params().storage); })
        .def_property_readonly("rerank", [](const HnswIndex& self) { return self.params().rerank; })
        .def_property_readonly("read_only", &HnswIndex::read_only)
        .def_property_readonly("memory_bytes", &HnswIndex::memory_bytes);
    bind_knob_search(hnsw, "ef", 64);
    bind_common(hnsw);

    py::class_<IvfIndex> ivf(m, "IvfIndex");
    ivf.def(py::init([](std::size_t dim, const std::string& metric, std::size_t nlist, std::size_t pq_m, bool rerank, std::uint64_t seed) {
            return new IvfIndex(dim, parse_metric(metric), IvfParams{nlist, pq_m, rerank, seed});
        }), py::arg("dim"), py::arg("metric"), py::arg("nlist"), py::arg("pq_m") = 0, py::arg("rerank") = false, py::arg("seed") = 1234)
        .def_property_readonly("nlist", [](const IvfIndex& self) { return self.params().nlist; })
        .def_property_readonly("pq_m", [](const IvfIndex& self) { return self.params().pq_m; })
        .def_property_readonly("rerank", [](const IvfIndex& self) { return self.params().rerank; })
        .def_property_readonly("is_trained", &IvfIndex::trained)
        .def_property_readonly("memory_bytes", &IvfIndex::memory_bytes)
        .def("centroids", [](const IvfIndex& self) {
            py::array_t<float> out({self.trained() ? self.params().nlist : 0, self.dim()});
            std::copy(self.centroids().begin(), self.centroids().end(), out.mutable_data());
            return out;
        })
        .def("train", [](IvfIndex& self, const FloatArray& vectors, unsigned threads) {
            const std::size_t n = check_matrix(vectors, self.dim(), "training vectors");
            py::gil_scoped_release release;
            self.train(vectors.data(), n, threads ? threads : default_threads());
        }, py::arg("vectors"), py::arg("threads") = 0)
        .def("codebooks", [](const IvfIndex& self) {
            const std::size_t m = self.trained() ? self.params().pq_m : 0;
            py::array_t<float> out({m, std::size_t{256}, m ? self.dim() / m : 0});
            std::copy(self.codebooks().begin(), self.codebooks().end(), out.mutable_data());
            return out;
        })
        .def("entries", [](const IvfIndex& self) {
            return entries_to_numpy(self.entries(), self.code_size(), self.params().rerank ? self.dim() : 0);
        })
        .def("set_trained", [](IvfIndex& self, const FloatArray& centroids, const FloatArray& codebooks) {
            check_matrix(centroids, self.dim(), "centroids");
            if (static_cast<std::size_t>(centroids.shape(0)) != self.params().nlist)
                throw ArgumentError("expected " + std::to_string(self.params().nlist) + " centroids, got " + std::to_string(centroids.shape(0)));
            const std::size_t m = self.params().pq_m, expected = m ? 256 * self.dim() : 0;
            if (static_cast<std::size_t>(codebooks.size()) != expected)
                throw ArgumentError("expected codebooks of " + std::to_string(expected) + " values (pq_m, 256, dim / pq_m), got " +
                                    std::to_string(codebooks.size()));
            self.set_trained(centroids.data(), codebooks.data());
        })
        .def("add_encoded", [](IvfIndex& self, const py::array_t<std::uint32_t, py::array::c_style | py::array::forcecast>& lists,
                               const IdArray& ids, const py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>& codes,
                               std::optional<FloatArray> originals) {
            const std::size_t n = static_cast<std::size_t>(ids.size());
            if (lists.ndim() != 1 || ids.ndim() != 1 || static_cast<std::size_t>(lists.size()) != n)
                throw ArgumentError("lists and ids must be 1-D arrays of one entry each");
            if (codes.ndim() != 2 || static_cast<std::size_t>(codes.shape(0)) != n ||
                static_cast<std::size_t>(codes.shape(1)) != self.code_size())
                throw ArgumentError("codes must be (n, " + std::to_string(self.code_size()) + ") bytes");
            if (originals) check_matrix(*originals, self.dim(), "originals");
            if (originals && static_cast<std::size_t>(originals->shape(0)) != n) throw ArgumentError("one original per entry");
            py::gil_scoped_release release;
            self.add_encoded(lists.data(), ids.data(), codes.data(), originals ? originals->data() : nullptr, n);
        }, py::arg("lists"), py::arg("ids"), py::arg("codes"), py::arg("originals") = py::none());
    bind_knob_search(ivf, "nprobe", 8);
    bind_common(ivf);

    m.def("kmeans", [](const FloatArray& x, std::size_t k, std::size_t iterations, bool spherical, std::uint64_t seed, unsigned threads) {
        if (x.ndim() != 2) throw ArgumentError("k-means input must be a 2-D array (n, dim)");
        const std::size_t n = static_cast<std::size_t>(x.shape(0)), dim = static_cast<std::size_t>(x.shape(1));
        if (dim == 0) throw ArgumentError("k-means input has dimension 0");
        KMeansResult result;
        {
            py::gil_scoped_release release;
            result = kmeans(x.data(), n, dim, k, iterations, spherical, seed, threads ? threads : default_threads());
        }
        py::array_t<float> centroids({k, dim});
        py::array_t<std::uint32_t> assignment(n);
        std::copy(result.centroids.begin(), result.centroids.end(), centroids.mutable_data());
        std::copy(result.assignment.begin(), result.assignment.end(), assignment.mutable_data());
        return py::make_tuple(centroids, assignment, result.objective);
    }, py::arg("x"), py::arg("k"), py::arg("iterations") = 20, py::arg("spherical") = false, py::arg("seed") = 1234, py::arg("threads") = 0);

    py::class_<BM25Index>(m, "BM25Index")
        .def(py::init([](double k1, double b, double epsilon) { return BM25Index(BM25Params{k1, b, epsilon}); }),
             py::arg("k1") = 1.5, py::arg("b") = 0.75, py::arg("epsilon") = 0.25)
        .def("__len__", &BM25Index::size)
        .def("__contains__", &BM25Index::contains)
        .def_property_readonly("vocabulary_size", &BM25Index::vocabulary_size)
        .def_property_readonly("k1", [](const BM25Index& self) { return self.params().k1; })
        .def_property_readonly("b", [](const BM25Index& self) { return self.params().b; })
        .def_property_readonly("epsilon", [](const BM25Index& self) { return self.params().epsilon; })
        .def("add", [](BM25Index& self, std::int64_t id, const TokenArray& tokens) {
            if (tokens.ndim() != 1) throw ArgumentError("tokens must be a 1-D array of token ids");
            self.add(id, tokens.data(), static_cast<std::size_t>(tokens.size()));
        }, py::arg("id"), py::arg("tokens"))
        .def("remove", &BM25Index::remove, py::arg("id"))
        .def("search", [](const BM25Index& self, const std::vector<std::vector<std::uint32_t>>& queries, std::size_t k,
                          std::optional<IdArray> allowed, unsigned threads, bool exhaustive) {
            std::optional<std::vector<std::int64_t>> allow;
            if (allowed) allow = to_id_vector(*allowed);
            SearchResult result;
            {
                py::gil_scoped_release release;
                result = self.search(queries, k, allow ? &*allow : nullptr, threads ? threads : default_threads(),
                                     exhaustive);
            }
            return to_numpy(std::move(result), queries.size(), k);
        }, py::arg("queries"), py::arg("k"), py::arg("allowed") = py::none(), py::arg("threads") = 0,
           py::arg("exhaustive") = false, "exhaustive: score every posting (the reference the pruned search equals)")
        .def("search_with_statistics", [](const BM25Index& self, const std::vector<std::vector<std::uint32_t>>& queries,
                                          const std::vector<std::vector<double>>& idfs, double avgdl, std::size_t k,
                                          std::optional<IdArray> allowed, unsigned threads, bool exhaustive) {
            std::optional<std::vector<std::int64_t>> allow;
            if (allowed) allow = to_id_vector(*allowed);
            SearchResult result;
            {
                py::gil_scoped_release release;
                result = self.search_with_statistics(queries, idfs, avgdl, k, allow ? &*allow : nullptr,
                                                     threads ? threads : default_threads(), exhaustive);
            }
            return to_numpy(std::move(result), queries.size(), k);
        }, py::arg("queries"), py::arg("idfs"), py::arg("avgdl"), py::arg("k"), py::arg("allowed") = py::none(),
           py::arg("threads") = 0, py::arg("exhaustive") = false,
           "search() scored with collection-wide statistics: each query token's idf and the average length")
        .def("statistics", [](const BM25Index& self) {
            std::vector<std::uint32_t> terms, dfs;
            self.document_frequencies(terms, dfs);
            py::array_t<std::uint32_t> term_array(terms.size()), df_array(dfs.size());
            std::copy(terms.begin(), terms.end(), term_array.mutable_data());
            std::copy(dfs.begin(), dfs.end(), df_array.mutable_data());
            py::dict out;
            out["documents"] = self.size();
            out["total_length"] = self.total_length();
            out["terms"] = term_array;
            out["document_frequencies"] = df_array;
            return out;
        }, "documents, total_length, and the document frequency of each term the index holds")
        .def("scores", [](const BM25Index& self, const std::vector<std::uint32_t>& query, const IdArray& ids) {
            const auto list = to_id_vector(ids);
            const auto values = self.scores(query, list);
            py::array_t<double> out(values.size());
            std::copy(values.begin(), values.end(), out.mutable_data());
            return out;
        }, py::arg("query"), py::arg("ids"))
        .def("serialize", [](const BM25Index& self, std::uint64_t checkpoint) {
            std::vector<unsigned char> blob;
            {
                py::gil_scoped_release release;
                blob = self.serialize(checkpoint);
            }
            return to_bytes(blob);
        }, py::arg("checkpoint") = 0)
        .def("save", [](const BM25Index& self, const std::string& path, std::uint64_t checkpoint) {
            py::gil_scoped_release release;
            write_file_atomically(path, self.serialize(checkpoint));
        }, py::arg("path"), py::arg("checkpoint") = 0);

    m.def("load_bytes", [](py::bytes data) {
        const std::string_view view(data);
        return load_from(reinterpret_cast<const unsigned char*>(view.data()), view.size());
    }, py::arg("data"), "Returns (index, checkpoint) from bytes made by serialize().");
    m.def("map_file", [](const std::string& path) {
        std::shared_ptr<MappedFile> mapping;
        {
            py::gil_scoped_release release;
            mapping = map_file(path);
        }
        return load_from(mapping->data, mapping->size, mapping);
    }, py::arg("path"), "Like load_file, but a flat or HNSW index is used in place from a read-only memory mapping.");
    m.def("load_file", [](const std::string& path) {
        std::vector<unsigned char> bytes;
        {
            py::gil_scoped_release release;
            bytes = read_file(path);
        }
        return load_from(bytes.data(), bytes.size());
    }, py::arg("path"), "Returns (index, checkpoint) from a file written by save().");
}
