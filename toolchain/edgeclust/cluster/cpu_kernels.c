/*
 * The two per-weight passes of a clustered training step, as TensorFlow CPU ops (TensorFlow's C kernel API).
 *
 *   EdgeclustNearest(w, sorted_centroids, start) -> (value, position)
 *       each weight's nearest centroid and its global sorted position (channel * k + rank), ties to the
 *       smaller centroid: exactly kernels._nearest_by_comparison_ops and kernels._refresh_positions_ops.
 *       With `start` (one valid position per weight) a local search from there: O(1) per weight, since a
 *       training step moves a weight very little; with an empty `start`, a binary search over the midpoints.
 *       One table (channels == 1) goes 8 or 16 weights at a time where the CPU has AVX2 or AVX-512F (the
 *       vector paths below); per channel, and beyond their table sizes, one weight at a time.
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
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_VECTOR_PATHS 1 /* compiled for any x86-64; taken where the CPU has AVX2 or AVX-512F (checked at load) */
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

/* ---- EdgeclustNearest's vector paths (x86-64) --------------------------------------------------------- */

/* Where one table serves the whole tensor (channels == 1) and positions are stored, every weight's rank is
 * checked against its interval 8 or 16 weights at a time, with the table in registers: a permute reads
 * lo[r], hi[r] and centroid[r] for every lane at once (on Zen 4 a 16-lane gather cost as much as 16 scalar
 * loads, so no gathers). lo[r] < x <= hi[r] keeps rank r, the common case in training; a weight outside
 * its interval goes through rank_from. One million weights, one Zen 4 core, 0.2% of them moved (a C
 * harness): the scalar loop 1.35 ns a weight whatever k; AVX-512 0.3 ns at k <= 64, 0.45 at 128, 0.8 at
 * 256; AVX2 0.25 ns at k <= 8, 0.5 at 32, 0.8 at 64 (beyond 64 its blend tree costs what it saves). With 2%
 * of the weights perturbed by 0.6 of a cluster's width at k = 32: AVX-512 0.3, AVX2 0.65; with 30% (some
 * 18% crossing a midpoint each step, far more than fine-tuning moves) 1.05 and 1.95 against 1.4 scalar. */
#if defined(HAVE_VECTOR_PATHS)
typedef enum { PATH_SCALAR, PATH_AVX2, PATH_AVX512 } vector_path_t;

/* The best path this CPU has, set when the library loads; EDGECLUST_CPU_KERNELS=scalar|avx2 caps it (tests
 * and benchmarks compare the paths on one machine). */
static vector_path_t vector_path = PATH_SCALAR;

enum { MAX_AVX512_K = 256, MAX_AVX2_K = 64, MAX_AVX512_SEARCH_K = 32, MAX_AVX2_SEARCH_K = 16 };

#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2")))
#define INLINE __attribute__((always_inline)) static inline

/* The arrays of one table's search, as restrict pointers: the table stays in registers, and nothing is
 * read again after a store (in a C harness, reading them through nearest_job_t cost up to 1.4x the time). */
#define VECTOR_PARAMS                                                                                                \
    const float *restrict w, const int32_t *restrict start, float *restrict value, int32_t *restrict position,     \
        int64_t n, const float *restrict lanes, const float *restrict bounds, const float *restrict sorted, int32_t k, \
        int32_t span
#define VECTOR_ARGS(job, lanes) \
    (job)->w, (job)->start, (job)->value, (job)->position, (job)->n, lanes, (job)->bounds, (job)->sorted, (job)->k, \
        (job)->span

/* The weights of a group outside their interval (bit j of `moved`: weight first + j moved past a midpoint,
 * or started from an invalid position and lies beyond the first interval): rank_from one by one, over what
 * the vector path stored for them. */
INLINE void fix_moved(const float *restrict w, const int32_t *restrict start, float *restrict value,
                      int32_t *restrict position, const float *restrict bounds, const float *restrict sorted,
                      int32_t k, int32_t span, int64_t first, uint32_t moved)
{
    for (; moved != 0; moved &= moved - 1) {
        const int64_t j = first + __builtin_ctz(moved);
        const int32_t rank = rank_from(bounds, k, span, start[j], w[j]);
        value[j] = sorted[rank];
        position[j] = rank;
    }
}

/* table[r] for 16 ranks below 32 * chunks: a two-register permute per 32 entries, then blends on bits 5, 6
 * and 7 of r (masks computed once per group: bit5, bit6, bit7). */
AVX512 INLINE __m512 lookup16(const float *restrict table, __m512i r, int chunks, __mmask16 bit5, __mmask16 bit6,
                              __mmask16 bit7)
{
    __m512 part[8];
    for (int c = 0; c < chunks; ++c) {
        part[c] = _mm512_permutex2var_ps(_mm512_loadu_ps(table + 32 * c), r, _mm512_loadu_ps(table + 32 * c + 16));
    }
    for (int c = 0; 2 * c + 1 < chunks; ++c) part[c] = _mm512_mask_blend_ps(bit5, part[2 * c], part[2 * c + 1]);
    for (int c = 0; 4 * c + 3 < chunks; ++c) part[c] = _mm512_mask_blend_ps(bit6, part[2 * c], part[2 * c + 1]);
    if (chunks == 8) part[0] = _mm512_mask_blend_ps(bit7, part[0], part[1]);
    return part[0];
}

/* Weights [0, n - n % 16) from stored positions; lanes: lo, hi and centroid of each rank, 32 * chunks each. */
AVX512 INLINE void nearest_avx512_n(VECTOR_PARAMS, int chunks)
{
    const float *restrict lo_of = lanes;
    const float *restrict hi_of = lanes + 32 * chunks;
    const float *restrict value_of = lanes + 64 * chunks;
    const __m512i k16 = _mm512_set1_epi32(k);
    for (int64_t i = 0; i + 16 <= n; i += 16) {
        __m512i r = _mm512_loadu_si512((const void *)(start + i));
        r = _mm512_maskz_mov_epi32(_mm512_cmplt_epu32_mask(r, k16), r); /* as rank_from: invalid starts at 0 */
        const __mmask16 bit5 = _mm512_test_epi32_mask(r, _mm512_set1_epi32(32));
        const __mmask16 bit6 = _mm512_test_epi32_mask(r, _mm512_set1_epi32(64));
        const __mmask16 bit7 = _mm512_test_epi32_mask(r, _mm512_set1_epi32(128));
        const __m512 x = _mm512_loadu_ps(w + i);
        const __m512 lo = lookup16(lo_of, r, chunks, bit5, bit6, bit7);
        const __m512 hi = lookup16(hi_of, r, chunks, bit5, bit6, bit7);
        const __mmask16 moved = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ) | _mm512_cmp_ps_mask(x, lo, _CMP_LE_OQ);
        _mm512_storeu_ps(value + i, lookup16(value_of, r, chunks, bit5, bit6, bit7));
        _mm512_storeu_si512((void *)(position + i), r);
        if (__builtin_expect(moved != 0, 0)) {
            fix_moved(w, start, value, position, bounds, sorted, k, span, i, moved);
        }
    }
}

/* nearest_avx512_n with the number of chunks a constant (its loops unrolled). */
AVX512 static void nearest_avx512(VECTOR_PARAMS, int chunks)
{
    switch (chunks) {
    case 1: nearest_avx512_n(w, start, value, position, n, lanes, bounds, sorted, k, span, 1); break;
    case 2: nearest_avx512_n(w, start, value, position, n, lanes, bounds, sorted, k, span, 2); break;
    case 4: nearest_avx512_n(w, start, value, position, n, lanes, bounds, sorted, k, span, 4); break;
    default: nearest_avx512_n(w, start, value, position, n, lanes, bounds, sorted, k, span, 8); break;
    }
}

/* table[r] for 8 ranks below 8 * pieces: a one-register permute per 8 entries, then blends on bits 3, 4
 * and 5 of r (each moved to the sign bit, which blendv reads). */
AVX2 INLINE __m256 lookup8(const float *restrict table, __m256i r, int pieces, __m256 bit3, __m256 bit4,
                           __m256 bit5)
{
    __m256 part[8];
    for (int c = 0; c < pieces; ++c) part[c] = _mm256_permutevar8x32_ps(_mm256_loadu_ps(table + 8 * c), r);
    for (int c = 0; 2 * c + 1 < pieces; ++c) part[c] = _mm256_blendv_ps(part[2 * c], part[2 * c + 1], bit3);
    for (int c = 0; 4 * c + 3 < pieces; ++c) part[c] = _mm256_blendv_ps(part[2 * c], part[2 * c + 1], bit4);
    if (pieces == 8) part[0] = _mm256_blendv_ps(part[0], part[1], bit5);
    return part[0];
}

/* Weights [0, n - n % 8) from stored positions; lanes: lo, hi and centroid of each rank, 8 * pieces each. */
AVX2 INLINE void nearest_avx2_n(VECTOR_PARAMS, int pieces)
{
    const float *restrict lo_of = lanes;
    const float *restrict hi_of = lanes + 8 * pieces;
    const float *restrict value_of = lanes + 16 * pieces;
    const __m256i k8 = _mm256_set1_epi32(k);
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        __m256i r = _mm256_loadu_si256((const __m256i *)(start + i));
        const __m256i negative = _mm256_cmpgt_epi32(_mm256_setzero_si256(), r);
        r = _mm256_andnot_si256(negative, _mm256_and_si256(r, _mm256_cmpgt_epi32(k8, r))); /* invalid: 0 */
        const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(r, 28));
        const __m256 bit4 = _mm256_castsi256_ps(_mm256_slli_epi32(r, 27));
        const __m256 bit5 = _mm256_castsi256_ps(_mm256_slli_epi32(r, 26));
        const __m256 x = _mm256_loadu_ps(w + i);
        const __m256 lo = lookup8(lo_of, r, pieces, bit3, bit4, bit5);
        const __m256 hi = lookup8(hi_of, r, pieces, bit3, bit4, bit5);
        const __m256 moved = _mm256_or_ps(_mm256_cmp_ps(x, hi, _CMP_GT_OQ), _mm256_cmp_ps(x, lo, _CMP_LE_OQ));
        _mm256_storeu_ps(value + i, lookup8(value_of, r, pieces, bit3, bit4, bit5));
        _mm256_storeu_si256((__m256i *)(position + i), r);
        if (__builtin_expect(_mm256_movemask_ps(moved) != 0, 0)) {
            fix_moved(w, start, value, position, bounds, sorted, k, span, i, (uint32_t)_mm256_movemask_ps(moved));
        }
    }
}

AVX2 static void nearest_avx2(VECTOR_PARAMS, int pieces)
{
    switch (pieces) {
    case 1: nearest_avx2_n(w, start, value, position, n, lanes, bounds, sorted, k, span, 1); break;
    case 2: nearest_avx2_n(w, start, value, position, n, lanes, bounds, sorted, k, span, 2); break;
    case 4: nearest_avx2_n(w, start, value, position, n, lanes, bounds, sorted, k, span, 4); break;
    default: nearest_avx2_n(w, start, value, position, n, lanes, bounds, sorted, k, span, 8); break;
    }
}

/* Without stored positions (up to kernels.MAX_CLUSTERS_COMPARED clusters): a branch-free binary search
 * over the k - 1 midpoints, padded with +inf to a power of two, each probe a permute of a table in
 * registers: what rank_by_search gives. table: the midpoints (32 floats), then the centroids (32). */
AVX512 INLINE void search_avx512_n(const float *restrict w, float *restrict value, int32_t *restrict position,
                                   int64_t n, const float *restrict table, int levels)
{
    const __m512 mids_lo = _mm512_loadu_ps(table), mids_hi = _mm512_loadu_ps(table + 16);
    const __m512 cents_lo = _mm512_loadu_ps(table + 32), cents_hi = _mm512_loadu_ps(table + 48);
    for (int64_t i = 0; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(w + i);
        __m512i r = _mm512_setzero_si512();
        for (int32_t h = 1 << (levels - 1); h >= 1; h /= 2) {
            const __m512i probed = _mm512_add_epi32(r, _mm512_set1_epi32(h - 1));
            const __m512 probe = _mm512_permutex2var_ps(mids_lo, probed, mids_hi);
            r = _mm512_mask_add_epi32(r, _mm512_cmp_ps_mask(probe, x, _CMP_LT_OQ), r, _mm512_set1_epi32(h));
        }
        _mm512_storeu_ps(value + i, _mm512_permutex2var_ps(cents_lo, r, cents_hi));
        _mm512_storeu_si512((void *)(position + i), r);
    }
}

AVX512 static void search_avx512(const float *restrict w, float *restrict value, int32_t *restrict position,
                                 int64_t n, const float *restrict table, int levels)
{
    switch (levels) {
    case 1: search_avx512_n(w, value, position, n, table, 1); break;
    case 2: search_avx512_n(w, value, position, n, table, 2); break;
    case 3: search_avx512_n(w, value, position, n, table, 3); break;
    case 4: search_avx512_n(w, value, position, n, table, 4); break;
    default: search_avx512_n(w, value, position, n, table, 5); break;
    }
}

/* table[r] for 8 ranks below 16 (two one-register permutes, a blend on bit 3). */
AVX2 INLINE __m256 lookup8_of_16(__m256 lo, __m256 hi, __m256i r)
{
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, r), _mm256_permutevar8x32_ps(hi, r),
                            _mm256_castsi256_ps(_mm256_slli_epi32(r, 28)));
}

/* search_avx512_n for AVX2, k <= 16. table: the midpoints (16 floats), then the centroids (16). */
AVX2 INLINE void search_avx2_n(const float *restrict w, float *restrict value, int32_t *restrict position,
                               int64_t n, const float *restrict table, int levels)
{
    const __m256 mids_lo = _mm256_loadu_ps(table), mids_hi = _mm256_loadu_ps(table + 8);
    const __m256 cents_lo = _mm256_loadu_ps(table + 16), cents_hi = _mm256_loadu_ps(table + 24);
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(w + i);
        __m256i r = _mm256_setzero_si256();
        for (int32_t h = 1 << (levels - 1); h >= 1; h /= 2) {
            const __m256 probe = lookup8_of_16(mids_lo, mids_hi, _mm256_add_epi32(r, _mm256_set1_epi32(h - 1)));
            const __m256i below = _mm256_castps_si256(_mm256_cmp_ps(probe, x, _CMP_LT_OQ));
            r = _mm256_add_epi32(r, _mm256_and_si256(below, _mm256_set1_epi32(h)));
        }
        _mm256_storeu_ps(value + i, lookup8_of_16(cents_lo, cents_hi, r));
        _mm256_storeu_si256((__m256i *)(position + i), r);
    }
}

AVX2 static void search_avx2(const float *restrict w, float *restrict value, int32_t *restrict position, int64_t n,
                             const float *restrict table, int levels)
{
    switch (levels) {
    case 1: search_avx2_n(w, value, position, n, table, 1); break;
    case 2: search_avx2_n(w, value, position, n, table, 2); break;
    case 3: search_avx2_n(w, value, position, n, table, 3); break;
    default: search_avx2_n(w, value, position, n, table, 4); break;
    }
}

/* The leading weights a search path has done without stored positions (0 where none applies). */
static int64_t search_leading_vector(const nearest_job_t *job)
{
    const int avx512 = vector_path == PATH_AVX512 && job->k <= MAX_AVX512_SEARCH_K;
    const int avx2 = !avx512 && vector_path >= PATH_AVX2 && job->k <= MAX_AVX2_SEARCH_K;
    if (!avx512 && !avx2) {
        return 0;
    }
    const int32_t width = avx512 ? MAX_AVX512_SEARCH_K : MAX_AVX2_SEARCH_K;
    int levels = 1; /* log2 of the padded number of midpoints: a power of two >= k */
    while ((1 << levels) < job->k) {
        ++levels;
    }
    float table[2 * MAX_AVX512_SEARCH_K] __attribute__((aligned(64)));
    for (int32_t j = 0; j < width; ++j) {
        table[j] = j + 1 < job->k ? job->bounds[j + 2] : INFINITY; /* row[2..k] hold the midpoints */
        table[width + j] = j < job->k ? job->sorted[j] : 0.0f;
    }
    if (avx512) {
        search_avx512(job->w, job->value, job->position, job->n, table, levels);
        return job->n - job->n % 16;
    }
    search_avx2(job->w, job->value, job->position, job->n, table, levels);
    return job->n - job->n % 8;
}

/* The leading weights a vector path has done (a multiple of its width; 0 where none applies). */
static int64_t nearest_leading_vector(const nearest_job_t *job)
{
    if (job->channels != 1) {
        return 0;
    }
    if (job->start == NULL) {
        return search_leading_vector(job);
    }
    const int avx512 = vector_path == PATH_AVX512 && job->k <= MAX_AVX512_K;
    const int avx2 = !avx512 && vector_path >= PATH_AVX2 && job->k <= MAX_AVX2_K;
    if (!avx512 && !avx2) {
        return 0;
    }
    const int32_t piece = avx512 ? 32 : 8; /* table entries a permute reads */
    int32_t width = piece;                 /* entries per table: a power of two >= k */
    while (width < job->k) {
        width *= 2;
    }
    float lanes[3 * MAX_AVX512_K] __attribute__((aligned(64))) = {0}; /* ranks >= k are never looked up */
    for (int32_t r = 0; r < job->k; ++r) {
        lanes[r] = job->bounds[r + 1];
        lanes[width + r] = job->bounds[r + 2];
        lanes[2 * width + r] = job->sorted[r];
    }
    if (avx512) {
        nearest_avx512(VECTOR_ARGS(job, lanes), width / piece);
        return job->n - job->n % 16;
    }
    nearest_avx2(VECTOR_ARGS(job, lanes), width / piece);
    return job->n - job->n % 8;
}

/* The most clusters the vector search handles without stored positions on this CPU (0: none), for
 * kernels.py, which otherwise compares in XLA: the scalar binary search is ~10 ns a weight. */
__attribute__((visibility("default"))) int edgeclust_search_max_k(void)
{
    return vector_path == PATH_AVX512 ? MAX_AVX512_SEARCH_K : vector_path == PATH_AVX2 ? MAX_AVX2_SEARCH_K : 0;
}

static void choose_vector_path(void)
{
    __builtin_cpu_init();
    vector_path = __builtin_cpu_supports("avx512f") ? PATH_AVX512
                  : __builtin_cpu_supports("avx2")  ? PATH_AVX2
                                                    : PATH_SCALAR;
    const char *cap = getenv("EDGECLUST_CPU_KERNELS");
    if (cap != NULL && strcmp(cap, "scalar") == 0) {
        vector_path = PATH_SCALAR;
    } else if (cap != NULL && strcmp(cap, "avx2") == 0 && vector_path > PATH_AVX2) {
        vector_path = PATH_AVX2;
    }
}
#else
static int64_t nearest_leading_vector(const nearest_job_t *job)
{
    (void)job;
    return 0;
}

__attribute__((visibility("default"))) int edgeclust_search_max_k(void) { return 0; }

static void choose_vector_path(void) {}
#endif

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
        for (int64_t i = nearest_leading_vector(job); i < n; ++i) {
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
    choose_vector_path();
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
