// The GPU engine's ivf_pq source, built for the CPU emulation (see cuda_runtime.h).
#include "ivf_pq_gpu.cu"
