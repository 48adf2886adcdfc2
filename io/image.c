/* The resampler and pixel statistics (see image.h). The resampler runs separably: a horizontal
 * pass over the source rows the vertical filter needs, into a float row buffer in the caller's
 * workspace, then a vertical pass into dst. Weights are precomputed per output column and row. */
#include "io/image.h"

#include <math.h>
#include <string.h>

#include "core/err.h"

/* Largest number of taps for a filter shrinking in_size to out_size (support radius = scale). */
static int max_taps(int in_size, int out_size)
{
    double scale = (double)in_size / out_size;
    return (int)ceil(2.0 * (scale > 1.0 ? scale : 1.0)) + 2;
}

size_t mpq_image_resample_ws_bytes(int in_h, int in_w, int c, int out_h, int out_w)
{
    size_t kx = (size_t)max_taps(in_w, out_w), ky = (size_t)max_taps(in_h, out_h);
    size_t n_floats = (size_t)out_w * kx + (size_t)out_h * ky + (size_t)in_h * out_w * c;
    size_t n_ints = (size_t)out_w + (size_t)out_h + 2;
    return n_floats * sizeof(float) + n_ints * sizeof(int) + 16;
}

/* For each output coordinate i of out_size covering [start, start + len) of the input: the first
 * input index first[i] and k weights wts[i*k .. ], zero-padded, summing to 1. */
static void coeffs(int in_size, double start, double len, int out_size, int k, int *first,
                   float *wts)
{
    const double scale = len / out_size, fs = scale > 1.0 ? scale : 1.0;
    const int ke = k < in_size ? k : in_size; /* taps actually read */
    for (int i = 0; i < out_size; i++) {
        double center = start + (i + 0.5) * scale, sum = 0.0;
        int lo = (int)floor(center - fs), hi = (int)ceil(center + fs);
        float *wi = wts + (size_t)i * k;
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        if (hi - lo > ke) hi = lo + ke;
        memset(wi, 0, sizeof(float) * (size_t)k);
        for (int j = lo; j < hi; j++) {
            double t = fabs((j + 0.5 - center) / fs);
            double v = t < 1.0 ? 1.0 - t : 0.0;
            wi[j - lo] = (float)v;
            sum += v;
        }
        if (sum > 0.0) {
            for (int j = 0; j < hi - lo; j++)
                wi[j] = (float)(wi[j] / sum);
        } else { /* degenerate region: nearest pixel */
            lo = (int)floor(center);
            lo = lo < 0 ? 0 : lo >= in_size ? in_size - 1 : lo;
            wi[0] = 1.0f;
        }
        /* all ke taps must index the image: move the window left, weights right */
        if (lo + ke > in_size) {
            int shift = lo + ke - in_size;
            memmove(wi + shift, wi, sizeof(float) * (size_t)(ke - shift));
            memset(wi, 0, sizeof(float) * (size_t)shift);
            lo -= shift;
        }
        first[i] = lo;
    }
}

void mpq_image_resample(const uint8_t *src, int h, int w, int c, double y0, double x0, double rh,
                        double rw, int out_h, int out_w, float *dst, void *ws)
{
    const int kx = max_taps(w, out_w), ky = max_taps(h, out_h);
    const size_t row_floats = (size_t)out_w * c;
    float *wx = ws, *wy = wx + (size_t)out_w * kx, *tmp = wy + (size_t)out_h * ky;
    int *fx = (int *)(tmp + (size_t)h * row_floats), *fy = fx + out_w;
    int r_lo, r_hi;
    MPQ_ASSERT(out_h > 0 && out_w > 0 && rh > 0 && rw > 0 && y0 >= 0 && x0 >= 0 &&
                   y0 + rh <= h + 1e-6 && x0 + rw <= w + 1e-6,
               "resample region (%g,%g)+(%g,%g) outside %dx%d", y0, x0, rh, rw, h, w);
    coeffs(w, x0, rw, out_w, kx, fx, wx);
    coeffs(h, y0, rh, out_h, ky, fy, wy);
    const int kxe = kx < w ? kx : w, kye = ky < h ? ky : h; /* taps read (tiny images) */
    r_lo = fy[0];
    r_hi = fy[out_h - 1] + kye;
    for (int r = r_lo; r < r_hi; r++) { /* horizontal pass: rows the vertical filter reads */
        const uint8_t *srow = src + (size_t)r * w * c;
        float *trow = tmp + (size_t)(r - r_lo) * row_floats;
        for (int ox = 0; ox < out_w; ox++) {
            const float *wi = wx + (size_t)ox * kx;
            const uint8_t *sp = srow + (size_t)fx[ox] * c;
            for (int ch = 0; ch < c; ch++) {
                float acc = 0.0f;
                for (int k = 0; k < kxe; k++)
                    acc += wi[k] * (float)sp[(size_t)k * c + ch];
                trow[(size_t)ox * c + ch] = acc;
            }
        }
    }
    for (int oy = 0; oy < out_h; oy++) { /* vertical pass */
        const float *wi = wy + (size_t)oy * ky;
        float *drow = dst + (size_t)oy * row_floats;
        memset(drow, 0, sizeof(float) * row_floats);
        for (int k = 0; k < kye; k++) {
            const float wk = wi[k];
            const float *trow = tmp + (size_t)(fy[oy] + k - r_lo) * row_floats;
            if (wk == 0.0f) continue;
            for (size_t j = 0; j < row_floats; j++)
                drow[j] += wk * trow[j];
        }
    }
}

void mpq_image_to_u8(const float *x, size_t n, uint8_t *y)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i] + 0.5f;
        y[i] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
    }
}

void mpq_pixel_stats_init(mpq_pixel_stats *s, int c)
{
    MPQ_ASSERT(c >= 1 && c <= 4, "pixel stats: %d channels", c);
    memset(s, 0, sizeof *s);
    s->c = c;
}

void mpq_pixel_stats_add(mpq_pixel_stats *s, const uint8_t *x, size_t n_pixels)
{
    for (int ch = 0; ch < s->c; ch++) {
        uint64_t sum = 0, sum_sq = 0;
        for (size_t i = 0; i < n_pixels; i++) {
            uint64_t v = x[i * (size_t)s->c + ch];
            sum += v;
            sum_sq += v * v;
        }
        s->sum[ch] += sum;
        s->sum_sq[ch] += sum_sq;
    }
    s->n_pixels += n_pixels;
}

void mpq_pixel_stats_finish(const mpq_pixel_stats *s, float *mean, float *std)
{
    for (int ch = 0; ch < s->c; ch++) {
        double n = s->n_pixels ? (double)s->n_pixels : 1.0;
        double m = (double)s->sum[ch] / n, var = (double)s->sum_sq[ch] / n - m * m;
        mean[ch] = (float)m;
        std[ch] = (float)sqrt(var > 0.0 ? var : 0.0);
    }
}
