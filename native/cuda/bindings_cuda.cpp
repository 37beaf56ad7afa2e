// pybind11 bindings of the GPU engine (module retrieval._engine_cuda, built only when CMake
// finds a CUDA compiler). Shapes are checked here; the GIL is released around GPU work;
// GpuError becomes retrieval._engine_cuda.GpuError (a RuntimeError), bad arguments ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

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

}  // namespace

PYBIND11_MODULE(_engine_cuda, m) {
    m.doc() = "Docent's GPU engine (CUDA)";
    py::register_exception<gpu::GpuError>(m, "GpuError", PyExc_RuntimeError);
    m.attr("MAX_K") = gpu::kMaxK;
    m.def("unavailable_reason", &gpu::unavailable_reason);
    m.def("devices", [] {
        py::list out;
        for (const auto& d : gpu::devices())
            out.append(py::dict(py::arg("id") = d.id, py::arg("name") = d.name, py::arg("total_memory") = d.total_memory,
                                py::arg("free_memory") = d.free_memory, py::arg("compute_capability") = py::make_tuple(d.major, d.minor)));
        return out;
    });

    py::class_<gpu::FlatIndex>(m, "FlatIndex")
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
        .def("reset", &gpu::FlatIndex::reset)
        .def("search", [](const gpu::FlatIndex& self, const FloatArray& queries, std::size_t k) {
            const std::size_t nq = rows_of(queries, self.dim(), "queries");
            SearchResult result;
            {
                py::gil_scoped_release release;
                result = self.search(queries.data(), nq, k);
            }
            return to_numpy(std::move(result), nq, k);
        })
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

    py::class_<gpu::IvfFlatIndex>(m, "IvfFlatIndex")
        .def(py::init([](std::size_t dim, const std::string& metric, const FloatArray& centroids, int device) {
                 const std::size_t nlist = rows_of(centroids, dim, "centroids");
                 return gpu::IvfFlatIndex(dim, parse_metric(metric), centroids.data(), nlist, device);
             }),
             py::arg("dim"), py::arg("metric"), py::arg("centroids"), py::arg("device"))
        .def_property_readonly("dim", &gpu::IvfFlatIndex::dim)
        .def_property_readonly("nlist", &gpu::IvfFlatIndex::nlist)
        .def("__len__", &gpu::IvfFlatIndex::size)
        .def("add", [](gpu::IvfFlatIndex& self, const FloatArray& vectors, const IdArray& ids) {
            const std::size_t n = rows_of(vectors, self.dim(), "vectors");
            check_ids(ids, n);
            py::gil_scoped_release release;
            self.add(vectors.data(), ids.data(), n);
        })
        .def("search", [](const gpu::IvfFlatIndex& self, const FloatArray& queries, std::size_t k, std::size_t nprobe) {
            const std::size_t nq = rows_of(queries, self.dim(), "queries");
            SearchResult result;
            {
                py::gil_scoped_release release;
                result = self.search(queries.data(), nq, k, nprobe);
            }
            return to_numpy(std::move(result), nq, k);
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
