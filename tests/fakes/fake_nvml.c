/*
 * A fake libnvidia-ml.so.1 for tests: the real pynvml ctypes code runs against it.
 *
 * The topology comes from the file named by DS01_FAKE_NVML_TOPOLOGY, read at every init:
 *   driver <version>
 *   init_error <nvml return code>             (nvmlInit fails with it)
 *   gpu <uuid> <memory_mib> <util|-> <mig 0|1> <slices> <name ...>
 *   mig <index> <uuid> <gi> <ci> <gi_slices> <ci_slices> <memory_mib> <used_mib> <profile>
 *   proc <pid> <used_mib> <gi> <ci>
 * `mig` and `proc` lines belong to the `gpu` line above them.
 *
 * Build: gcc -shared -fPIC -o libnvidia-ml.so.1 fake_nvml.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GPUS 16
#define MAX_MIGS 7
#define MAX_PROCS 32

enum {
    SUCCESS = 0, ERR_UNINITIALIZED = 1, ERR_INVALID_ARGUMENT = 2, ERR_NOT_SUPPORTED = 3,
    ERR_NOT_FOUND = 6, ERR_INSUFFICIENT_SIZE = 7, ERR_UNKNOWN = 999
};

typedef struct device {
    int is_mig, gpu, mig;
} device;
typedef device *nvmlDevice_t;

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct {
    unsigned int multiprocessorCount, sharedCopyEngineCount, sharedDecoderCount, sharedEncoderCount,
        sharedJpegCount, sharedOfaCount, gpuInstanceSliceCount, computeInstanceSliceCount;
    unsigned long long memorySizeMB;
} nvmlDeviceAttributes_t;
typedef struct {
    unsigned int id, isP2pSupported, sliceCount, instanceCount, multiprocessorCount, copyEngineCount,
        decoderCount, encoderCount, jpegCount, ofaCount;
    unsigned long long memorySizeMB;
} nvmlGpuInstanceProfileInfo_t;

typedef struct {
    int present;
    char uuid[96], profile[32];
    unsigned int gi, ci, gi_slices, ci_slices;
    unsigned long long memory_mib, used_mib;
    device handle;
} mig_t;

typedef struct {
    char uuid[96], name[96];
    unsigned long long memory_mib;
    int util, mig_enabled;
    unsigned int slices;
    mig_t migs[MAX_MIGS];
    nvmlProcessInfo_t procs[MAX_PROCS];
    unsigned int nprocs;
    device handle;
} gpu_t;

static gpu_t gpus[MAX_GPUS];
static unsigned int ngpus;
static char driver[80] = "550.54.15";
static int init_error, initialized;

static int load_topology(void) {
    const char *path = getenv("DS01_FAKE_NVML_TOPOLOGY");
    char line[512];
    FILE *f;
    memset(gpus, 0, sizeof gpus);
    ngpus = 0;
    init_error = 0;
    if (!path || !(f = fopen(path, "r")))
        return ERR_UNKNOWN;
    while (fgets(line, sizeof line, f)) {
        gpu_t *g = ngpus ? &gpus[ngpus - 1] : NULL;
        char util[16];
        int n = 0;
        line[strcspn(line, "\n")] = 0;
        if (sscanf(line, "driver %79s", driver) == 1)
            continue;
        if (sscanf(line, "init_error %d", &init_error) == 1)
            continue;
        if (ngpus < MAX_GPUS && strncmp(line, "gpu ", 4) == 0) {
            g = &gpus[ngpus];
            if (sscanf(line, "gpu %95s %llu %15s %d %u %n", g->uuid, &g->memory_mib, util, &g->mig_enabled,
                       &g->slices, &n) >= 5 && n > 0) {
                snprintf(g->name, sizeof g->name, "%s", line + n);
                g->util = strcmp(util, "-") == 0 ? -1 : atoi(util);
                g->handle = (device){0, (int)ngpus, -1};
                ngpus++;
            }
        } else if (g && strncmp(line, "mig ", 4) == 0) {
            unsigned int i;
            mig_t m = {0};
            if (sscanf(line, "mig %u %95s %u %u %u %u %llu %llu %31s", &i, m.uuid, &m.gi, &m.ci, &m.gi_slices,
                       &m.ci_slices, &m.memory_mib, &m.used_mib, m.profile) == 9 && i < MAX_MIGS) {
                m.present = 1;
                m.handle = (device){1, (int)(g - gpus), (int)i};
                g->migs[i] = m;
            }
        } else if (g && g->nprocs < MAX_PROCS && strncmp(line, "proc ", 5) == 0) {
            nvmlProcessInfo_t *p = &g->procs[g->nprocs];
            unsigned long long used;
            if (sscanf(line, "proc %u %llu %u %u", &p->pid, &used, &p->gpuInstanceId, &p->computeInstanceId) == 4) {
                p->usedGpuMemory = used * 1024 * 1024;
                g->nprocs++;
            }
        }
    }
    fclose(f);
    return init_error;
}

static gpu_t *gpu_of(nvmlDevice_t d) {
    return (d && d->gpu >= 0 && (unsigned int)d->gpu < ngpus) ? &gpus[d->gpu] : NULL;
}

static mig_t *mig_of(nvmlDevice_t d) {
    gpu_t *g = gpu_of(d);
    return (g && d->is_mig) ? &g->migs[d->mig] : NULL;
}

#define NEED_INIT() do { if (!initialized) return ERR_UNINITIALIZED; } while (0)
#define NEED_GPU(g, d) gpu_t *g = gpu_of(d); if (!g) return ERR_INVALID_ARGUMENT

int nvmlInitWithFlags(unsigned int flags) {
    int rc;
    const char *log = getenv("DS01_FAKE_NVML_INIT_LOG");
    (void)flags;
    if (log) {  /* one line per initialisation, so a test can count them */
        FILE *f = fopen(log, "a");
        if (f) { fputs("init\n", f); fclose(f); }
    }
    rc = load_topology();
    initialized = rc == SUCCESS;
    return rc;
}
int nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
int nvmlInit(void) { return nvmlInitWithFlags(0); }
int nvmlShutdown(void) {
    NEED_INIT();
    initialized = 0;
    return SUCCESS;
}

const char *nvmlErrorString(int result) {
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 6: return "Not Found";
    case 7: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 15: return "GPU is lost";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    default: return "Unknown Error";
    }
}

int nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    NEED_INIT();
    if (strlen(driver) + 1 > length) return ERR_INSUFFICIENT_SIZE;
    strcpy(version, driver);
    return SUCCESS;
}

int nvmlDeviceGetCount_v2(unsigned int *count) {
    NEED_INIT();
    *count = ngpus;
    return SUCCESS;
}
int nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    NEED_INIT();
    if (index >= ngpus) return ERR_INVALID_ARGUMENT;
    *device = &gpus[index].handle;
    return SUCCESS;
}
int nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

static int copy_string(char *out, unsigned int length, const char *value) {
    if (strlen(value) + 1 > length) return ERR_INSUFFICIENT_SIZE;
    strcpy(out, value);
    return SUCCESS;
}

int nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    NEED_INIT();
    NEED_GPU(g, d);
    return copy_string(uuid, length, d->is_mig ? g->migs[d->mig].uuid : g->uuid);
}

int nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    char full[160];
    NEED_INIT();
    NEED_GPU(g, d);
    if (!d->is_mig) return copy_string(name, length, g->name);
    snprintf(full, sizeof full, "%s MIG %s", g->name, g->migs[d->mig].profile);
    return copy_string(name, length, full);
}

int nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *memory) {
    mig_t *m;
    unsigned long long used = 0;
    unsigned int i;
    NEED_INIT();
    NEED_GPU(g, d);
    m = mig_of(d);
    if (m) {
        memory->total = m->memory_mib * 1024 * 1024;
        used = m->used_mib * 1024 * 1024;
    } else {
        memory->total = g->memory_mib * 1024 * 1024;
        for (i = 0; i < g->nprocs; i++) used += g->procs[i].usedGpuMemory;
    }
    memory->used = used;
    memory->free = memory->total - used;
    return SUCCESS;
}

int nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *utilization) {
    NEED_INIT();
    NEED_GPU(g, d);
    /* like the real driver: no utilisation on MIG devices, nor on a GPU split into them */
    if (d->is_mig || g->mig_enabled || g->util < 0) return ERR_NOT_SUPPORTED;
    utilization->gpu = (unsigned int)g->util;
    utilization->memory = 0;
    return SUCCESS;
}

int nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current, unsigned int *pending) {
    NEED_INIT();
    NEED_GPU(g, d);
    if (d->is_mig) return ERR_NOT_SUPPORTED;
    *current = *pending = (unsigned int)g->mig_enabled;
    return SUCCESS;
}

int nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *count) {
    NEED_INIT();
    NEED_GPU(g, d);
    *count = g->mig_enabled && !d->is_mig ? MAX_MIGS : 0;
    return SUCCESS;
}

int nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int index, nvmlDevice_t *mig) {
    NEED_INIT();
    NEED_GPU(g, d);
    if (d->is_mig || !g->mig_enabled || index >= MAX_MIGS) return ERR_INVALID_ARGUMENT;
    if (!g->migs[index].present) return ERR_NOT_FOUND;
    *mig = &g->migs[index].handle;
    return SUCCESS;
}

int nvmlDeviceIsMigDeviceHandle(nvmlDevice_t d, unsigned int *is_mig) {
    NEED_INIT();
    *is_mig = d && d->is_mig;
    return SUCCESS;
}

int nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t mig, nvmlDevice_t *device) {
    NEED_INIT();
    NEED_GPU(g, mig);
    if (!mig->is_mig) return ERR_INVALID_ARGUMENT;
    *device = &g->handle;
    return SUCCESS;
}

int nvmlDeviceGetGpuInstanceId(nvmlDevice_t d, unsigned int *id) {
    mig_t *m;
    NEED_INIT();
    if (!(m = mig_of(d))) return ERR_NOT_SUPPORTED;
    *id = m->gi;
    return SUCCESS;
}

int nvmlDeviceGetComputeInstanceId(nvmlDevice_t d, unsigned int *id) {
    mig_t *m;
    NEED_INIT();
    if (!(m = mig_of(d))) return ERR_NOT_SUPPORTED;
    *id = m->ci;
    return SUCCESS;
}

int nvmlDeviceGetAttributes_v2(nvmlDevice_t d, nvmlDeviceAttributes_t *attrs) {
    mig_t *m;
    NEED_INIT();
    if (!(m = mig_of(d))) return ERR_NOT_SUPPORTED;
    memset(attrs, 0, sizeof *attrs);
    attrs->gpuInstanceSliceCount = m->gi_slices;
    attrs->computeInstanceSliceCount = m->ci_slices;
    attrs->multiprocessorCount = 14 * m->ci_slices;
    attrs->memorySizeMB = m->memory_mib;
    return SUCCESS;
}

int nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t d, unsigned int profile, nvmlGpuInstanceProfileInfo_t *info) {
    static const unsigned int slices_of[] = {1, 2, 3, 4, 7, 8, 6};
    NEED_INIT();
    NEED_GPU(g, d);
    if (d->is_mig || !g->mig_enabled) return ERR_NOT_SUPPORTED;
    if (profile >= sizeof slices_of / sizeof *slices_of || slices_of[profile] > g->slices)
        return ERR_NOT_SUPPORTED;
    memset(info, 0, sizeof *info);
    info->id = profile;
    info->sliceCount = slices_of[profile];
    info->instanceCount = g->slices / slices_of[profile];
    info->memorySizeMB = g->memory_mib * slices_of[profile] / g->slices;
    return SUCCESS;
}

int nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *infos) {
    nvmlProcessInfo_t found[MAX_PROCS];
    unsigned int i, n = 0;
    mig_t *m;
    NEED_INIT();
    NEED_GPU(g, d);
    m = mig_of(d);
    for (i = 0; i < g->nprocs; i++)
        if (!m || (g->procs[i].gpuInstanceId == m->gi && g->procs[i].computeInstanceId == m->ci))
            found[n++] = g->procs[i];
    if (n == 0) {
        *count = 0;
        return SUCCESS;
    }
    if (!infos || *count < n) {
        *count = n;
        return ERR_INSUFFICIENT_SIZE;
    }
    memcpy(infos, found, n * sizeof *found);
    *count = n;
    return SUCCESS;
}
