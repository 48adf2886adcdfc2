/* Batch normalization, optionally fused with its activation and a residual input (see bn.h).
 * Rows (pixels) of each statistics group are cut into fixed chunks (a function of the group size
 * and C only); every pass runs chunk by chunk on OpenMP threads, and per-channel sums are kept
 * per chunk in double, then added in chunk order, so results do not depend on the thread count.
 * Forward statistics take one pass: sums of (x - K) and (x - K)^2 with the shift K = the running
 * mean (identical on every rank of sync-BN, which updates it from the same reduced sums), or none
 * when the producing convolution summed them per sample (mpq_bn_forward_sums), then one pass
 * writes act(x * a + b (+ res)). Backward takes two passes over x and dy: the
 * per-channel sums of g = dL/d(BN output) and g * xhat, then dx. ReLU/ReLU6 masks and a uniform
 * activation quantizer (U1-U3, quant/uniform.h: its value, straight-through gradient and the
 * sums of its parameter-gradient terms) are computed element by element in the same
 * loops, and g recomputed in pass 2; other quantizers run per sub-chunk of BN_SUB_FLOATS staged
 * on the stack, and their gradient, like any residual's, is stored once (into dres, else dx) and
 * read back. The row loops run in channel slices (BN_SLICES). Scratch: s->ws holds the sums,
 * chunk partials and coefficients. */
#include "layers/bn.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "kernels/vecops.h"
#include "quant/uniform.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

enum {
    BN_CHUNK_FLOATS = 16384, /* floats per row chunk (fewer chunks for small tensors) */
    BN_MAX_CHUNKS = 256,     /* per statistics group */
    BN_SUB_FLOATS = 8192,    /* quantizer backward sub-chunks, staged on the stack (every call of
                                the quantizer has a fixed cost: an OpenMP region, its setup) */
    BN_RB_FLOATS = 2048,     /* floats per row block of the row loops */
    BN_JB = 16,              /* channels of the narrower slice compiled for its width */
    BN_SLICED_MAX = 64,      /* wider rows run whole (BN_SLICES) */
    BN_FLOAT_ROWS = 8,       /* rows whose sums a slice adds in float before adding them in
                                double (8 terms: float rounding far below the statistics') */
    BN_SLICE = 2 * BN_JB,    /* channels of a row loop's slice compiled for its width */
    BN_WIDE = 1024,          /* columns of a wide row's piece, whose float sums stay in memory */
};

void mpq_bn_init(mpq_bn *l, int hw, int c)
{
    memset(l, 0, sizeof *l);
    l->hw = hw;
    l->c = c;
    l->eps = 1e-5f;
    l->momentum = 0.9f;
    l->stream_bytes = MPQ_STREAM_BYTES;
}

/* Row chunks: each group's rows in pieces of cr rows (the last may be shorter). */
typedef struct chunks {
    size_t rows, cr; /* rows per group, rows per chunk */
    int per_group, total;
} chunks;

static chunks chunk_plan(const mpq_bn *l, int n, int n_groups)
{
    chunks k;
    k.rows = (size_t)(n / n_groups) * l->hw;
    size_t cr = BN_CHUNK_FLOATS / (size_t)l->c, lo = (k.rows + BN_MAX_CHUNKS - 1) / BN_MAX_CHUNKS;
    if (cr < lo) cr = lo;
    if (cr > k.rows) cr = k.rows;
    if (cr < 1) cr = 1;
    k.cr = cr;
    k.per_group = (int)((k.rows + cr - 1) / cr);
    k.total = k.per_group * n_groups;
    return k;
}

/* Doubles of the reduce buffer: two (groups, C) blocks and a count. */
static size_t red_len(const mpq_bn *l, int n_groups) { return 2 * (size_t)n_groups * l->c + 1; }

/* Scratch, doubles first (s->ws is 64-byte aligned): reduce buffer, chunk partials (2C each:
 * forward's two sums per channel, or backward's), quantizer partials (2 each); then floats: 4
 * blocks of (groups, C) coefficients. */
typedef struct bn_ws {
    double *red, *part, *qpart;
    float *ka, *kb, *kc, *kd;
} bn_ws;

static size_t ws_doubles(const mpq_bn *l, const chunks *k, int n_groups)
{
    return red_len(l, n_groups) + (size_t)k->total * (2 * (size_t)l->c + 2);
}

size_t mpq_bn_ws_floats(const mpq_bn *l, int n, int n_groups)
{
    const chunks k = chunk_plan(l, n, n_groups);
    return 2 * ws_doubles(l, &k, n_groups) + 4 * (size_t)n_groups * l->c;
}

static bn_ws ws_views(const mpq_bn *l, const mpq_step *s, const chunks *k)
{
    bn_ws v;
    const size_t gc = (size_t)s->n_groups * l->c;
    MPQ_ASSERT(s->ws_floats >= mpq_bn_ws_floats(l, s->n, s->n_groups), "bn: workspace too small");
    MPQ_ASSERT((uintptr_t)s->ws % sizeof(double) == 0, "bn: workspace not 8-byte aligned");
    v.red = (double *)(void *)s->ws;
    v.part = v.red + red_len(l, s->n_groups);
    v.qpart = v.part + (size_t)k->total * 2 * l->c;
    v.ka = s->ws + 2 * ws_doubles(l, k, s->n_groups);
    v.kb = v.ka + gc;
    v.kc = v.kb + gc;
    v.kd = v.kc + gc;
    return v;
}

static void reduce(const mpq_step *s, double *buf, size_t len)
{
    if (!s->reduce) return;
    const int rc = s->reduce->sum(s->reduce->ctx, buf, len);
    MPQ_ASSERT(rc == 0, "bn: cross-rank reduction failed (%d)", rc);
}

static chunks checked_plan(const mpq_bn *l, const mpq_step *s, const mpq_act *act)
{
    MPQ_ASSERT(s->n_groups >= 1 && s->n % s->n_groups == 0, "bn: %d groups do not divide n = %d",
               s->n_groups, s->n);
    MPQ_ASSERT(!act || act->len == (size_t)l->hw * l->c, "bn: activation of %zu elements, not %d",
               act ? act->len : 0, l->hw * l->c);
    return chunk_plan(l, s->n, s->n_groups);
}

/* Rows [*r0, *r1) of chunk k and its group. */
static int chunk_rows(const chunks *k, int i, size_t *r0, size_t *r1)
{
    const int g = i / k->per_group;
    const size_t lo = (size_t)g * k->rows + (size_t)(i % k->per_group) * k->cr;
    const size_t end = (size_t)(g + 1) * k->rows;
    *r0 = lo;
    *r1 = lo + k->cr < end ? lo + k->cr : end;
    return g;
}

/* Sub-chunk rows for the quantizer's staging buffers. */
static size_t sub_rows(int c) { return c >= BN_SUB_FLOATS ? 1 : (size_t)(BN_SUB_FLOATS / c); }

/* Rows per block of the row loops: about BN_RB_FLOATS floats of each tensor (at least 4 rows). */
static size_t block_rows(int c) { return c >= BN_RB_FLOATS / 4 ? 4 : BN_RB_FLOATS / (size_t)c; }

/* Whether an output (y, or dx) goes past the caches: a large tensor (mpq_bn.stream_bytes) whose
 * wide rows (BN_SLICED_MAX channels and more, the only ones written line by line) are aligned
 * lines. */
static int streams(const mpq_bn *l, const mpq_step *s, const float *out)
{
    return l->c > BN_SLICED_MAX && mpq_stream_ok(out, (size_t)l->c) &&
           mpq_step_streams(s, (size_t)l->hw * l->c, l->stream_bytes);
}

/* Runs CALL(W, w, j0) over the channel slices of a row of c channels, each w wide from j0. Rows
 * of up to BN_SLICED_MAX channels: slices of BN_SLICE while they fit, then one of BN_JB, each
 * with W = w (compiled for that width, the slice's coefficients and sums in registers), then the
 * narrower tail; wider rows in pieces of BN_WIDE (measured: tensors that come from memory stream
 * faster row by row than slice by slice); W = 0 for these two: the coefficients stay in memory,
 * the sums too (a few rows in float, then added in double). */
#define BN_SLICES(c, CALL)                                                                         \
    do {                                                                                           \
        int j0_ = 0;                                                                               \
        if ((c) > BN_SLICED_MAX) {                                                                 \
            for (; j0_ < (c); j0_ += BN_WIDE)                                                      \
                CALL(0, (c)-j0_ < BN_WIDE ? (c)-j0_ : BN_WIDE, j0_);                               \
            break;                                                                                 \
        }                                                                                          \
        for (; j0_ + BN_SLICE <= (c); j0_ += BN_SLICE)                                             \
            CALL(BN_SLICE, BN_SLICE, j0_);                                                         \
        if (j0_ + BN_JB <= (c)) {                                                                  \
            CALL(BN_JB, BN_JB, j0_);                                                               \
            j0_ += BN_JB;                                                                          \
        }                                                                                          \
        if (j0_ < (c)) CALL(0, (c)-j0_, j0_);                                                      \
    } while (0)

/* A slice's channel loop over j < n running BODY: a slice of BN_SLICE as one loop per vector of
 * BN_JB (a loop over two vectors keeps the slice's locals in memory instead of registers). */
/* clang-format off */
#define BN_SLICE_LOOP(W, n, BODY)                                                                  \
    do {                                                                                           \
        if ((W) == BN_SLICE) {                                                                     \
            _Pragma("omp simd") for (int j = 0; j < BN_JB; j++) { BODY }                           \
            _Pragma("omp simd") for (int j = BN_JB; j < BN_SLICE; j++) { BODY }                    \
        } else {                                                                                   \
            _Pragma("omp simd") for (int j = 0; j < (n); j++) { BODY }                             \
        }                                                                                          \
    } while (0)
/* clang-format on */

/* s1[j] += f1[j], s2[j] += f2[j] for j < w: a few rows' float sums (the W = 0 loops) added in
 * double. */
ALWAYS_INLINE void add_float_sums(int w, const float *f1, const float *f2, double *s1, double *s2)
{
#pragma omp simd
    for (int j = 0; j < w; j++)
        s1[j] += f1[j], s2[j] += f2[j];
}

/* ql[j] += e3[j], ql[BN_JB + j] += e4[j] for j < BN_JB, then e3 = e4 = 0: the fused quantizer's
 * lane sums in float added in double. */
ALWAYS_INLINE void add_lanes(float *e3, float *e4, double *ql)
{
    add_float_sums(BN_JB, e3, e4, ql, ql + BN_JB);
    for (int j = 0; j < BN_JB; j++)
        e3[j] = e4[j] = 0.0f;
}

#define BN_STATS_BODY                                                                              \
    const double d = (double)(xr[j] - sh[j]);                                                      \
    a1[j] += d;                                                                                    \
    a2[j] += d * d;

/* The statistics' sums over channels [j0, j0 + w) of rows [q0, q1) (row stride c) added into
 * s1, s2 at j0; W as in pass1_slice (sums and shifts in registers across the rows). */
ALWAYS_INLINE void stats_slice(const int W, int w, int c, int j0, const float *shift,
                               const float *x, size_t q0, size_t q1, double *s1, double *s2)
{
    const int n = W ? W : w;
    float lsh[BN_SLICE];
    double l1[BN_SLICE], l2[BN_SLICE];
    const float *sh = shift + j0;
    double *a1 = s1 + j0, *a2 = s2 + j0;
    if (W) {
        for (int j = 0; j < W; j++) {
            lsh[j] = sh[j];
            l1[j] = l2[j] = 0.0;
        }
        sh = lsh, a1 = l1, a2 = l2;
    }
    if (!W) { /* a few rows in float in memory (w <= BN_WIDE), then in double */
        float f1[BN_WIDE], f2[BN_WIDE];
        for (size_t p0 = q0; p0 < q1; p0 += BN_FLOAT_ROWS) {
            const size_t p1 = p0 + BN_FLOAT_ROWS < q1 ? p0 + BN_FLOAT_ROWS : q1;
            for (int j = 0; j < w; j++)
                f1[j] = f2[j] = 0.0f;
            for (size_t r = p0; r < p1; r++) {
                const float *xr = x + r * c + j0;
#pragma omp simd
                for (int j = 0; j < w; j++) {
                    const float d = xr[j] - sh[j];
                    f1[j] += d;
                    f2[j] += d * d;
                }
            }
            add_float_sums(w, f1, f2, a1, a2);
        }
        return;
    }
    for (size_t r = q0; r < q1; r++) {
        const float *xr = x + r * c + j0;
        BN_SLICE_LOOP(W, n, BN_STATS_BODY);
    }
    for (int j = 0; j < W; j++) {
        s1[j0 + j] += l1[j];
        s2[j0 + j] += l2[j];
    }
}

/* part[k] = per-channel sums over chunk k of (x - shift) and (x - shift)^2, row block by row
 * block. */
static void stats_pass(const mpq_bn *l, const chunks *k, const float *x, const float *shift,
                       double *part)
{
    const int c = l->c;
    const size_t rb = block_rows(c);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < k->total; i++) {
        size_t r0, r1;
        chunk_rows(k, i, &r0, &r1);
        double *s1 = part + (size_t)i * 2 * c, *s2 = s1 + c;
        for (int j = 0; j < c; j++)
            s1[j] = s2[j] = 0.0;
        for (size_t q0 = r0; q0 < r1; q0 += rb) {
            const size_t q1 = q0 + rb < r1 ? q0 + rb : r1;
#define STATS_SLICE(W, w, j0) stats_slice(W, w, c, j0, shift, x, q0, q1, s1, s2)
            BN_SLICES(c, STATS_SLICE);
#undef STATS_SLICE
        }
    }
}

/* out[g*width + j] = sum over the chunks of group g of part[chunk][off + j], in chunk order. */
static void sum_chunks(const chunks *k, const double *part, size_t stride, size_t off, int width,
                       double *out)
{
    for (int g = 0; g < k->total / k->per_group; g++)
        for (int j = 0; j < width; j++) {
            double acc = 0.0;
            for (int i = g * k->per_group; i < (g + 1) * k->per_group; i++)
                acc += part[(size_t)i * stride + off + j];
            out[(size_t)g * width + j] = acc;
        }
}

/* Element kinds of the row loops: the activation kinds, KIND_NONE (identity: no activation, or
 * an activation quantizer applied apart), KIND_UQ (a uniform activation quantizer computed in
 * the loop itself) and, in backward, KIND_G (g is read from a buffer). Each loop is instantiated
 * per kind so that it vectorizes. */
enum { KIND_NONE = -1, KIND_G = -2, KIND_UQ = -3 };

/* One instance per kind of each row loop. */
#define BN_ROWS(name, args, call)                                                                  \
    static void name args                                                                          \
    {                                                                                              \
        switch (kind) {                                                                            \
        case MPQ_ACT_RELU:                                                                         \
            call(MPQ_ACT_RELU);                                                                    \
            break;                                                                                 \
        case MPQ_ACT_RELU6:                                                                        \
            call(MPQ_ACT_RELU6);                                                                   \
            break;                                                                                 \
        case KIND_G:                                                                               \
            call(KIND_G);                                                                          \
            break;                                                                                 \
        case KIND_UQ:                                                                              \
            call(KIND_UQ);                                                                         \
            break;                                                                                 \
        default:                                                                                   \
            call(KIND_NONE);                                                                       \
            break;                                                                                 \
        }                                                                                          \
    }

/* The row loops' kind for act. KIND_UQ (u filled) for a uniform quantizer (U1-U3, unsigned,
 * exact reciprocal step, xmax / d below 2^23: mpq_ucore_pow2) that the passes compute element by
 * element; other quantizers give KIND_NONE and run per chunk through mpq_quant_forward/backward. */
static int act_kind(const mpq_act *act, const float *val, mpq_ucore *u)
{
    if (!act) return KIND_NONE;
    if (act->kind != MPQ_ACT_QUANT) return (int)act->kind;
    return mpq_quant_ucore(act->q, val, u) && mpq_ucore_pow2(u) ? KIND_UQ : KIND_NONE;
}

/* Whether act is a quantizer that the passes apply apart, per chunk (kind: act_kind's). */
static int applied_apart(const mpq_act *act, int kind)
{
    return act && act->kind == MPQ_ACT_QUANT && kind != KIND_UQ;
}

/* The activation of a row loop's kind at o (KIND_NONE: o itself). */
ALWAYS_INLINE float act_value(const int kind, const mpq_ucore u, float o)
{
    if (kind == MPQ_ACT_RELU) return o > 0.0f ? o : 0.0f;
    if (kind == MPQ_ACT_RELU6) {
        const float v = o > 0.0f ? o : 0.0f;
        return v < 6.0f ? v : 6.0f;
    }
    if (kind == KIND_UQ) return mpq_ucore_forward(u, o, 0, 1);
    return o;
}

#define BN_OUTPUT_VALUE act_value(kind, u, RES ? xr[j] * a[j] + b[j] + rr[j] : xr[j] * a[j] + b[j])
#define BN_OUTPUT_BODY yr[j] = BN_OUTPUT_VALUE;

/* Runs BODY (which writes t[j - j1]) over the row's n channels (a multiple of
 * MPQ_STREAM_FLOATS) line by line, j from j1, and streams each line of t to out + j1 past the
 * caches. */
/* clang-format off */
#define BN_STREAM_LOOP(n, out, BODY)                                                               \
    for (int j1 = 0; j1 < (n); j1 += MPQ_STREAM_FLOATS) {                                          \
        float t[MPQ_STREAM_FLOATS];                                                                \
        _Pragma("omp simd") for (int j = j1; j < j1 + MPQ_STREAM_FLOATS; j++) { BODY }             \
        mpq_stream_line((out) + j1, t);                                                            \
    }
/* clang-format on */

/* y = act(x * a + b (+ res)) over channels [j0, j0 + w) of rows [q0, q1) (row stride c) with the
 * coefficients of their group; RES adds the residual input. W as in pass1_slice: the
 * coefficients stay in registers across the rows (y's stores could alias their memory, so they
 * would be reloaded per row). With stream, wide rows (W = 0) are written past the caches. */
ALWAYS_INLINE void output_slice(const int kind, const int RES, const int W, int w, int c, int j0,
                                const mpq_ucore u, const float *ka, const float *kb, const float *x,
                                const float *res, size_t q0, size_t q1, int stream, float *y)
{
    const int n = W ? W : w;
    float la[BN_SLICE], lb[BN_SLICE];
    const float *a = ka + j0, *b = kb + j0;
    if (W) {
        for (int j = 0; j < W; j++)
            la[j] = a[j], lb[j] = b[j];
        a = la, b = lb;
    }
    for (size_t r = q0; r < q1; r++) {
        const float *xr = x + r * c + j0, *rr = RES ? res + r * c + j0 : NULL;
        float *yr = y + r * c + j0;
        if (!W && stream) {
            BN_STREAM_LOOP(n, yr, t[j - j1] = BN_OUTPUT_VALUE;);
        } else {
            BN_SLICE_LOOP(W, n, BN_OUTPUT_BODY);
        }
    }
}

ALWAYS_INLINE void output_rows_k(const int kind, const int RES, int c, const mpq_ucore u,
                                 const float *a, const float *b, const float *x, const float *res,
                                 size_t r0, size_t r1, int stream, float *y)
{
    const size_t rb = block_rows(c);
    for (size_t q0 = r0; q0 < r1; q0 += rb) {
        const size_t q1 = q0 + rb < r1 ? q0 + rb : r1;
#define OUTPUT_SLICE(W, w, j0)                                                                     \
    output_slice(kind, RES, W, w, c, j0, u, a, b, x, res, q0, q1, stream, y)
        BN_SLICES(c, OUTPUT_SLICE);
#undef OUTPUT_SLICE
    }
}

#define OUTPUT_CALL0(K) output_rows_k(K, 0, c, u, a, b, x, res, r0, r1, stream, y)
#define OUTPUT_CALL1(K) output_rows_k(K, 1, c, u, a, b, x, res, r0, r1, stream, y)
BN_ROWS(output_rows,
        (int c, int kind, const mpq_ucore u, const float *a, const float *b, const float *x,
         const float *res, size_t r0, size_t r1, int stream, float *y),
        OUTPUT_CALL0)
BN_ROWS(output_rows_res,
        (int c, int kind, const mpq_ucore u, const float *a, const float *b, const float *x,
         const float *res, size_t r0, size_t r1, int stream, float *y),
        OUTPUT_CALL1)

/* The output pass over the chunks; a quantizer that is not fused is applied to each chunk
 * afterwards, in place, in one call. */
static void output_pass(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const chunks *k,
                        const float *x, const float *res, const float *a, const float *b, float *y)
{
    mpq_ucore u = {0};
    const int kind = act_kind(act, s->val, &u), c = l->c;
    const int apart = applied_apart(act, kind); /* reads y back */
    const int stream = !apart && streams(l, s, y);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < k->total; i++) {
        size_t r0, r1;
        const size_t o = (size_t)chunk_rows(k, i, &r0, &r1) * c;
        if (res)
            output_rows_res(c, kind, u, a + o, b + o, x, res, r0, r1, stream, y);
        else
            output_rows(c, kind, u, a + o, b + o, x, NULL, r0, r1, stream, y);
        if (apart) mpq_quant_forward(act->q, s->val, y + r0 * c, y + r0 * c, (r1 - r0) * c);
        if (stream) mpq_stream_fence();
    }
}

/* Eval (frozen statistics): a = gamma / sqrt(var + eps), b = beta - mean * a into ka, kb. */
static void eval_coefs(const mpq_bn *l, const mpq_step *s, float *a, float *b)
{
    const float *gamma = mpq_cat(s->val, l->gamma), *beta = mpq_cat(s->val, l->beta);
    const float *rm = mpq_cat(s->state, l->mean), *rv = mpq_cat(s->state, l->var);
    for (int i = 0; i < l->c; i++) {
        a[i] = gamma[i] / sqrtf(rv[i] + l->eps);
        b[i] = beta[i] - rm[i] * a[i];
    }
}

void mpq_bn_forward(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                    float *y)
{
    mpq_bn_forward_res(l, act, s, x, NULL, y);
}

size_t mpq_bn_sums_floats(const mpq_bn *l, int n) { return 4 * (size_t)n * l->c; }

/* out[g*c + j] = sum over the samples of group g of sums[i * 2c + off + j], in sample order. */
static void sum_samples(const mpq_bn *l, const mpq_step *s, const double *sums, int off,
                        double *out)
{
    const int c = l->c, per = s->n / s->n_groups;
    for (int g = 0; g < s->n_groups; g++)
        for (int j = 0; j < c; j++) {
            double acc = 0.0;
            for (int i = g * per; i < (g + 1) * per; i++)
                acc += sums[(size_t)i * 2 * c + off + j];
            out[(size_t)g * c + j] = acc;
        }
}

void mpq_bn_forward_res(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                        const float *res, float *y)
{
    mpq_bn_forward_sums(l, act, s, x, res, y, NULL);
}

void mpq_bn_forward_sums(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                         const float *res, float *y, const double *sums)
{
    MPQ_ASSERT(x != y && res != y, "bn: y must not alias x or res");
    if (!s->training) {
        const mpq_step s1 = {.val = s->val,
                             .state = s->state,
                             .ws = s->ws,
                             .ws_floats = s->ws_floats,
                             .n = s->n,
                             .n_groups = 1};
        const chunks k = checked_plan(l, &s1, act);
        const bn_ws v = ws_views(l, &s1, &k);
        eval_coefs(l, s, v.ka, v.kb);
        output_pass(l, act, s, &k, x, res, v.ka, v.kb, y);
        return;
    }
    const chunks k = checked_plan(l, s, act);
    const bn_ws v = ws_views(l, s, &k);
    const int c = l->c, ng = s->n_groups;
    const size_t gc = (size_t)ng * c;
    const float *gamma = mpq_cat(s->val, l->gamma), *beta = mpq_cat(s->val, l->beta);
    float *rm = mpq_at(s->state, l->mean), *rv = mpq_at(s->state, l->var);
    float *cmean = mpq_at(s->arena, l->cache), *cinv = cmean + gc, *shift = v.kd;
    double *s1 = v.red, *s2 = s1 + gc, *cnt = s2 + gc;

    memcpy(shift, rm, (size_t)c * sizeof *shift);
    if (sums) {
        sum_samples(l, s, sums, 0, s1);
        sum_samples(l, s, sums, c, s2);
    } else {
        stats_pass(l, &k, x, shift, v.part);
        sum_chunks(&k, v.part, 2 * (size_t)c, 0, c, s1);
        sum_chunks(&k, v.part, 2 * (size_t)c, (size_t)c, c, s2);
    }
    *cnt = (double)k.rows;
    reduce(s, v.red, red_len(l, ng)); /* sums, squares and the group size */

    const double m = *cnt, unbias = m > 1.0 ? m / (m - 1.0) : 1.0, mom = l->momentum;
    for (int i = 0; i < c; i++) {
        double bm = 0.0, bv = 0.0;
        for (int g = 0; g < ng; g++) {
            const size_t o = (size_t)g * c + i;
            const double d = s1[o] / m, var = s2[o] / m - d * d;
            const double mean = (double)shift[i] + d, vv = var > 0.0 ? var : 0.0;
            cmean[o] = (float)mean;
            cinv[o] = (float)(1.0 / sqrt(vv + l->eps));
            v.ka[o] = gamma[i] * cinv[o];
            v.kb[o] = beta[i] - cmean[o] * v.ka[o];
            bm += mean;
            bv += vv;
        }
        rm[i] = (float)(mom * rm[i] + (1.0 - mom) * bm / ng);
        rv[i] = (float)(mom * rv[i] + (1.0 - mom) * unbias * bv / ng);
    }
    output_pass(l, act, s, &k, x, res, v.ka, v.kb, y);
}

/* ---- backward ------------------------------------------------------------------------------ */

/* What backward needs per group: the forward's y = act(x * a + b), xhat = (x - mu) * iv, and the
 * fused quantizer's core (KIND_UQ). */
typedef struct bn_coefs {
    const float *a, *b, *mu, *iv;
    mpq_ucore uq;
} bn_coefs;

/* g = dL/d(BN output) for one element from the BN output o and dy, by the kind's gradient: the
 * ReLU/ReLU6 mask, the quantizer's straight-through gradient (which also writes the element's
 * terms e_d, e_x of its parameter gradients; its step is a power of two, act_kind), or the
 * identity. The mask multiplies dy by 1 or 0, the bits of selecting dy or 0 except where dy is
 * not finite or negative (NaN instead of 0, -0 instead of 0), and dy is read in place: a select
 * is folded into dy's load, which then waits for x's load and the compare (measured 2x slower on
 * Zen 5), and dy staged in L1 for the select cost more than the product on Zen 4 (backward of
 * ReLU6 on 32 channels 1.14-1.21 ns per element against 0.72-0.80, of ReLU on ResNet-20's shapes
 * 0.42-0.56 against 0.35-0.45). */
ALWAYS_INLINE float elem_grad(const int kind, const mpq_ucore u, float o, float dy, float *ed,
                              float *ex)
{
    if (kind == KIND_UQ) return mpq_ucore_backward_pow2(u, o, dy, ed, ex);
    if (kind == MPQ_ACT_RELU || kind == MPQ_ACT_RELU6) {
        const int keep = kind == MPQ_ACT_RELU ? o > 0.0f : (o > 0.0f) & (o < 6.0f);
        return dy * (float)keep;
    }
    return dy;
}

/* The row loops (all passes): rows in blocks of block_rows(c), each block in channel slices
 * (BN_SLICES) whose body is compiled for their width, with the slice's coefficients and double
 * sums in locals that stay in registers across the block's rows (measured: the loops are bound
 * by their code, not by memory -- the same time per element on an L2-resident tensor as on an
 * 8 MB one; runtime-width loops, coefficients reloaded per row and sums kept in memory cost 1.5x
 * per element on 16 channels). */

/* The element (row r, channel j of a block) of pass 1: g from the kind (or read from gr), kept
 * in go with a residual, and its sums: per channel into A1[j], A2[j] (g and g * (x - mu): the
 * sum of g * xhat is iv times the latter, scaled once per group in backward_sums), and for
 * KIND_UQ the quantizer's terms into E3, E4 (its parameters' sums are over the whole tensor). */
#define BN_PASS1_BODY(T, A1, A2, E3, E4)                                                           \
    float ed = 0.0f, ex = 0.0f;                                                                    \
    const float o = RES ? xr[j] * a[j] + b[j] + rr[j] : xr[j] * a[j] + b[j];                       \
    const float gj = kind == KIND_G ? gr[j] : elem_grad(kind, u, o, dr[j], &ed, &ex);              \
    const float h = xr[j] - mu[j];                                                                 \
    if (RES) go[j] = gj;                                                                           \
    A1[j] += (T)gj;                                                                                \
    A2[j] += (T)gj * (T)h;                                                                         \
    if (kind == KIND_UQ) {                                                                         \
        E3 += (T)ed;                                                                               \
        E4 += (T)ex;                                                                               \
    }

/* The row pointers of pass 1's element at row r. */
#define BN_PASS1_ROW                                                                               \
    const float *xr = x + r * c + j0, *dr = dq + (r - q0) * c + j0;                                \
    const float *gr = kind == KIND_G ? g + (r - r0) * c + j0 : NULL;                               \
    const float *rr = RES ? res + r * c + j0 : NULL;                                               \
    float *go = RES ? gb + r * c + j0 : NULL;

/* Pass 1 over channels [j0, j0 + w) of rows [q0, q1) (row stride c; dq: the block's incoming
 * gradient, from row q0; g, with KIND_G, from row r0): the slice's sums added at j0,
 * the quantizer's e_d, e_x into the lanes ql[0..BN_JB), ql[BN_JB..2 BN_JB) (summed apart, j
 * modulo BN_JB: its parameters' sums are over the whole tensor). W is w as a constant (BN_SLICE or
 * BN_JB: the body compiled for that width, coefficients and sums in locals that stay in registers
 * across the rows), or 0 (a tail narrower than BN_JB, or a wide row's piece). */
ALWAYS_INLINE void pass1_slice(const int kind, const int RES, const int W, int w, int c, int j0,
                               const bn_coefs *k, const float *x, const float *res, const float *dq,
                               const float *g, float *gb, size_t r0, size_t q0, size_t q1,
                               double *sdy, double *sdyx, double *ql)
{
    const mpq_ucore u = k->uq;
    const float *a = k->a + j0, *b = k->b + j0, *mu = k->mu + j0;
    if (!W) { /* per-channel sums of a few rows in float in memory (w <= BN_WIDE), then in double;
                 the quantizer's in lanes that stay in registers, added in double after each row
                 of a wide piece, else after the few rows (measured on MobileNetV2's expanded
                 tensors: kept per channel in memory they cost its backward 15-20 %; added per
                 row they double a 24-channel tensor's) */
        float f1[BN_WIDE], f2[BN_WIDE];
        for (size_t p0 = q0; p0 < q1; p0 += BN_FLOAT_ROWS) {
            const size_t p1 = p0 + BN_FLOAT_ROWS < q1 ? p0 + BN_FLOAT_ROWS : q1;
            float e3[BN_JB] = {0.0f}, e4[BN_JB] = {0.0f};
            for (int j = 0; j < w; j++)
                f1[j] = f2[j] = 0.0f;
            for (size_t r = p0; r < p1; r++) {
                BN_PASS1_ROW
                int j1 = 0;
                for (; j1 + BN_JB <= w; j1 += BN_JB) {
#pragma omp simd
                    for (int j = j1; j < j1 + BN_JB; j++) {
                        BN_PASS1_BODY(float, f1, f2, e3[j - j1], e4[j - j1])
                    }
                }
#pragma omp simd
                for (int j = j1; j < w; j++) {
                    BN_PASS1_BODY(float, f1, f2, e3[j - j1], e4[j - j1])
                }
                if (kind == KIND_UQ && w >= BN_JB) add_lanes(e3, e4, ql);
            }
            add_float_sums(w, f1, f2, sdy + j0, sdyx + j0);
            if (kind == KIND_UQ && w < BN_JB) add_lanes(e3, e4, ql);
        }
        return;
    }
    float la[BN_SLICE], lb[BN_SLICE], lmu[BN_SLICE];
    double l1[BN_SLICE], l2[BN_SLICE], l3[BN_SLICE], l4[BN_SLICE];
    for (int j = 0; j < W; j++) {
        la[j] = a[j], lb[j] = b[j], lmu[j] = mu[j];
        l1[j] = l2[j] = l3[j] = l4[j] = 0.0;
    }
    a = la, b = lb, mu = lmu;
    for (size_t p0 = q0; p0 < q1; p0 += BN_FLOAT_ROWS) { /* float sums of a few rows, then double */
        const size_t p1 = p0 + BN_FLOAT_ROWS < q1 ? p0 + BN_FLOAT_ROWS : q1;
        float f1[BN_SLICE], f2[BN_SLICE], f3[BN_SLICE], f4[BN_SLICE];
        for (int j = 0; j < W; j++)
            f1[j] = f2[j] = f3[j] = f4[j] = 0.0f;
        for (size_t r = p0; r < p1; r++) {
            BN_PASS1_ROW
            BN_SLICE_LOOP(W, W, BN_PASS1_BODY(float, f1, f2, f3[j], f4[j]));
        }
        for (int j = 0; j < W; j++) {
            l1[j] += f1[j], l2[j] += f2[j];
            l3[j] += f3[j], l4[j] += f4[j];
        }
    }
    for (int j = 0; j < W; j++) {
        sdy[j0 + j] += l1[j];
        sdyx[j0 + j] += l2[j];
        if (kind == KIND_UQ) ql[j % BN_JB] += l3[j], ql[BN_JB + j % BN_JB] += l4[j];
    }
}

/* Pass 1 over rows [r0, r1): adds per-channel sums of g and g * (x - mu) into sdy, sdyx, and for
 * KIND_UQ the sums of the quantizer's e_d, e_x into the lanes ql (pass1_slice). g is read from g
 * (KIND_G, indexed from row r0) or computed from dy; with a residual (RES), g = act'(x * a + b +
 * res) * dy is also stored into gb. */
ALWAYS_INLINE void pass1_rows_k(const int kind, const int RES, int c, const bn_coefs *k,
                                const float *x, const float *res, const float *dy, const float *g,
                                float *gb, size_t r0, size_t r1, double *sdy, double *sdyx,
                                double *ql)
{
    const size_t rb = block_rows(c);
    for (size_t q0 = r0; q0 < r1; q0 += rb) {
        const size_t q1 = q0 + rb < r1 ? q0 + rb : r1;
        const float *dq = dy + q0 * c;
#define PASS1_SLICE(W, w, j0)                                                                      \
    pass1_slice(kind, RES, W, w, c, j0, k, x, res, dq, g, gb, r0, q0, q1, sdy, sdyx, ql)
        BN_SLICES(c, PASS1_SLICE);
#undef PASS1_SLICE
    }
}

/* dx = g * a over rows [r0, r1) (eval: frozen statistics). */
ALWAYS_INLINE void scale_rows_k(const int kind, int c, const bn_coefs *k, const float *x,
                                const float *dy, const float *g, size_t r0, size_t r1, float *dx)
{
    const mpq_ucore u = k->uq;
    for (size_t r = r0; r < r1; r++) {
        const float *xr = x + r * c, *dr = dy + r * c, *gr = g + (r - r0) * c;
        float *d = dx + r * c;
#pragma omp simd
        for (int j = 0; j < c; j++) {
            float ed, ex;
            d[j] =
                (kind == KIND_G ? gr[j]
                                : elem_grad(kind, u, xr[j] * k->a[j] + k->b[j], dr[j], &ed, &ex)) *
                k->a[j];
        }
    }
}

/* Pass 2 (training): dx = a * (g - mg - xhat * mgh) with the group means mg of g and mgh of
 * g * xhat; g read from gb (KIND_G; may be dx itself) or recomputed from dy (which dx may alias:
 * every element is read before it is written). */
#define BN_DX_BODY(OUT)                                                                            \
    float ed, ex;                                                                                  \
    const float g =                                                                                \
        kind == KIND_G ? sr[j] : elem_grad(kind, u, xr[j] * a[j] + b[j], sr[j], &ed, &ex);         \
    const float h = (xr[j] - mu[j]) * iv[j];                                                       \
    OUT = a[j] * (g - m1[j] - h * m2[j]);

/* Pass 2 over channels [j0, j0 + w) of rows [q0, q1) (row stride c; sq: the block's g or dy,
 * from row q0); W as in pass1_slice; stream as in output_slice. */
ALWAYS_INLINE void dx_slice(const int kind, const int W, int w, int c, int j0, const bn_coefs *k,
                            const float *mg, const float *mgh, const float *x, const float *sq,
                            size_t q0, size_t q1, int stream, float *dx)
{
    const mpq_ucore u = k->uq;
    const int n = W ? W : w;
    float la[BN_SLICE], lb[BN_SLICE], lmu[BN_SLICE], liv[BN_SLICE], l1[BN_SLICE], l2[BN_SLICE];
    const float *a = k->a + j0, *b = k->b + j0, *mu = k->mu + j0, *iv = k->iv + j0;
    const float *m1 = mg + j0, *m2 = mgh + j0;
    if (W) {
        for (int j = 0; j < W; j++) {
            la[j] = a[j], lb[j] = b[j], lmu[j] = mu[j], liv[j] = iv[j];
            l1[j] = m1[j], l2[j] = m2[j];
        }
        a = la, b = lb, mu = lmu, iv = liv, m1 = l1, m2 = l2;
    }
    for (size_t r = q0; r < q1; r++) {
        const float *xr = x + r * c + j0, *sr = sq + (r - q0) * c + j0;
        float *d = dx + r * c + j0;
        if (!W && stream) {
            BN_STREAM_LOOP(n, d, BN_DX_BODY(t[j - j1]));
        } else {
            BN_SLICE_LOOP(W, n, BN_DX_BODY(d[j]));
        }
    }
}

ALWAYS_INLINE void dx_rows_k(const int kind, int c, const bn_coefs *k, const float *mg,
                             const float *mgh, const float *x, const float *dy, const float *gb,
                             size_t r0, size_t r1, int stream, float *dx)
{
    const size_t rb = block_rows(c);
    for (size_t q0 = r0; q0 < r1; q0 += rb) {
        const size_t q1 = q0 + rb < r1 ? q0 + rb : r1;
        const float *sq = (kind == KIND_G ? gb : dy) + q0 * c;
#define DX_SLICE(W, w, j0) dx_slice(kind, W, w, c, j0, k, mg, mgh, x, sq, q0, q1, stream, dx)
        BN_SLICES(c, DX_SLICE);
#undef DX_SLICE
    }
}

#define SUMS_CALL(K) pass1_rows_k(K, 0, c, k, x, NULL, dy, g, NULL, r0, r1, sdy, sdyx, ql)
#define SCALE_CALL(K) scale_rows_k(K, c, k, x, dy, g, r0, r1, dx)
#define DX_CALL(K) dx_rows_k(K, c, k, mg, mgh, x, dy, gb, r0, r1, stream, dx)
#define RES_CALL(K) pass1_rows_k(K, 1, c, k, x, res, dy, NULL, gb, r0, r1, sdy, sdyx, ql)
BN_ROWS(sums_rows,
        (int c, int kind, const bn_coefs *k, const float *x, const float *dy, const float *g,
         size_t r0, size_t r1, double *sdy, double *sdyx, double *ql),
        SUMS_CALL)
BN_ROWS(scale_rows,
        (int c, int kind, const bn_coefs *k, const float *x, const float *dy, const float *g,
         size_t r0, size_t r1, float *dx),
        SCALE_CALL)
BN_ROWS(dx_rows,
        (int c, int kind, const bn_coefs *k, const float *mg, const float *mgh, const float *x,
         const float *dy, const float *gb, size_t r0, size_t r1, int stream, float *dx),
        DX_CALL)
BN_ROWS(res_rows,
        (int c, int kind, const bn_coefs *k, const float *x, const float *res, const float *dy,
         float *gb, size_t r0, size_t r1, double *sdy, double *sdyx, double *ql),
        RES_CALL)

/* A quantizer that is not fused as one chunk sees it: a copy reading its two values from pv and
 * adding its parameter gradients into a chunk-local pg, so chunks run concurrently. */
typedef struct quant_view {
    mpq_quant q;
    float pv[2];
} quant_view;

static quant_view quant_local(const mpq_act *act, const mpq_step *s)
{
    quant_view v = {.q = *act->q, .pv = {0.0f, 0.0f}};
    if (mpq_qmethod_n_params(v.q.method) == 2) {
        v.pv[0] = s->val[v.q.p.off];
        v.pv[1] = s->val[v.q.p.off + 1];
        v.q.p.off = 0;
    }
    return v;
}

/* Pass 1 over one chunk: the sums of g and g * (x - mu) into sums[0..C), sums[C..2C). kind is the
 * row loops' (act_kind); g is stored into gb when set (the residual's gradient, or a non-fused
 * quantizer's gradient kept for pass 2; NULL: g is recomputed in pass 2). The quantizer's
 * parameter sums go into qacc: the core's sums of e_d, e_x when fused (KIND_UQ), else the
 * chained gradients of its per-sub-chunk calls. Eval writes dx = g * a. */
static void backward_chunk(const mpq_bn *l, const mpq_act *act, int kind, const quant_view *qv,
                           const mpq_step *s, const bn_coefs *k, const float *x, const float *res,
                           const float *dy, size_t r0, size_t r1, float *gb, float *dx,
                           double *sums, double qacc[2])
{
    const int c = l->c;
    double *sdy = sums, *sdyx = sums + c;
    for (int j = 0; j < 2 * c; j++)
        sums[j] = 0.0;
    qacc[0] = qacc[1] = 0.0;
    if (!applied_apart(act, kind)) {
        double lanes[2 * BN_JB] = {0.0};
        if (res)
            res_rows(c, kind, k, x, res, dy, gb, r0, r1, sdy, sdyx, lanes);
        else
            sums_rows(c, kind, k, x, dy, NULL, r0, r1, sdy, sdyx, lanes);
        for (int j = 0; j < BN_JB; j++)
            qacc[0] += lanes[j], qacc[1] += lanes[BN_JB + j];
        if (!s->training && dx)
            scale_rows(c, res ? KIND_G : kind, k, x, dy, res ? gb + r0 * c : NULL, r0, r1, dx);
        return;
    }
    /* pieces of at most BN_SUB_FLOATS: whole rows, or one row in column pieces where rows are
     * wider (the quantizer is elementwise; a piece's sums are those of its columns) */
    const size_t step = sub_rows(c);
    const int pw = c > BN_SUB_FLOATS ? BN_SUB_FLOATS : c;
    float o[BN_SUB_FLOATS], gtmp[BN_SUB_FLOATS];
    for (size_t r = r0; r < r1; r += step) {
        const size_t e = r + step < r1 ? r + step : r1;
        for (int j0 = 0; j0 < c; j0 += pw) {
            const int w = c - j0 < pw ? c - j0 : pw;
            const bn_coefs kp = {k->a + j0, k->b + j0, k->mu + j0, k->iv + j0, k->uq};
            const size_t at = r * c + j0, len = (e - r) * w; /* w < c: one row */
            for (size_t i = r; i < e; i++) {
                const float *xr = x + i * c + j0, *rr = res ? res + i * c + j0 : NULL;
                float *orow = o + (i - r) * w;
                if (rr) {
#pragma omp simd
                    for (int j = 0; j < w; j++)
                        orow[j] = xr[j] * kp.a[j] + kp.b[j] + rr[j];
                } else {
#pragma omp simd
                    for (int j = 0; j < w; j++)
                        orow[j] = xr[j] * kp.a[j] + kp.b[j];
                }
            }
            float pg[2] = {0.0f, 0.0f};
            float *g = gb ? gb + at : gtmp;
            mpq_quant_backward(&qv->q, qv->pv, pg, o, dy + at, g, len);
            qacc[0] += pg[0];
            qacc[1] += pg[1];
            sums_rows(w, KIND_G, &kp, x + at, dy + at, g, 0, e - r, sdy + j0, sdyx + j0, NULL);
            if (!s->training && dx)
                scale_rows(w, KIND_G, &kp, x + at, dy + at, g, 0, e - r, dx + at);
        }
    }
}

void mpq_bn_backward(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                     const float *dy, float *dx)
{
    mpq_bn_backward_res(l, act, s, x, NULL, dy, dx, NULL);
}

/* Backward's per-group coefficients: in training the cache's blocks (bn_cached), in eval the
 * scratch's (frozen statistics). */
typedef struct bn_back {
    const float *mu, *iv; /* xhat = (x - mu) * iv */
    float *a, *b;         /* the forward's y = act(x * a + b), a also dx's scale */
    float *mg, *mgh;      /* the group means of g and of g * xhat (training) */
} bn_back;

/* The cache: the forward's mean and inverse std per group, then backward's a, b, mg, mgh, kept
 * there so that pass 2 may run later (mpq_bn_dx_rows). */
static bn_back cached(const mpq_bn *l, const mpq_step *s)
{
    const size_t gc = (size_t)s->n_groups * l->c;
    float *m = mpq_at(s->arena, l->cache);
    MPQ_ASSERT(l->cache.n >= mpq_bn_cache_floats(l, s->n, s->n_groups), "bn: cache too small");
    return (bn_back){m, m + gc, m + 2 * gc, m + 3 * gc, m + 4 * gc, m + 5 * gc};
}

size_t mpq_bn_cache_floats(const mpq_bn *l, int n, int n_groups)
{
    (void)n;
    return 6 * (size_t)n_groups * l->c;
}

/* Whether pass 2 recomputes g from x and dy (no residual, no quantizer applied apart: pass 1
 * keeps no g). */
static int recomputes_g(const mpq_act *act, int kind, const float *res)
{
    return !res && !applied_apart(act, kind);
}

/* Pass 1 and the parameter gradients, for the row loops' kind (act_kind: kind, uq); in training
 * with want_dx, the cross-rank reduction and pass 2's coefficients too (into the cache). gb as in
 * backward_chunk; eval writes dx. Returns the chunks; *bk the coefficients. */
static chunks backward_sums(const mpq_bn *l, const mpq_act *act, const mpq_step *s, int kind,
                            const mpq_ucore *uq, const float *x, const float *res, const float *dy,
                            float *gb, float *dx, int want_dx, bn_back *bk)
{
    const int quant = act && act->kind == MPQ_ACT_QUANT, chunked = applied_apart(act, kind);
    mpq_step st = *s;
    if (!s->training) st.n_groups = 1;
    const chunks k = checked_plan(l, &st, act);
    const bn_ws v = ws_views(l, &st, &k);
    const int c = l->c, ng = st.n_groups;
    const size_t gc = (size_t)ng * c;
    const float *gamma = mpq_cat(s->val, l->gamma), *beta = mpq_cat(s->val, l->beta);
    float *dgamma = mpq_at(s->grad, l->gamma), *dbeta = mpq_at(s->grad, l->beta);
    if (s->training) {
        *bk = cached(l, s);
        for (size_t i = 0; i < gc; i++) {
            bk->a[i] = gamma[i % c] * bk->iv[i];
            bk->b[i] = beta[i % c] - bk->mu[i] * bk->a[i];
        }
    } else {
        const float *rv = mpq_cat(s->state, l->var);
        eval_coefs(l, s, v.ka, v.kb);
        for (int i = 0; i < c; i++)
            v.kd[i] = 1.0f / sqrtf(rv[i] + l->eps);
        *bk = (bn_back){mpq_cat(s->state, l->mean), v.kd, v.ka, v.kb, NULL, NULL};
    }
    const quant_view qv = chunked ? quant_local(act, s) : (quant_view){0};
    const bn_back b = *bk;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < k.total; i++) {
        size_t r0, r1;
        const size_t o = (size_t)chunk_rows(&k, i, &r0, &r1) * c;
        const bn_coefs kc = {b.a + o, b.b + o, b.mu + o, b.iv + o, *uq};
        backward_chunk(l, act, kind, &qv, s, &kc, x, res, dy, r0, r1, gb, dx,
                       v.part + (size_t)i * 2 * c, v.qpart + 2 * i);
    }
    double *sdy = v.red, *sdyx = sdy + gc, *cnt = sdyx + gc;
    sum_chunks(&k, v.part, 2 * (size_t)c, 0, c, sdy);
    sum_chunks(&k, v.part, 2 * (size_t)c, (size_t)c, c, sdyx);
    for (size_t i = 0; i < gc; i++) /* sums of g * (x - mu) to sums of g * xhat */
        sdyx[i] *= b.iv[i];
    for (int g = 0; g < ng; g++) /* parameter gradients: local sums (ranks allreduce them) */
        for (int i = 0; i < c; i++) {
            dgamma[i] += (float)sdyx[g * c + i];
            dbeta[i] += (float)sdy[g * c + i];
        }
    if (quant && mpq_qmethod_n_params(act->q->method) == 2) {
        double q0 = 0.0, q1 = 0.0;
        for (int i = 0; i < k.total; i++) {
            q0 += v.qpart[2 * i];
            q1 += v.qpart[2 * i + 1];
        }
        if (kind == KIND_UQ) {
            mpq_quant_ucore_grads(act->q, uq, q0, q1, s->grad);
        } else {
            s->grad[act->q->p.off] += (float)q0;
            s->grad[act->q->p.off + 1] += (float)q1;
        }
    }
    if (!want_dx || !s->training) return k;
    *cnt = (double)k.rows;
    reduce(s, v.red, red_len(l, ng));
    for (size_t i = 0; i < gc; i++) {
        bk->mg[i] = (float)(sdy[i] / *cnt);
        bk->mgh[i] = (float)(sdyx[i] / *cnt);
    }
    return k;
}

void mpq_bn_backward_res(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                         const float *res, const float *dy, float *dx, float *dres)
{
    MPQ_ASSERT(!res == !dres, "bn: a residual input needs its gradient buffer");
    bn_back b;
    mpq_ucore uq = {0};
    const int kind = act_kind(act, s->val, &uq);
    float *gb = res ? dres : applied_apart(act, kind) ? dx : NULL; /* where pass 1 keeps g */
    const chunks k = backward_sums(l, act, s, kind, &uq, x, res, dy, gb, dx, dx != NULL, &b);
    if (!dx || !s->training) return;
    const int c = l->c, kind2 = gb ? KIND_G : kind, stream = streams(l, s, dx);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < k.total; i++) {
        size_t r0, r1;
        const size_t o = (size_t)chunk_rows(&k, i, &r0, &r1) * c;
        const bn_coefs kc = {b.a + o, b.b + o, b.mu + o, b.iv + o, uq};
        dx_rows(c, kind2, &kc, b.mg + o, b.mgh + o, x, dy, gb ? gb : dx, r0, r1, stream, dx);
        if (stream) mpq_stream_fence();
    }
}

int mpq_bn_dx_rows_ok(const mpq_act *act, const mpq_step *s)
{
    mpq_ucore uq;
    return s->training && recomputes_g(act, act_kind(act, s->val, &uq), NULL);
}

void mpq_bn_backward_sums(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                          const float *dy)
{
    mpq_ucore uq = {0};
    const int kind = act_kind(act, s->val, &uq);
    MPQ_ASSERT(s->training && recomputes_g(act, kind, NULL), "bn: pass 2 cannot be deferred here");
    bn_back b;
    backward_sums(l, act, s, kind, &uq, x, NULL, dy, NULL, NULL, 1, &b);
}

void mpq_bn_dx_rows(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                    const float *dy, size_t r0, size_t r1, float *out)
{
    mpq_ucore uq = {0};
    const int kind = act_kind(act, s->val, &uq), c = l->c;
    const size_t rows = checked_plan(l, s, act).rows; /* per statistics group */
    const bn_back b = cached(l, s);
    MPQ_ASSERT(recomputes_g(act, kind, NULL) && s->training, "bn: pass 2 cannot be deferred here");
    MPQ_ASSERT(r1 <= (size_t)s->n * l->hw, "bn: rows %zu beyond the batch", r1);
    for (size_t r = r0; r < r1;) {
        const size_t g = r / rows, e = (g + 1) * rows < r1 ? (g + 1) * rows : r1, o = g * c;
        const bn_coefs kc = {b.a + o, b.b + o, b.mu + o, b.iv + o, uq};
        dx_rows(c, kind, &kc, b.mg + o, b.mgh + o, x + r * c, dy + r * c, NULL, 0, e - r, 0,
                out + (r - r0) * c);
        r = e;
    }
}
