// The GPU engine's kmeans source, built for the CPU emulation (see cuda_runtime.h).
#include "kmeans_gpu.cu"
