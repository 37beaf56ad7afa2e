// The GPU engine's search source, built for the CPU emulation (see cuda_runtime.h).
#include "search_gpu.cu"
