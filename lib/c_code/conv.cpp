/* Native kernels of the three convolution Ops in lib/conv_ops.py and of ChannelSum in
   lib/reduce_ops.py (PyTensor's C/CVM backend).

   Each Op is im2col/col2im plus ONE large GEMM per call. The GEMM is numpy's own: views of our
   buffers go to PyArray_MatrixProduct2, which hands aligned contiguous (or transposed) float32
   and float64 2-D arrays to cblas_?gemm of the OpenBLAS bundled in numpy's wheel, so no BLAS
   needs configuring (a pip install of PyTensor has no blas__ldflags).

   Layouts (row-major; K = C*kh*kw, NP = N*Ho*Wo; "cols" is the im2col matrix (K, NP)):
     forward       res  (O, NP) = w (O, K)    @ cols (K, NP)     then res -> out (N, O, Ho, Wo)
                   (or res (NP, O) = cols.T @ w.T when O > Ho*Wo: faster in the deep layers)
     grad inputs   cols (K, NP) = w.T (K, O)  @ topT (O, NP)     then col2im -> (N, C, H, W)
     grad weights  dw   (O, K)  = topT (O, NP) @ cols.T (NP, K)  (the long NP is the inner dim,
                                                                  contiguous in both operands)
                   (or dw.T (K, O) = cols @ topT.T when K > O and NP > K)
   Row (c, a, b) of cols holds the input pixels that multiply w[:, c, a, b]: for conv_mode
   'conv' (true convolution) those sit at kernel offset (kh-1-a, kw-1-b), so the kernel flip
   costs nothing and no flipped copy of w is made.

   Compiled as C++ by PyTensor (g++); the numpy C API is imported by PyTensor's module init.
   This text is the c_support_code of all three Ops; lib/conv_ops.py hashes it into
   c_code_cache_version, so editing it recompiles.
*/
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#if defined(_WIN32)
#include <malloc.h>
#else
#include <pthread.h>
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace dcgan_conv {

/* The Op's props, from the node's params (so one compiled module serves every geometry). */
struct Geom {
    npy_intp sh, sw;          /* subsample */
    npy_intp pt, pb, pl, pr;  /* zero padding: top, bottom, left, right */
    int flip;                 /* 1: conv_mode 'conv' (kernel flipped); 0: 'cross' */
};

/* Sizes of one call: input (N, C, H, W), kernels (O, C, kh, kw), output (N, O, Ho, Wo). */
struct Dims {
    npy_intp N, C, H, W, O, kh, kw, Ho, Wo;
};

template <typename T> struct NpyType;
template <> struct NpyType<npy_float32> { enum { num = NPY_FLOAT32 }; };
template <> struct NpyType<npy_float64> { enum { num = NPY_FLOAT64 }; };

/* Owns one reference; releases it when leaving scope (every early error return included). */
struct Ref {
    PyArrayObject* p;
    explicit Ref(PyArrayObject* q = NULL) : p(q) {}
    ~Ref() { Py_XDECREF(p); }
    PyArrayObject* operator->() const { return p; }
    operator PyArrayObject*() const { return p; }
private:
    Ref(const Ref&);
    Ref& operator=(const Ref&);
};

/* ``a`` as an aligned C-contiguous array of ``typenum`` (a new reference to ``a`` itself when it
   already is one; a converted copy otherwise: inputs may be strided views or of a narrower dtype
   than the node's output). */
static PyArrayObject* as_c_array(PyArrayObject* a, int typenum, int ndim, const char* op,
                                 const char* what)
{
    if (a == NULL || PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: %s must have %d dimensions", op, what, ndim);
        return NULL;
    }
    return (PyArrayObject*)PyArray_FROMANY((PyObject*)a, typenum, ndim, ndim,
                                           NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
}

/* Fresh uninitialised C-contiguous array. */
static PyArrayObject* empty(int nd, const npy_intp* dims, int typenum)
{
    return (PyArrayObject*)PyArray_EMPTY(nd, dims, typenum, 0);
}

/* 2-D (rows, cols) C-contiguous view of the contiguous array ``base``'s data. */
static PyArrayObject* view2d(PyArrayObject* base, npy_intp rows, npy_intp cols, int writeable)
{
    npy_intp d[2] = {rows, cols};
    int flags = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | (writeable ? NPY_ARRAY_WRITEABLE : 0);
    PyArrayObject* v = (PyArrayObject*)PyArray_New(&PyArray_Type, 2, d, PyArray_TYPE(base), NULL,
                                                   PyArray_DATA(base), 0, flags, NULL);
    if (v == NULL)
        return NULL;
    Py_INCREF(base);
    if (PyArray_SetBaseObject(v, (PyObject*)base) < 0) {
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

/* 2-D (rows, cols) C-contiguous array over memory we own (scratch); valid while it lives. */
template <typename T>
static PyArrayObject* wrap2d(T* data, npy_intp rows, npy_intp cols)
{
    npy_intp d[2] = {rows, cols};
    return (PyArrayObject*)PyArray_New(&PyArray_Type, 2, d, NpyType<T>::num, NULL, data, 0,
                                       NPY_ARRAY_CARRAY, NULL);
}

/* Memory for the im2col matrix and the GEMM's other operand or result. Fresh pages on every
   call cost about as much as im2col itself (the matrix reaches ~420 MB at the paper's scale),
   so each compiled module (one per Op class and dtype, shared by all the nodes using it) keeps
   one workspace, grown to the largest request and never shrunk. A call that finds it in use
   (another Python thread is inside this Op; the flag is only touched under the GIL) gets a
   private buffer instead. */
static char* ws_data = NULL;
static size_t ws_size = 0;
static bool ws_busy = false;

static void* big_alloc(size_t bytes)
{
#if defined(_WIN32)
    return _aligned_malloc(bytes, 64);
#else
    const size_t huge = (size_t)1 << 21;  /* 2 MiB: page-aligned, as madvise wants */
    void* p = NULL;
    if (posix_memalign(&p, bytes >= huge ? huge : 64, bytes) != 0)
        return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= huge)  /* as numpy does for its large arrays: fewer TLB misses */
        madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
#endif
}

static void big_free(void* p)
{
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}

class Scratch {
public:
    /* ``bytes`` of scratch; get() is NULL, with MemoryError set, on failure. */
    explicit Scratch(size_t bytes) : p_(NULL), own_(false)
    {
        bytes = std::max(bytes, (size_t)64);
        if (!ws_busy) {
            if (ws_size < bytes) {
                big_free(ws_data);
                ws_size = 0;
                ws_data = (char*)big_alloc(bytes);
                if (ws_data != NULL)
                    ws_size = bytes;
            }
            p_ = ws_data;
            ws_busy = p_ != NULL;
        } else {
            p_ = (char*)big_alloc(bytes);
            own_ = true;
        }
        if (p_ == NULL)
            PyErr_NoMemory();
    }
    ~Scratch()
    {
        if (own_)
            big_free(p_);
        else if (p_ != NULL)
            ws_busy = false;
    }
    char* get() const { return p_; }

private:
    char* p_;
    bool own_;
    Scratch(const Scratch&);
    Scratch& operator=(const Scratch&);
};

/* Bytes of ``n`` elements of T rounded up to 64 (keeps each buffer in the scratch aligned). */
template <typename T>
static size_t padded_bytes(npy_intp n)
{
    return ((size_t)n * sizeof(T) + 63) & ~(size_t)63;
}

static PyArrayObject* transposed(PyArrayObject* a)
{
    return (PyArrayObject*)PyArray_Transpose(a, NULL);
}

/* out = a @ b by numpy's BLAS (out: C-contiguous, right shape and dtype, no overlap). */
static int gemm(PyArrayObject* a, PyArrayObject* b, PyArrayObject* out)
{
    if (PyArray_DIM(a, 1) == 0) {  /* empty sum: BLAS is not called with K = 0 */
        memset(PyArray_DATA(out), 0, PyArray_NBYTES(out));
        return 0;
    }
    PyObject* r = PyArray_MatrixProduct2((PyObject*)a, (PyObject*)b, out);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* ``*out`` as a writeable C-contiguous ``dims`` array of ``typenum``: the previous call's
   storage when it fits, a new array otherwise. Its contents are undefined. */
static int prepare_output(PyArrayObject** out, int nd, const npy_intp* dims, int typenum)
{
    PyArrayObject* z = *out;
    if (z != NULL && PyArray_NDIM(z) == nd && PyArray_TYPE(z) == typenum &&
        PyArray_IS_C_CONTIGUOUS(z) && PyArray_ISALIGNED(z) && PyArray_ISWRITEABLE(z)) {
        bool same = true;
        for (int i = 0; i < nd; ++i)
            same = same && PyArray_DIM(z, i) == dims[i];
        if (same)
            return 0;
    }
    Py_XDECREF(z);
    *out = empty(nd, dims, typenum);
    return *out == NULL ? -1 : 0;
}

/* Python's floor division (b > 0). */
static inline npy_intp floordiv(npy_intp a, npy_intp b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Output length of a conv along one axis, as lib.conv_ops.conv_out_size. */
static inline npy_intp out_size(npy_intp size, npy_intp k, npy_intp s, npy_intp p0, npy_intp p1)
{
    return floordiv(size + p0 + p1 - k, s) + 1;
}

/* As lib.conv_ops.check_geometry: ``out`` must be what a conv of ``in`` by ``k`` gives. */
static int check_geometry(const char* op, const npy_intp* in, const npy_intp* k,
                          const npy_intp* out, const Geom& g)
{
    const npy_intp s[2] = {g.sh, g.sw}, p0[2] = {g.pt, g.pl}, p1[2] = {g.pb, g.pr};
    for (int axis = 0; axis < 2; ++axis) {
        npy_intp expect = out_size(in[axis], k[axis], s[axis], p0[axis], p1[axis]);
        if (expect < 1 || expect != out[axis]) {
            PyErr_Format(PyExc_ValueError,
                         "%s: inconsistent sizes on axis %d: input %ld, kernel %ld, stride %ld, "
                         "padding (%ld, %ld) give %ld, not %ld", op, axis + 2, (long)in[axis],
                         (long)k[axis], (long)s[axis], (long)p0[axis], (long)p1[axis],
                         (long)expect, (long)out[axis]);
            return -1;
        }
    }
    return 0;
}

/* The int64 pair held by a shape-vector input (in_hw, k_hw); each entry must be >= lo. */
static int read_pair(PyArrayObject* v, npy_intp* pair, npy_intp lo, const char* op,
                     const char* what)
{
    Ref a(as_c_array(v, NPY_INT64, 1, op, what));
    if (a.p == NULL)
        return -1;
    if (PyArray_DIM(a, 0) != 2) {
        PyErr_Format(PyExc_ValueError, "%s: %s must have 2 entries, got %ld", op, what,
                     (long)PyArray_DIM(a, 0));
        return -1;
    }
    const npy_int64* d = (const npy_int64*)PyArray_DATA(a);
    for (int i = 0; i < 2; ++i) {
        if (d[i] < lo) {
            PyErr_Format(PyExc_ValueError, "%s: %s must be >= %ld, got (%ld, %ld)", op, what,
                         (long)lo, (long)d[0], (long)d[1]);
            return -1;
        }
        pair[i] = (npy_intp)d[i];
    }
    return 0;
}

/* Output positions [lo, hi) along one axis whose input index  x * s + off  lies in [0, size). */
static inline void valid_range(npy_intp off, npy_intp s, npy_intp size, npy_intp n,
                               npy_intp* lo, npy_intp* hi)
{
    npy_intp a = -off > 0 ? (-off + s - 1) / s : 0;
    npy_intp b = size - off > 0 ? (size - off + s - 1) / s : 0;
    *lo = std::min(a, n);
    *hi = std::max(*lo, std::min(b, n));
}

/* Threads for the memory-bound loops around the GEMM (the GEMM itself runs on numpy's BLAS
   threads): one per online core, at most 8; OMP_NUM_THREADS or OPENBLAS_NUM_THREADS, when set,
   cap it as they cap BLAS. Plain pthreads (std::thread doubled the compile time); none on
   Windows. */
static int loop_threads()
{
    static int n = 0;
    if (n == 0) {
#if defined(_WIN32)
        long cap = 1;
#else
        long cap = sysconf(_SC_NPROCESSORS_ONLN);
#endif
        const char* vars[2] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"};
        for (int i = 0; i < 2; ++i) {
            const char* v = getenv(vars[i]);
            if (v != NULL && atoi(v) > 0)
                cap = std::min(cap, (long)atoi(v));
        }
        n = (int)std::max(1L, std::min(cap, 8L));
    }
    return n;
}

typedef void (*RangeFn)(void* ctx, npy_intp begin, npy_intp end);

struct RangeJob {
    RangeFn fn;
    void* ctx;
    npy_intp begin, end;
};

static void* run_range_job(void* job)
{
    RangeJob* j = (RangeJob*)job;
    j->fn(j->ctx, j->begin, j->end);
    return NULL;
}

/* fn(ctx, begin, end) over [0, n) split across loop_threads(); serial when ``bytes`` (the memory
   the loop touches) is too small to pay for starting threads, or when a thread cannot start. */
static void parallel_for_impl(npy_intp n, double bytes, RangeFn fn, void* ctx)
{
    const npy_intp nt = std::min((npy_intp)loop_threads(), n);
    if (nt < 2 || bytes < (double)(1 << 22)) {
        fn(ctx, 0, n);
        return;
    }
#if defined(_WIN32)
    fn(ctx, 0, n);
#else
    RangeJob jobs[8];
    pthread_t tids[8];
    bool started[8];
    for (npy_intp t = 1; t < nt; ++t) {
        RangeJob job = {fn, ctx, n * t / nt, n * (t + 1) / nt};
        jobs[t] = job;
        started[t] = pthread_create(&tids[t], NULL, run_range_job, &jobs[t]) == 0;
        if (!started[t])
            run_range_job(&jobs[t]);
    }
    fn(ctx, 0, n / nt);
    for (npy_intp t = 1; t < nt; ++t)
        if (started[t])
            pthread_join(tids[t], NULL);
#endif
}

template <typename F>
static void call_range(void* f, npy_intp begin, npy_intp end)
{
    (*(F*)f)(begin, end);
}

/* f(begin, end) over [0, n), on threads when it pays (see parallel_for_impl). */
template <typename F>
static void parallel_for(npy_intp n, double bytes, F f)
{
    parallel_for_impl(n, bytes, &call_range<F>, &f);
}

/* cols (K, NP) from X (N, C, H, W) (im2col); or, with ACC, X = col2im(cols), X's planes zeroed
   first. Work unit u = (c, block of nb images) in [u0, u1): its input planes and the column
   segments they feed, disjoint between units. Per kernel offset (a, b) the unit's segments of
   cols row (c, a, b) are contiguous, so each pass streams through memory, and the nb planes
   (sized to stay in cache) are reused by all kh*kw passes. */
template <typename T, bool ACC>
static void im2col_or_col2im(T* X, T* cols, const Dims& d, const Geom& g, npy_intp nb,
                             npy_intp u0, npy_intp u1)
{
    const npy_intp P = d.Ho * d.Wo, NP = d.N * P, HW = d.H * d.W;
    const npy_intp blocks = (d.N + nb - 1) / nb;
    for (npy_intp u = u0; u < u1; ++u) {
        const npy_intp c = u / blocks, n0 = (u % blocks) * nb, n1 = std::min(d.N, n0 + nb);
        if (ACC)
            for (npy_intp n = n0; n < n1; ++n)
                std::fill(X + (n * d.C + c) * HW, X + (n * d.C + c + 1) * HW, T(0));
        for (npy_intp a = 0; a < d.kh; ++a) {
            const npy_intp i = (g.flip ? d.kh - 1 - a : a) - g.pt;
            npy_intp y0, y1;
            valid_range(i, g.sh, d.H, d.Ho, &y0, &y1);
            for (npy_intp b = 0; b < d.kw; ++b) {
                const npy_intp j = (g.flip ? d.kw - 1 - b : b) - g.pl;
                npy_intp x0, x1;
                valid_range(j, g.sw, d.W, d.Wo, &x0, &x1);
                T* col_row = cols + ((c * d.kh + a) * d.kw + b) * NP;
                for (npy_intp n = n0; n < n1; ++n) {
                    T* plane = X + (n * d.C + c) * HW;
                    T* col = col_row + n * P;
                    if (!ACC) {
                        std::fill(col, col + y0 * d.Wo, T(0));
                        std::fill(col + y1 * d.Wo, col + P, T(0));
                    }
                    for (npy_intp y = y0; y < y1; ++y) {
                        T* row = plane + (y * g.sh + i) * d.W;  /* row[x*sw + j], x in [x0, x1) */
                        T* dst = col + y * d.Wo;
                        if (ACC) {
                            if (g.sw == 1)
                                for (npy_intp x = x0; x < x1; ++x) row[x + j] += dst[x];
                            else if (g.sw == 2)  /* the paper's stride: a constant vectorizes */
                                for (npy_intp x = x0; x < x1; ++x) row[2 * x + j] += dst[x];
                            else
                                for (npy_intp x = x0; x < x1; ++x) row[x * g.sw + j] += dst[x];
                        } else {
                            std::fill(dst, dst + x0, T(0));
                            if (g.sw == 1)
                                for (npy_intp x = x0; x < x1; ++x) dst[x] = row[x + j];
                            else if (g.sw == 2)
                                for (npy_intp x = x0; x < x1; ++x) dst[x] = row[2 * x + j];
                            else
                                for (npy_intp x = x0; x < x1; ++x) dst[x] = row[x * g.sw + j];
                            std::fill(dst + x1, dst + d.Wo, T(0));
                        }
                    }
                }
            }
        }
    }
}

template <typename T, bool ACC>
static void im2col_or_col2im(T* X, T* cols, const Dims& d, const Geom& g)
{
    /* Images per unit: enough for long contiguous passes over cols, few enough that their
       planes stay in cache across the kh*kw passes (L1 for col2im's read-modify-write, L2 for
       im2col), and units for every thread. */
    const npy_intp plane_bytes = std::max((npy_intp)1, d.H * d.W * (npy_intp)sizeof(T));
    const npy_intp cache_bytes = ACC ? (npy_intp)1 << 12 : (npy_intp)1 << 18;
    const npy_intp blocks_wanted = (4 * loop_threads() + d.C - 1) / std::max(d.C, (npy_intp)1);
    npy_intp nb = std::min(cache_bytes / plane_bytes, d.N / blocks_wanted);
    nb = std::max(nb, (npy_intp)1);
    const npy_intp units = d.C * ((d.N + nb - 1) / nb);
    const double bytes = (double)sizeof(T) * d.C * d.kh * d.kw * d.N * d.Ho * d.Wo;
    parallel_for(units, bytes, [&](npy_intp u0, npy_intp u1) {
        im2col_or_col2im<T, ACC>(X, cols, d, g, nb, u0, u1);
    });
}

/* (A, B, P) -> (B, A, P) copy: between the NCHW tensors and the GEMM's (O, NP) matrices. */
template <typename T>
static void swap_01(const T* src, T* dst, npy_intp A, npy_intp B, npy_intp P)
{
    parallel_for(A, (double)sizeof(T) * A * B * P, [&](npy_intp a0, npy_intp a1) {
        for (npy_intp a = a0; a < a1; ++a)
            for (npy_intp b = 0; b < B; ++b)
                memcpy(dst + (b * A + a) * P, src + (a * B + b) * P, P * sizeof(T));
    });
}

/* dst[n] (B, A) = src[n] (A, B) transposed, for n < N: in 32 x 32 tiles. */
template <typename T>
static void transpose_batch(const T* src, T* dst, npy_intp N, npy_intp A, npy_intp B)
{
    const npy_intp tile = 32;
    parallel_for(N, (double)sizeof(T) * N * A * B, [&](npy_intp n0, npy_intp n1) {
        for (npy_intp n = n0; n < n1; ++n) {
            const T* s = src + n * A * B;
            T* d = dst + n * A * B;
            for (npy_intp a0 = 0; a0 < A; a0 += tile)
                for (npy_intp b0 = 0; b0 < B; b0 += tile) {
                    const npy_intp a1 = std::min(A, a0 + tile), b1 = std::min(B, b0 + tile);
                    for (npy_intp a = a0; a < a1; ++a)
                        for (npy_intp b = b0; b < b1; ++b)
                            d[b * A + a] = s[a * B + b];
                }
        }
    });
}

/* Conv2d: out (N, O, Ho, Wo) = conv(X (N, C, H, W), w (O, C, kh, kw)). */
template <typename T>
static int forward(PyArrayObject* X_in, PyArrayObject* w_in, PyArrayObject** out, const Geom& g)
{
    const char* op = "conv2d";
    const int tn = NpyType<T>::num;
    Ref X(as_c_array(X_in, tn, 4, op, "X")), w(as_c_array(w_in, tn, 4, op, "w"));
    if (X.p == NULL || w.p == NULL)
        return -1;
    Dims d;
    d.N = PyArray_DIM(X, 0); d.C = PyArray_DIM(X, 1); d.H = PyArray_DIM(X, 2);
    d.W = PyArray_DIM(X, 3); d.O = PyArray_DIM(w, 0); d.kh = PyArray_DIM(w, 2);
    d.kw = PyArray_DIM(w, 3);
    if (PyArray_DIM(w, 1) != d.C) {
        PyErr_Format(PyExc_ValueError, "conv2d: X has %ld channels but w expects %ld",
                     (long)d.C, (long)PyArray_DIM(w, 1));
        return -1;
    }
    d.Ho = out_size(d.H, d.kh, g.sh, g.pt, g.pb);
    d.Wo = out_size(d.W, d.kw, g.sw, g.pl, g.pr);
    if (d.Ho < 1 || d.Wo < 1) {
        PyErr_Format(PyExc_ValueError, "conv2d: kernel (%ld, %ld) larger than the padded "
                     "input (%ld, %ld)", (long)d.kh, (long)d.kw, (long)(d.H + g.pt + g.pb),
                     (long)(d.W + g.pl + g.pr));
        return -1;
    }
    const npy_intp K = d.C * d.kh * d.kw, P = d.Ho * d.Wo, NP = d.N * P;
    const npy_intp odims[4] = {d.N, d.O, d.Ho, d.Wo};
    if (prepare_output(out, 4, odims, tn) < 0)
        return -1;
    /* The GEMM's result: (O, NP) = w @ cols, or, with more channels than output pixels (the
       deep layers), (NP, O) = cols.T @ w.T, which numpy's OpenBLAS ran ~25% faster at the
       paper's 8px layer (1024 x 12800 x 2048). Either way it is then reordered into out,
       except (O, NP) for a batch of one, which is out itself. */
    const bool pixel_major = d.O > P;
    const bool direct = d.N == 1 && !pixel_major;
    Scratch scratch(padded_bytes<T>(K * NP) + (direct ? 0 : padded_bytes<T>(d.O * NP)));
    if (scratch.get() == NULL)
        return -1;
    T* cols_p = (T*)scratch.get();
    T* res_p = direct ? (T*)PyArray_DATA(*out) : (T*)(scratch.get() + padded_bytes<T>(K * NP));
    Py_BEGIN_ALLOW_THREADS
    im2col_or_col2im<T, false>((T*)PyArray_DATA(X), cols_p, d, g);
    Py_END_ALLOW_THREADS
    Ref w2(view2d(w, d.O, K, 0)), cols(wrap2d(cols_p, K, NP));
    if (w2.p == NULL || cols.p == NULL)
        return -1;
    T* z = (T*)PyArray_DATA(*out);
    if (pixel_major) {
        Ref colsT(transposed(cols)), w2T(transposed(w2)), res(wrap2d(res_p, NP, d.O));
        if (colsT.p == NULL || w2T.p == NULL || res.p == NULL || gemm(colsT, w2T, res) < 0)
            return -1;
        Py_BEGIN_ALLOW_THREADS
        transpose_batch((const T*)res_p, z, d.N, P, d.O);
        Py_END_ALLOW_THREADS
    } else {
        Ref res(wrap2d(res_p, d.O, NP));
        if (res.p == NULL || gemm(w2, cols, res) < 0)
            return -1;
        if (!direct) {
            Py_BEGIN_ALLOW_THREADS
            swap_01((const T*)res_p, z, d.O, d.N, P);
            Py_END_ALLOW_THREADS
        }
    }
    return 0;
}

/* Conv2dGradInputs: out (N, C, in_hw) = adjoint of the conv in X, applied to top (N, O, Ho, Wo). */
template <typename T>
static int grad_inputs(PyArrayObject* w_in, PyArrayObject* top_in, PyArrayObject* hw_in,
                       PyArrayObject** out, const Geom& g)
{
    const char* op = "deconv";
    const int tn = NpyType<T>::num;
    Ref w(as_c_array(w_in, tn, 4, op, "w")), top(as_c_array(top_in, tn, 4, op, "top"));
    if (w.p == NULL || top.p == NULL)
        return -1;
    npy_intp in_hw[2];
    if (read_pair(hw_in, in_hw, 0, op, "in_hw") < 0)
        return -1;
    Dims d;
    d.N = PyArray_DIM(top, 0); d.O = PyArray_DIM(w, 0); d.C = PyArray_DIM(w, 1);
    d.kh = PyArray_DIM(w, 2); d.kw = PyArray_DIM(w, 3); d.Ho = PyArray_DIM(top, 2);
    d.Wo = PyArray_DIM(top, 3); d.H = in_hw[0]; d.W = in_hw[1];
    if (PyArray_DIM(top, 1) != d.O) {
        PyErr_Format(PyExc_ValueError, "deconv: input has %ld channels but w expects %ld",
                     (long)PyArray_DIM(top, 1), (long)d.O);
        return -1;
    }
    const npy_intp k[2] = {d.kh, d.kw}, o[2] = {d.Ho, d.Wo};
    if (check_geometry(op, in_hw, k, o, g) < 0)
        return -1;
    const npy_intp K = d.C * d.kh * d.kw, P = d.Ho * d.Wo, NP = d.N * P;
    const npy_intp odims[4] = {d.N, d.C, d.H, d.W};
    if (prepare_output(out, 4, odims, tn) < 0)
        return -1;
    /* scratch: cols (K, NP), then topT (O, NP) unless the batch is one (top is then topT) */
    Scratch scratch(padded_bytes<T>(K * NP) + (d.N > 1 ? padded_bytes<T>(d.O * NP) : 0));
    if (scratch.get() == NULL)
        return -1;
    T* cols_p = (T*)scratch.get();
    T* topT_p = d.N > 1 ? (T*)(scratch.get() + padded_bytes<T>(K * NP)) : (T*)PyArray_DATA(top);
    if (d.N > 1) {
        Py_BEGIN_ALLOW_THREADS
        swap_01((const T*)PyArray_DATA(top), topT_p, d.N, d.O, P);
        Py_END_ALLOW_THREADS
    }
    Ref w2(view2d(w, d.O, K, 0)), cols(wrap2d(cols_p, K, NP)), topT(wrap2d(topT_p, d.O, NP));
    if (w2.p == NULL || cols.p == NULL || topT.p == NULL)
        return -1;
    Ref w2T(transposed(w2));
    if (w2T.p == NULL || gemm(w2T, topT, cols) < 0)
        return -1;
    T* z = (T*)PyArray_DATA(*out);
    Py_BEGIN_ALLOW_THREADS
    im2col_or_col2im<T, true>(z, cols_p, d, g);
    Py_END_ALLOW_THREADS
    return 0;
}

/* Conv2dGradWeights: out (O, C, k_hw) = adjoint of the conv in w, for X (N, C, H, W) and top. */
template <typename T>
static int grad_weights(PyArrayObject* X_in, PyArrayObject* top_in, PyArrayObject* k_in,
                        PyArrayObject** out, const Geom& g)
{
    const char* op = "conv2d weight gradient";
    const int tn = NpyType<T>::num;
    Ref X(as_c_array(X_in, tn, 4, op, "X")), top(as_c_array(top_in, tn, 4, op, "top"));
    if (X.p == NULL || top.p == NULL)
        return -1;
    npy_intp k[2];
    if (read_pair(k_in, k, 1, op, "k_hw") < 0)
        return -1;
    Dims d;
    d.N = PyArray_DIM(X, 0); d.C = PyArray_DIM(X, 1); d.H = PyArray_DIM(X, 2);
    d.W = PyArray_DIM(X, 3); d.O = PyArray_DIM(top, 1); d.kh = k[0]; d.kw = k[1];
    d.Ho = PyArray_DIM(top, 2); d.Wo = PyArray_DIM(top, 3);
    if (PyArray_DIM(top, 0) != d.N) {
        PyErr_Format(PyExc_ValueError, "%s: X has batch size %ld but top has %ld", op,
                     (long)d.N, (long)PyArray_DIM(top, 0));
        return -1;
    }
    const npy_intp in[2] = {d.H, d.W}, o[2] = {d.Ho, d.Wo};
    if (check_geometry(op, in, k, o, g) < 0)
        return -1;
    const npy_intp K = d.C * d.kh * d.kw, P = d.Ho * d.Wo, NP = d.N * P;
    const npy_intp odims[4] = {d.O, d.C, d.kh, d.kw};
    if (prepare_output(out, 4, odims, tn) < 0)
        return -1;
    /* dw (O, K) = topT @ cols.T; or, with more kernel weights per output channel than
       channels (K > O) and pixels enough to pay for transposing the result (NP > K),
       dw.T (K, O) = cols @ topT.T, transposed into out. numpy's OpenBLAS on 2 cores: the
       second form 1.2-1.7x faster at the paper's 32px and 16px layers, the first 2.5x faster
       at 64px (K = 75), the two even at 8px (where NP < K). */
    const bool k_major = K > d.O && NP > K;
    const size_t cols_bytes = padded_bytes<T>(K * NP), topT_bytes = padded_bytes<T>(d.O * NP);
    Scratch scratch(cols_bytes + (d.N > 1 ? topT_bytes : 0) +
                    (k_major ? padded_bytes<T>(K * d.O) : 0));
    if (scratch.get() == NULL)
        return -1;
    T* cols_p = (T*)scratch.get();
    T* topT_p = d.N > 1 ? (T*)(scratch.get() + cols_bytes) : (T*)PyArray_DATA(top);
    T* dwT_p = (T*)(scratch.get() + cols_bytes + (d.N > 1 ? topT_bytes : 0));
    Py_BEGIN_ALLOW_THREADS
    im2col_or_col2im<T, false>((T*)PyArray_DATA(X), cols_p, d, g);
    if (d.N > 1)
        swap_01((const T*)PyArray_DATA(top), topT_p, d.N, d.O, P);
    Py_END_ALLOW_THREADS
    Ref cols(wrap2d(cols_p, K, NP)), topT(wrap2d(topT_p, d.O, NP));
    if (cols.p == NULL || topT.p == NULL)
        return -1;
    if (k_major) {
        Ref topTT(transposed(topT)), dwT(wrap2d(dwT_p, K, d.O));
        if (topTT.p == NULL || dwT.p == NULL || gemm(cols, topTT, dwT) < 0)
            return -1;
        Py_BEGIN_ALLOW_THREADS
        transpose_batch((const T*)dwT_p, (T*)PyArray_DATA(*out), 1, K, d.O);
        Py_END_ALLOW_THREADS
    } else {
        Ref colsT(transposed(cols)), dw(view2d(*out, d.O, K, 1));
        if (colsT.p == NULL || dw.p == NULL || gemm(topT, colsT, dw) < 0)
            return -1;
    }
    return 0;
}

/* ChannelSum: out (C,) = X (N, C, H, W) summed over N, H and W, in double precision (as
   PyTensor's Sum with acc_dtype float64). Threads over channels; each (n, c) plane is a
   contiguous run, summed with 8 independent accumulators so that the loop vectorizes. */
template <typename T>
static int channel_sum(PyArrayObject* X_in, PyArrayObject** out)
{
    const int tn = NpyType<T>::num;
    Ref X(as_c_array(X_in, tn, 4, "channel_sum", "X"));
    if (X.p == NULL)
        return -1;
    const npy_intp N = PyArray_DIM(X, 0), C = PyArray_DIM(X, 1);
    const npy_intp P = PyArray_DIM(X, 2) * PyArray_DIM(X, 3);
    if (prepare_output(out, 1, &C, tn) < 0)
        return -1;
    const T* x = (const T*)PyArray_DATA(X);
    T* o = (T*)PyArray_DATA(*out);
    Py_BEGIN_ALLOW_THREADS
    parallel_for(C, (double)sizeof(T) * N * C * P, [&](npy_intp c0, npy_intp c1) {
        for (npy_intp c = c0; c < c1; ++c) {
            double acc[8] = {0., 0., 0., 0., 0., 0., 0., 0.};
            for (npy_intp n = 0; n < N; ++n) {
                const T* p = x + (n * C + c) * P;
                npy_intp i = 0;
                for (; i + 8 <= P; i += 8)
                    for (int k = 0; k < 8; ++k)
                        acc[k] += (double)p[i + k];
                for (; i < P; ++i)
                    acc[0] += (double)p[i];
            }
            o[c] = (T)(((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                       ((acc[4] + acc[5]) + (acc[6] + acc[7])));
        }
    });
    Py_END_ALLOW_THREADS
    return 0;
}

}  /* namespace dcgan_conv */
