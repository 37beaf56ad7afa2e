/* An AVX2-only CPU as every library in a process sees it, on a CPU that has more.
 *
 * Libraries choose their kernels from the `cpuid` instruction: ONNX Runtime (MLAS), oneDNN
 * (OpenVINO, torch), MKL, numpy and Docent's encoder alike. Only oneDNN and MKL can be told to
 * stay below what the CPU has; ONNX Runtime cannot. Linux can make `cpuid` trap (CPUID
 * faulting, `arch_prctl(ARCH_SET_CPUID, 0)`, on CPUs whose /proc/cpuinfo flags list
 * cpuid_fault; rr uses it to record programs). Preloaded, this library turns the trap on
 * before the program starts, answers each `cpuid` itself with the CPU's real answer less
 * AVX-512 (all of it: F, VNNI, BF16, FP16, ...), AVX-VNNI and AMX, and so every library in the
 * process takes the kernels it takes on an AVX2-only server (AMD Zen 2 and 3, Intel Haswell to
 * Comet Lake). Code runs at the core's own speed; only each `cpuid` costs a trap.
 *
 * SIGSEGV handlers installed later (Python's faulthandler, a runtime's crash reporter) are
 * kept and called for every other fault, so a real crash still reaches them.
 *
 *   bench/avx2_cpu.sh python bench/embed_bench.py --onnxruntime   (builds and preloads this)
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

static sigaction_fn real_sigaction;
static struct sigaction next_action; /* what the program asked SIGSEGV to do */

static int cpuid_trap(int on) { return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

static void hide_above_avx2(uint32_t leaf, uint32_t subleaf, uint32_t regs[4]) {
  enum { EAX, EBX, ECX, EDX };
  if (leaf == 7 && subleaf == 0) {
    /* AVX512 F, DQ, IFMA, PF, ER, CD, BW, VL */
    regs[EBX] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
    /* AVX512 VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ */
    regs[ECX] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    /* AVX512 4VNNIW, 4FMAPS, VP2INTERSECT, AMX-BF16, AVX512 FP16, AMX-TILE, AMX-INT8 */
    regs[EDX] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
  } else if (leaf == 7 && subleaf == 1) {
    /* AVX-VNNI, AVX512 BF16, AMX-FP16, AVX-IFMA, AVX-VNNI-INT8, AVX-NE-CONVERT */
    regs[EAX] &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
    regs[EDX] &= ~((1u << 4) | (1u << 5));
  } else if (leaf == 0xd && subleaf == 0) {
    regs[EAX] &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18)); /* opmask, ZMM, tile state */
  }
}

static void forward(int sig, siginfo_t *info, void *context) {
  if (next_action.sa_flags & SA_SIGINFO) {
    next_action.sa_sigaction(sig, info, context);
  } else if (next_action.sa_handler == SIG_DFL || next_action.sa_handler == SIG_IGN) {
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &fallback, NULL); /* the fault repeats and ends the process as it would have */
  } else {
    next_action.sa_handler(sig);
  }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
  ucontext_t *uc = (ucontext_t *)context;
  const uint8_t *ip = (const uint8_t *)uc->uc_mcontext.gregs[REG_RIP];
  if (!(ip[0] == 0x0f && ip[1] == 0xa2)) {
    forward(sig, info, context);
    return;
  }
  uint32_t leaf = (uint32_t)uc->uc_mcontext.gregs[REG_RAX];
  uint32_t subleaf = (uint32_t)uc->uc_mcontext.gregs[REG_RCX];
  uint32_t regs[4];
  cpuid_trap(0);
  __cpuid_count(leaf, subleaf, regs[0], regs[1], regs[2], regs[3]);
  cpuid_trap(1);
  hide_above_avx2(leaf, subleaf, regs);
  uc->uc_mcontext.gregs[REG_RAX] = regs[0];
  uc->uc_mcontext.gregs[REG_RBX] = regs[1];
  uc->uc_mcontext.gregs[REG_RCX] = regs[2];
  uc->uc_mcontext.gregs[REG_RDX] = regs[3];
  uc->uc_mcontext.gregs[REG_RIP] += 2;
}

/* The program's SIGSEGV handlers are recorded, not installed: this one stays in front of them. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  if (sig != SIGSEGV) return real_sigaction(sig, act, old);
  if (old) *old = next_action;
  if (act) next_action = *act;
  return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

__attribute__((constructor)) static void start(void) {
  real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  next_action.sa_handler = SIG_DFL;
  struct sigaction act;
  memset(&act, 0, sizeof act);
  act.sa_sigaction = on_segv;
  act.sa_flags = SA_SIGINFO;
  if (!real_sigaction || real_sigaction(SIGSEGV, &act, NULL) != 0 || cpuid_trap(1) != 0) {
    fprintf(stderr, "avx2_cpu: this CPU or kernel cannot trap cpuid (no cpuid_fault): nothing is hidden\n");
    exit(3);
  }
}
