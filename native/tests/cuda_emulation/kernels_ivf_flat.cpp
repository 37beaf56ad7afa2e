// The GPU engine's ivf_flat source, built for the CPU emulation (see cuda_runtime.h).
#include "ivf_flat_gpu.cu"
