// Search results and IVF entries as numpy arrays, shared by the CPU and GPU Python modules.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>

#include "ivf_index.h"
#include "metric.h"

namespace docent {

// (distances, ids), each of shape (nq, k).
inline pybind11::tuple to_numpy(SearchResult&& result, std::size_t nq, std::size_t k) {
    pybind11::array_t<float> distances({nq, k});
    pybind11::array_t<std::int64_t> ids({nq, k});
    std::copy(result.distances.begin(), result.distances.end(), distances.mutable_data());
    std::copy(result.ids.begin(), result.ids.end(), ids.mutable_data());
    return pybind11::make_tuple(distances, ids);
}

// (cells, ids, codes, originals or None) as retrieval.index.IVFIndex.entries gives them: codes
// of code_size bytes each, originals of original_dim floats each (0: none kept).
inline pybind11::tuple entries_to_numpy(const IvfIndex::Entries& e, std::size_t code_size, std::size_t original_dim) {
    const std::size_t n = e.ids.size();
    pybind11::array_t<std::uint32_t> cells(n);
    pybind11::array_t<std::int64_t> ids(n);
    pybind11::array_t<std::uint8_t> codes({n, code_size});
    std::copy(e.lists.begin(), e.lists.end(), cells.mutable_data());
    std::copy(e.ids.begin(), e.ids.end(), ids.mutable_data());
    std::copy(e.codes.begin(), e.codes.end(), codes.mutable_data());
    pybind11::object originals = pybind11::none();
    if (original_dim) {
        pybind11::array_t<float> kept({n, original_dim});
        std::copy(e.originals.begin(), e.originals.end(), kept.mutable_data());
        originals = kept;
    }
    return pybind11::make_tuple(cells, ids, codes, originals);
}

}  // namespace docent
