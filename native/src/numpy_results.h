// Search results as numpy arrays, shared by the CPU and GPU Python modules.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>

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

}  // namespace docent
