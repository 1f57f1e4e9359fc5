/* tosac runner: runs compiled tosac models on raw binary files.
 *
 * Built statically with the cross gcc and run under qemu-user (or on a board).
 * The models are linked in; a generated table (tosac_models[]) lists their
 * entry points, each with the deployable interface
 *     int model_run(const void *inputs[], void *outputs[], void *arena);
 *
 * Usage: runner JOBFILE
 * Each line of JOBFILE is one run:
 *     MODEL ARENA_BYTES N_IN {IN_PATH IN_BYTES}... N_OUT {OUT_PATH OUT_BYTES}...
 * Inputs are read from IN_PATH, outputs written to OUT_PATH (raw bytes).
 * Exit status 0, or 1 with a message naming the failing line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*tosac_model_fn)(const void *inputs[], void *outputs[], void *arena);
extern const tosac_model_fn tosac_models[];
extern const int tosac_model_count;

static void *aligned_buffer(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    memset(p, 0, bytes ? bytes : 64);
    return p;
}

static int fail(long line, const char *what, const char *path) {
    fprintf(stderr, "runner: job line %ld: %s%s%s\n", line, what, path ? " " : "", path ? path : "");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: runner JOBFILE\n");
        return 2;
    }
    FILE *job = fopen(argv[1], "r");
    if (!job) return fail(0, "cannot open job file", argv[1]);
    int model, n_in, n_out;
    size_t arena_bytes;
    long line = 0;
    char path[4096];
    while (fscanf(job, "%d %zu %d", &model, &arena_bytes, &n_in) == 3) {
        line++;
        if (model < 0 || model >= tosac_model_count) return fail(line, "no such model", NULL);
        const void **inputs = calloc((size_t)n_in + 1, sizeof(void *));
        for (int i = 0; i < n_in; i++) {
            size_t bytes;
            if (fscanf(job, "%4095s %zu", path, &bytes) != 2) return fail(line, "malformed input", NULL);
            void *buf = aligned_buffer(bytes);
            FILE *f = fopen(path, "rb");
            if (!buf || !f || fread(buf, 1, bytes, f) != bytes) return fail(line, "cannot read", path);
            fclose(f);
            inputs[i] = buf;
        }
        if (fscanf(job, "%d", &n_out) != 1) return fail(line, "malformed output count", NULL);
        void **outputs = calloc((size_t)n_out + 1, sizeof(void *));
        char (*out_paths)[4096] = calloc((size_t)n_out + 1, 4096);
        size_t *out_bytes = calloc((size_t)n_out + 1, sizeof(size_t));
        for (int i = 0; i < n_out; i++) {
            if (fscanf(job, "%4095s %zu", out_paths[i], &out_bytes[i]) != 2) return fail(line, "malformed output", NULL);
            outputs[i] = aligned_buffer(out_bytes[i]);
        }
        void *arena = aligned_buffer(arena_bytes);
        if (tosac_models[model](inputs, outputs, arena) != 0) return fail(line, "model returned an error", NULL);
        for (int i = 0; i < n_out; i++) {
            FILE *f = fopen(out_paths[i], "wb");
            if (!f || fwrite(outputs[i], 1, out_bytes[i], f) != out_bytes[i]) return fail(line, "cannot write", out_paths[i]);
            fclose(f);
            free(outputs[i]);
        }
        for (int i = 0; i < n_in; i++) free((void *)inputs[i]);
        free(inputs); free(outputs); free(out_paths); free(out_bytes); free(arena);
    }
    fclose(job);
    return 0;
}
