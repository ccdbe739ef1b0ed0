/*
 * The two per-weight passes of a clustered training step, as TensorFlow CPU ops (TensorFlow's C kernel API).
 *
 *   EdgeclustNearest(w, sorted_centroids, start) -> (value, position)
 *       each weight's nearest centroid and its global sorted position (channel * k + rank), ties to the
 *       smaller centroid: exactly kernels._nearest_by_comparison_ops and kernels._refresh_positions_ops.
 *       With `start` (one valid position per weight) a local search from there: O(1) per weight, since a
 *       training step moves a weight very little; with an empty `start`, a binary search over the midpoints.
 *   EdgeclustClusterSums(values, positions) -> sums (bins)
 *       sum of the values of each position: what tf.math.unsorted_segment_sum computes.
 *
 * Why: XLA's CPU gather costs ~1.1 ns a weight and its scatter ~1.9 ns on one thread, against ~10 ns a
 * weight for a whole plain Dense step at batch 64; a local search reads four midpoints, in L1.
 * The sums add fixed chunks of interleaved partial sums in order: the same result on every run.
 * Weight w at flat index i belongs to channel (i / inner) % channels: the channel axes of the weight are
 * contiguous, `inner` is the product of the dimensions after them (1 when they are the last ones).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "tensorflow/c/kernels.h"
/* ops.h declares these structs for C++ only */
typedef struct TF_DimensionHandle TF_DimensionHandle;
typedef struct TF_OpDefinitionBuilder TF_OpDefinitionBuilder;
typedef struct TF_ShapeHandle TF_ShapeHandle;
typedef struct TF_ShapeInferenceContext TF_ShapeInferenceContext;
#include "tensorflow/c/ops.h"
#include "tensorflow/c/tf_status.h"
#include "tensorflow/c/tf_tensor.h"

/* Both ops run on the calling thread: TensorFlow already runs independent ops side by side on every core,
 * and in a training step on 2 cores two threads of ours made the clustered MLP step no faster (0.02-0.05x
 * slower in one measurement). */
enum { CHUNK = 1 << 16 }; /* values per partial sum of EdgeclustClusterSums */

/* ---- EdgeclustNearest --------------------------------------------------------------------------------- */

typedef struct {
    const float *w;
    const float *sorted;  /* (channels, k) */
    const float *bounds;  /* (channels, span): -inf, -inf, the k - 1 midpoints (s[j] + s[j + 1]) / 2, +inf... */
    const int32_t *start; /* NULL: binary search */
    float *value;
    int32_t *position;
    int64_t n;
    int64_t inner;
    int32_t channels;
    int32_t k;
    int32_t span; /* row length of `bounds`: one more than a power of two >= k + 2 (+inf padding) */
} nearest_job_t;

/* Number of midpoints strictly below w (searchsorted side="left"): the rank of w's nearest centroid.
 * Branch-free binary lifting over mids[0 .. size - 2], size a power of two (+inf beyond the k - 1 real ones). */
static inline int32_t rank_by_search(const float *restrict mids, int32_t size, float w)
{
    int32_t r = 0;
    for (int32_t h = size / 2; h >= 1; h /= 2) {
        r += h & -(int32_t)(mids[r + h - 1] < w);
    }
    return r;
}

/* The rank of x's nearest centroid from rank r (valid), by comparing x with the four bounds around r one by
 * one: moved by one if x crossed a midpoint since, searched if it moved further or lies on a bound beyond. */
static int32_t rank_near(const float *restrict row, int32_t span, int32_t r, float x)
{
    const float below = row[r], lo = row[r + 1], hi = row[r + 2], above = row[r + 3];
    if (x > above || x <= below) {
        return rank_by_search(row + 2, span - 1, x);
    }
    return r + (int32_t)(x > hi) - (int32_t)(x <= lo);
}

#if defined(__SSE__)
enum { FAR = 8 };
/* The step of the rank, by which of the four ascending bounds around it x lies above (bit j: x > bound j):
 * 0b0011 stays (x in (lo, hi]), 0b0111 one up, 0b0001 one down; 0, 0b1111 (beyond a neighbour) and what
 * NaN gives are FAR, left to rank_near. */
static const int8_t step_of_mask[16] = {FAR, -1, FAR, 0, FAR, FAR, FAR, 1, FAR, FAR, FAR, FAR, FAR, FAR, FAR, FAR};
#endif

/* The rank of x's nearest centroid, from rank `s` (any value): what rank_near gives. On x86 the four bounds
 * are compared in one SSE instruction and the step read from a table: 0.45-0.6x the time of rank_near's
 * compares and branches (a C harness over 4M weights, k = 32 and 256, one Zen 3 core). The search stays
 * one weight at a time: there, AVX2 gathers of the bounds were slower than these scalar loads. */
static inline int32_t rank_from(const float *restrict row, int32_t k, int32_t span, int32_t s, float x)
{
    const int32_t r = (uint32_t)s < (uint32_t)k ? s : 0;
#if defined(__SSE__)
    const int step = step_of_mask[_mm_movemask_ps(_mm_cmpgt_ps(_mm_set1_ps(x), _mm_loadu_ps(row + r)))];
    if (__builtin_expect(step != FAR, 1)) {
        return r + step;
    }
#endif
    return rank_near(row, span, r, x);
}

static void nearest_all(const nearest_job_t *job)
{
    const float *restrict w = job->w;
    const float *restrict sorted = job->sorted;
    const float *restrict all_bounds = job->bounds;
    const int32_t *restrict start = job->start;
    float *restrict value = job->value;
    int32_t *restrict position = job->position;
    const int32_t k = job->k, span = job->span, channels = job->channels;
    const int64_t inner = job->inner;
    const int64_t n = job->n;
    if (channels == 1) { /* one table for the whole tensor */
        for (int64_t i = 0; i < n; ++i) {
            const int32_t r = start != NULL ? rank_from(all_bounds, k, span, start[i], w[i])
                                            : rank_by_search(all_bounds + 2, span - 1, w[i]);
            value[i] = sorted[r];
            position[i] = r;
        }
        return;
    }
    int32_t channel = 0;
    int64_t within = 0; /* position inside the run of `inner` weights of one channel */
    for (int64_t i = 0; i < n; ++i) {
        const float *restrict bounds = all_bounds + (int64_t)channel * span;
        const int32_t base = channel * k;
        const int32_t r = start != NULL ? rank_from(bounds, k, span, start[i] - base, w[i])
                                        : rank_by_search(bounds + 2, span - 1, w[i]);
        value[i] = sorted[base + r];
        position[i] = base + r;
        if (++within == inner) {
            within = 0;
            if (++channel == channels) {
                channel = 0;
            }
        }
    }
}

/* ---- EdgeclustClusterSums ----------------------------------------------------------------------------- */

enum { LANES = 4 }; /* interleaved partial sums: consecutive values of one cluster do not wait on each other */

typedef struct {
    const float *values;
    const int32_t *positions;
    float *partial; /* (n_chunks, bins) */
    int64_t n;
    int64_t chunk_len;
    int32_t bins;
} sums_job_t;

static void sums_chunk(const sums_job_t *job, int64_t chunk)
{
    const float *restrict values = job->values;
    const int32_t *restrict positions = job->positions;
    const int32_t bins = job->bins;
    float *restrict sums = job->partial + chunk * LANES * bins;
    const int64_t first = chunk * job->chunk_len;
    const int64_t last = first + job->chunk_len < job->n ? first + job->chunk_len : job->n;
    memset(sums, 0, sizeof(float) * (size_t)bins * LANES);
    int64_t i = first;
    for (; i + LANES <= last; i += LANES) {
        for (int lane = 0; lane < LANES; ++lane) {
            const uint32_t p = (uint32_t)positions[i + lane];
            if (p < (uint32_t)bins) {
                sums[lane * bins + p] += values[i + lane];
            }
        }
    }
    for (; i < last; ++i) {
        const uint32_t p = (uint32_t)positions[i];
        if (p < (uint32_t)bins) {
            sums[p] += values[i];
        }
    }
}

/* ---- TensorFlow glue ---------------------------------------------------------------------------------- */

typedef struct {
    int64_t inner;
    int64_t bins;
} attrs_t;

static void *create_kernel(TF_OpKernelConstruction *ctx)
{
    attrs_t *attrs = (attrs_t *)calloc(1, sizeof(attrs_t));
    TF_Status *status = TF_NewStatus();
    const char *name = TF_OpKernelConstruction_HasAttr(ctx, "inner", status) ? "inner" : "bins";
    int64_t value = 0;
    TF_OpKernelConstruction_GetAttrInt64(ctx, name, &value, status);
    if (TF_GetCode(status) != TF_OK) {
        TF_OpKernelConstruction_Failure(ctx, status);
    }
    if (name[0] == 'i') {
        attrs->inner = value < 1 ? 1 : value;
    } else {
        attrs->bins = value;
    }
    TF_DeleteStatus(status);
    return attrs;
}

static void delete_kernel(void *kernel) { free(kernel); }

static void fail(TF_OpKernelContext *ctx, TF_Status *status, const char *message)
{
    TF_SetStatus(status, TF_INVALID_ARGUMENT, message);
    TF_OpKernelContext_Failure(ctx, status);
}

static void dims_of(const TF_Tensor *t, int64_t *dims, int *rank)
{
    *rank = TF_NumDims(t);
    for (int d = 0; d < *rank; ++d) {
        dims[d] = TF_Dim(t, d);
    }
}

static void compute_nearest(void *kernel, TF_OpKernelContext *ctx)
{
    const attrs_t *attrs = (const attrs_t *)kernel;
    TF_Status *status = TF_NewStatus();
    TF_Tensor *w = NULL, *sorted = NULL, *start = NULL, *value = NULL, *position = NULL;
    float *bounds = NULL;
    TF_GetInput(ctx, 0, &w, status);
    if (TF_GetCode(status) == TF_OK) TF_GetInput(ctx, 1, &sorted, status);
    if (TF_GetCode(status) == TF_OK) TF_GetInput(ctx, 2, &start, status);
    if (TF_GetCode(status) != TF_OK) {
        TF_OpKernelContext_Failure(ctx, status);
        goto done;
    }
    const int64_t n = TF_TensorElementCount(w);
    if (TF_NumDims(sorted) != 2 || TF_Dim(sorted, 1) < 1) {
        fail(ctx, status, "EdgeclustNearest: sorted_centroids must be (channels, k)");
        goto done;
    }
    const int32_t channels = (int32_t)TF_Dim(sorted, 0), k = (int32_t)TF_Dim(sorted, 1);
    const int64_t n_start = TF_TensorElementCount(start);
    if (n_start != 0 && n_start != n) {
        fail(ctx, status, "EdgeclustNearest: start must hold one position per weight, or none");
        goto done;
    }
    if (channels < 1 || n % ((int64_t)channels * attrs->inner) != 0) {
        fail(ctx, status, "EdgeclustNearest: the weight does not divide into the centroids' channels");
        goto done;
    }
    int64_t dims[8];
    int rank = 0;
    if (TF_NumDims(w) > 8) {
        fail(ctx, status, "EdgeclustNearest: weights of rank above 8 are not supported");
        goto done;
    }
    dims_of(w, dims, &rank);
    value = TF_AllocateOutput(ctx, 0, TF_FLOAT, dims, rank, sizeof(float) * (size_t)n, status);
    if (TF_GetCode(status) == TF_OK)
        position = TF_AllocateOutput(ctx, 1, TF_INT32, dims, rank, sizeof(int32_t) * (size_t)n, status);
    if (TF_GetCode(status) != TF_OK) {
        TF_OpKernelContext_Failure(ctx, status);
        goto done;
    }
    if (n == 0) {
        goto done;
    }
    const float *s = (const float *)TF_TensorData(sorted);
    int32_t size = 2; /* a power of two >= k + 2: the midpoints searched, padded with +inf */
    while (size < k + 2) {
        size *= 2;
    }
    const int32_t span = size + 1;
    bounds = (float *)malloc(sizeof(float) * (size_t)channels * (size_t)span);
    if (bounds == NULL) {
        fail(ctx, status, "EdgeclustNearest: out of memory");
        goto done;
    }
    for (int32_t c = 0; c < channels; ++c) {
        float *row = bounds + (int64_t)c * span;
        const float *sc = s + (int64_t)c * k;
        row[0] = row[1] = -INFINITY;
        for (int32_t j = 0; j + 1 < k; ++j) {
            row[j + 2] = (sc[j + 1] + sc[j]) / 2.0f;
        }
        for (int32_t j = k + 1; j < span; ++j) {
            row[j] = INFINITY;
        }
    }
    nearest_job_t job = {
        .w = (const float *)TF_TensorData(w),
        .sorted = s,
        .bounds = bounds,
        .start = n_start ? (const int32_t *)TF_TensorData(start) : NULL,
        .value = (float *)TF_TensorData(value),
        .position = (int32_t *)TF_TensorData(position),
        .n = n,
        .inner = attrs->inner,
        .channels = channels,
        .k = k,
        .span = span,
    };
    nearest_all(&job);
done:
    free(bounds);
    TF_DeleteTensor(w);
    TF_DeleteTensor(sorted);
    TF_DeleteTensor(start);
    TF_DeleteTensor(value);
    TF_DeleteTensor(position);
    TF_DeleteStatus(status);
}

static void compute_sums(void *kernel, TF_OpKernelContext *ctx)
{
    const attrs_t *attrs = (const attrs_t *)kernel;
    TF_Status *status = TF_NewStatus();
    TF_Tensor *values = NULL, *positions = NULL, *sums = NULL;
    float *partial = NULL;
    TF_GetInput(ctx, 0, &values, status);
    if (TF_GetCode(status) == TF_OK) TF_GetInput(ctx, 1, &positions, status);
    if (TF_GetCode(status) != TF_OK) {
        TF_OpKernelContext_Failure(ctx, status);
        goto done;
    }
    const int64_t n = TF_TensorElementCount(values);
    const int32_t bins = (int32_t)attrs->bins;
    if (TF_TensorElementCount(positions) != n || bins < 1) {
        fail(ctx, status, "EdgeclustClusterSums: one position per value, and at least one bin");
        goto done;
    }
    int64_t dims[1] = {bins};
    sums = TF_AllocateOutput(ctx, 0, TF_FLOAT, dims, 1, sizeof(float) * (size_t)bins, status);
    if (TF_GetCode(status) != TF_OK) {
        TF_OpKernelContext_Failure(ctx, status);
        goto done;
    }
    float *out = (float *)TF_TensorData(sums);
    memset(out, 0, sizeof(float) * (size_t)bins);
    /* chunks long enough that their partial sums cost at most a quarter of the values read */
    const int64_t least = 4 * LANES * (int64_t)bins;
    const int64_t chunk_len = CHUNK > least ? CHUNK : least;
    const int64_t n_chunks = (n + chunk_len - 1) / chunk_len;
    if (n_chunks == 0) {
        goto done;
    }
    partial = (float *)malloc(sizeof(float) * (size_t)n_chunks * LANES * (size_t)bins);
    if (partial == NULL) {
        fail(ctx, status, "EdgeclustClusterSums: out of memory");
        goto done;
    }
    sums_job_t job = {
        .values = (const float *)TF_TensorData(values),
        .positions = (const int32_t *)TF_TensorData(positions),
        .partial = partial,
        .n = n,
        .chunk_len = chunk_len,
        .bins = bins,
    };
    for (int64_t c = 0; c < n_chunks; ++c) {
        sums_chunk(&job, c);
    }
    for (int64_t c = 0; c < n_chunks * LANES; ++c) { /* in order: the same sums on every run */
        for (int32_t b = 0; b < bins; ++b) {
            out[b] += partial[c * bins + b];
        }
    }
done:
    free(partial);
    TF_DeleteTensor(values);
    TF_DeleteTensor(positions);
    TF_DeleteTensor(sums);
    TF_DeleteStatus(status);
}

static void same_shape_twice(TF_ShapeInferenceContext *ctx, TF_Status *status)
{
    TF_ShapeHandle *shape = TF_NewShapeHandle();
    TF_ShapeInferenceContextGetInput(ctx, 0, shape, status);
    if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextSetOutput(ctx, 0, shape, status);
    if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextSetOutput(ctx, 1, shape, status);
    TF_DeleteShapeHandle(shape);
}

static void vector_of_unknown_size(TF_ShapeInferenceContext *ctx, TF_Status *status)
{
    TF_ShapeHandle *shape = TF_ShapeInferenceContextVectorFromSize(ctx, -1);
    TF_ShapeInferenceContextSetOutput(ctx, 0, shape, status);
    TF_DeleteShapeHandle(shape);
}

static void register_op(const char *name, const char *const *inputs, const char *const *outputs, const char *attr,
                        void (*shape_fn)(TF_ShapeInferenceContext *, TF_Status *),
                        void (*compute)(void *, TF_OpKernelContext *), TF_Status *status)
{
    TF_OpDefinitionBuilder *op = TF_NewOpDefinitionBuilder(name);
    for (; *inputs != NULL; ++inputs) TF_OpDefinitionBuilderAddInput(op, *inputs);
    for (; *outputs != NULL; ++outputs) TF_OpDefinitionBuilderAddOutput(op, *outputs);
    TF_OpDefinitionBuilderAddAttr(op, attr);
    TF_OpDefinitionBuilderSetShapeInferenceFunction(op, shape_fn);
    TF_RegisterOpDefinition(op, status);
    if (TF_GetCode(status) != TF_OK) return;
    TF_KernelBuilder *kernel = TF_NewKernelBuilder(name, "CPU", create_kernel, compute, delete_kernel);
    TF_RegisterKernelBuilder(name, kernel, status);
}

__attribute__((constructor)) static void register_ops(void)
{
    static const char *const nearest_in[] = {"w: float", "sorted_centroids: float", "start: int32", NULL};
    static const char *const nearest_out[] = {"value: float", "position: int32", NULL};
    static const char *const sums_in[] = {"values: float", "positions: int32", NULL};
    static const char *const sums_out[] = {"sums: float", NULL};
    TF_Status *status = TF_NewStatus();
    register_op("EdgeclustNearest", nearest_in, nearest_out, "inner: int = 1", same_shape_twice, compute_nearest,
                status);
    if (TF_GetCode(status) == TF_OK) {
        register_op("EdgeclustClusterSums", sums_in, sums_out, "bins: int", vector_of_unknown_size, compute_sums,
                    status);
    }
    TF_DeleteStatus(status);
}
