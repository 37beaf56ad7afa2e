// pybind11 bindings of the GPU engine (module retrieval._engine_cuda, built only when CMake
// finds a CUDA compiler). Shapes are checked here; the GIL is released around GPU work;
// GpuError becomes retrieval._engine_cuda.GpuError (a RuntimeError), bad arguments ValueError.
// Its types are module-local: the same sources also build a module on the CPU emulation (tests).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "gpu_api.h"
#include "numpy_results.h"

namespace py = pybind11;
using namespace docent;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IdArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

std::size_t rows_of(const FloatArray& a, std::size_t dim, const char* what) {
    if (a.ndim() != 2) throw std::invalid_argument(std::string(what) + " must be a 2-D array (n, dim)");
    if (static_cast<std::size_t>(a.shape(1)) != dim)
        throw std::invalid_argument(std::string(what) + " have dimension " + std::to_string(a.shape(1)) + ", the index has dimension " +
                                    std::to_string(dim));
    return static_cast<std::size_t>(a.shape(0));
}

void check_ids(const IdArray& ids, std::size_t n) {
    if (ids.ndim() != 1 || static_cast<std::size_t>(ids.shape(0)) != n)
        throw std::invalid_argument("ids must be a 1-D array with one id per vector");
}

// A search with an optional allow-list of ids (a 1-D array), and the index's own knob (nprobe).
template <class Index, class... Knob>
py::tuple search(const Index& self, const FloatArray& queries, std::size_t k, const std::optional<IdArray>& allowed, Knob... knob) {
    const std::size_t nq = rows_of(queries, self.dim(), "queries");
    if (allowed && allowed->ndim() != 1) throw std::invalid_argument("the filter must be a 1-D array of ids");
    const std::int64_t* allowed_ids = allowed ? allowed->data() : nullptr;
    const std::size_t n_allowed = allowed ? static_cast<std::size_t>(allowed->shape(0)) : 0;
    SearchResult result;
    {
        py::gil_scoped_release release;
        result = self.search(queries.data(), nq, k, knob..., allowed_ids, n_allowed);
    }
    return to_numpy(std::move(result), nq, k);
}

py::array_t<float> matrix(const std::vector<float>& values, std::size_t rows, std::size_t cols) {
    py::array_t<float> out({rows, cols});
    std::copy(values.begin(), values.end(), out.mutable_data());
    return out;
}

}  // namespace

PYBIND11_MODULE(_engine_cuda, m) {
    m.doc() = "Docent's GPU engine (CUDA)";
    py::register_local_exception<gpu::GpuError>(m, "GpuError", PyExc_RuntimeError);
    m.attr("MAX_K") = gpu::kMaxK;
    m.def("unavailable_reason", &gpu::unavailable_reason);
    m.def("devices", [] {
        py::list out;
        for (const auto& d : gpu::devices())
            out.append(py::dict(py::arg("id") = d.id, py::arg("name") = d.name, py::arg("total_memory") = d.total_memory,
                                py::arg("free_memory") = d.free_memory, py::arg("compute_capability") = py::make_tuple(d.major, d.minor)));
        return out;
    });

    py::class_<gpu::FlatIndex>(m, "FlatIndex", py::module_local())
        .def(py::init([](std::size_t dim, const std::string& metric, const std::string& precision, int device) {
                 return gpu::FlatIndex(dim, parse_metric(metric), gpu::parse_precision(precision), device);
             }),
             py::arg("dim"), py::arg("metric"), py::arg("precision"), py::arg("device"))
        .def_property_readonly("dim", &gpu::FlatIndex::dim)
        .def_property_readonly("metric", [](const gpu::FlatIndex& self) { return metric_name(self.metric()); })
        .def_property_readonly("device", &gpu::FlatIndex::device)
        .def_property_readonly("memory_bytes", &gpu::FlatIndex::memory_bytes)
        .def("__len__", &gpu::FlatIndex::size)
        .def("add", [](gpu::FlatIndex& self, const FloatArray& vectors, const IdArray& ids) {
            const std::size_t n = rows_of(vectors, self.dim(), "vectors");
            check_ids(ids, n);
            py::gil_scoped_release release;
            self.add(vectors.data(), ids.data(), n);
        })
        .def("__contains__", &gpu::FlatIndex::contains)
        .def("remove", [](gpu::FlatIndex& self, const IdArray& ids) {
            if (ids.ndim() != 1) throw std::invalid_argument("ids must be a 1-D array");
            py::gil_scoped_release release;
            return self.remove(ids.data(), static_cast<std::size_t>(ids.shape(0)));
        })
        .def("reset", &gpu::FlatIndex::reset)
        .def("search", [](const gpu::FlatIndex& self, const FloatArray& queries, std::size_t k, std::optional<IdArray> allowed) {
            return search(self, queries, k, allowed);
        }, py::arg("queries"), py::arg("k"), py::arg("allowed") = py::none())
        .def("vectors", [](const gpu::FlatIndex& self) {
            std::vector<float> rows;
            {
                py::gil_scoped_release release;
                rows = self.vectors();
            }
            py::array_t<float> out({self.size(), self.dim()});
            std::copy(rows.begin(), rows.end(), out.mutable_data());
            return out;
        })
        .def("ids", [](const gpu::FlatIndex& self) {
            const auto& ids = self.ids();
            py::array_t<std::int64_t> out(ids.size());
            std::copy(ids.begin(), ids.end(), out.mutable_data());
            return out;
        });

    py::class_<gpu::IvfFlatIndex>(m, "IvfFlatIndex", py::module_local())
        .def(py::init([](std::size_t dim, const std::string& metric, const FloatArray& centroids, int device) {
                 const std::size_t nlist = rows_of(centroids, dim, "centroids");
                 return gpu::IvfFlatIndex(dim, parse_metric(metric), centroids.data(), nlist, device);
             }),
             py::arg("dim"), py::arg("metric"), py::arg("centroids"), py::arg("device"))
        .def_property_readonly("dim", &gpu::IvfFlatIndex::dim)
        .def_property_readonly("metric", [](const gpu::IvfFlatIndex& self) { return metric_name(self.metric()); })
        .def_property_readonly("nlist", &gpu::IvfFlatIndex::nlist)
        .def("__len__", &gpu::IvfFlatIndex::size)
        .def("centroids", [](const gpu::IvfFlatIndex& self) { return matrix(self.centroids(), self.nlist(), self.dim()); })
        .def("add", [](gpu::IvfFlatIndex& self, const FloatArray& vectors, const IdArray& ids) {
            const std::size_t n = rows_of(vectors, self.dim(), "vectors");
            check_ids(ids, n);
            py::gil_scoped_release release;
            self.add(vectors.data(), ids.data(), n);
        })
        .def("search", [](const gpu::IvfFlatIndex& self, const FloatArray& queries, std::size_t k, std::size_t nprobe,
                          std::optional<IdArray> allowed) { return search(self, queries, k, allowed, nprobe); },
             py::arg("queries"), py::arg("k"), py::arg("nprobe"), py::arg("allowed") = py::none())
        .def("entries", [](const gpu::IvfFlatIndex& self) { return entries_to_numpy(self.entries(), self.dim() * sizeof(float), 0); });

    py::class_<gpu::IvfPqIndex>(m, "IvfPqIndex", py::module_local())
        .def(py::init([](std::size_t dim, const std::string& metric, const FloatArray& centroids, const FloatArray& codebooks,
                         std::size_t pq_m, bool rerank, int device) {
                 const std::size_t nlist = rows_of(centroids, dim, "centroids");
                 if (pq_m == 0 || dim % pq_m) throw std::invalid_argument("pq_m must divide the dimension " + std::to_string(dim));
                 if (static_cast<std::size_t>(codebooks.size()) != 256 * dim)
                     throw std::invalid_argument("the codebooks must hold (pq_m, 256, dim / pq_m) values, " + std::to_string(256 * dim) +
                                                 " in all; got " + std::to_string(codebooks.size()));
                 return gpu::IvfPqIndex(dim, parse_metric(metric), centroids.data(), nlist, codebooks.data(), pq_m, rerank, device);
             }),
             py::arg("dim"), py::arg("metric"), py::arg("centroids"), py::arg("codebooks"), py::arg("pq_m"), py::arg("rerank"),
             py::arg("device"))
        .def_property_readonly("dim", &gpu::IvfPqIndex::dim)
        .def_property_readonly("metric", [](const gpu::IvfPqIndex& self) { return metric_name(self.metric()); })
        .def_property_readonly("nlist", &gpu::IvfPqIndex::nlist)
        .def_property_readonly("pq_m", &gpu::IvfPqIndex::pq_m)
        .def_property_readonly("rerank", &gpu::IvfPqIndex::rerank)
        .def_property_readonly("memory_bytes", &gpu::IvfPqIndex::memory_bytes)
        .def("__len__", &gpu::IvfPqIndex::size)
        .def("centroids", [](const gpu::IvfPqIndex& self) { return matrix(self.centroids(), self.nlist(), self.dim()); })
        .def("codebooks", [](const gpu::IvfPqIndex& self) {
            py::array_t<float> out({self.pq_m(), std::size_t{256}, self.dim() / self.pq_m()});
            std::copy(self.codebooks().begin(), self.codebooks().end(), out.mutable_data());
            return out;
        })
        .def("add", [](gpu::IvfPqIndex& self, const FloatArray& vectors, const IdArray& ids) {
            const std::size_t n = rows_of(vectors, self.dim(), "vectors");
            check_ids(ids, n);
            py::gil_scoped_release release;
            self.add(vectors.data(), ids.data(), n);
        })
        .def("add_encoded", [](gpu::IvfPqIndex& self, const py::array_t<std::uint32_t, py::array::c_style | py::array::forcecast>& cells,
                               const IdArray& ids, const py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>& codes,
                               std::optional<FloatArray> originals) {
            const std::size_t n = static_cast<std::size_t>(ids.size());
            check_ids(ids, n);
            if (cells.ndim() != 1 || static_cast<std::size_t>(cells.size()) != n) throw std::invalid_argument("one cell per entry");
            if (codes.ndim() != 2 || static_cast<std::size_t>(codes.shape(0)) != n || static_cast<std::size_t>(codes.shape(1)) != self.pq_m())
                throw std::invalid_argument("codes must be (n, " + std::to_string(self.pq_m()) + ") bytes");
            if (originals && rows_of(*originals, self.dim(), "originals") != n) throw std::invalid_argument("one original per entry");
            py::gil_scoped_release release;
            self.add_encoded(cells.data(), ids.data(), codes.data(), originals ? originals->data() : nullptr, n);
        }, py::arg("cells"), py::arg("ids"), py::arg("codes"), py::arg("originals") = py::none())
        .def("search", [](const gpu::IvfPqIndex& self, const FloatArray& queries, std::size_t k, std::size_t nprobe,
                          std::optional<IdArray> allowed) { return search(self, queries, k, allowed, nprobe); },
             py::arg("queries"), py::arg("k"), py::arg("nprobe"), py::arg("allowed") = py::none())
        .def("entries", [](const gpu::IvfPqIndex& self) {
            return entries_to_numpy(self.entries(), self.pq_m(), self.rerank() ? self.dim() : 0);
        });

    m.def("kmeans", [](const FloatArray& data, std::size_t k, int iterations, bool spherical, std::uint64_t seed, int device) {
        if (data.ndim() != 2) throw std::invalid_argument("data must be a 2-D array (n, dim)");
        const std::size_t n = data.shape(0), dim = data.shape(1);
        std::vector<float> centroids;
        {
            py::gil_scoped_release release;
            centroids = gpu::kmeans(data.data(), n, dim, k, iterations, spherical, seed, device);
        }
        py::array_t<float> out({k, dim});
        std::copy(centroids.begin(), centroids.end(), out.mutable_data());
        return out;
    });
}
