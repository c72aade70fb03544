/* The compiled featurizer: word and char_wb n-gram term counts for a batch of texts, in one pass.
 *
 * Terms are looked up by a 64-bit FNV-1a hash of their code points in a sorted table built from the
 * vocabulary (model/kinds/compiled.py builds it with hash_terms below, and refuses a vocabulary whose hashes
 * collide). The analyzers follow scikit-learn's TfidfVectorizer exactly:
 *   word    : tokens are maximal runs of word characters (str.isalnum() or '_'), the default
 *             token_pattern (?u)\b\w+\b; n-grams are tokens joined by one space;
 *   char_wb : words are split on white space (str.isspace()), padded with one space on each side, and
 *             every n-gram of each length is taken; a word shorter than the length is counted once.
 * The caller lower-cases the texts. Output per text: its unique term ids (in first-seen order) and counts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static inline uint64_t fnv_step(uint64_t h, Py_UCS4 c) {
    h ^= (uint64_t)c;
    return h * FNV_PRIME;
}

/* An open-addressing hash table (linear probing, power-of-two size, at most half full) built by
 * build_table: slot keys hold the term hash (0 marks an empty slot; a hash of 0 is stored as 1). */
typedef struct {
    const uint64_t *keys;
    const int32_t *vals;
    Py_ssize_t n; /* slots, a power of two */
} Table;

static inline uint64_t nonzero(uint64_t h) { return h ? h : 1; }

static inline int32_t lookup(const Table *t, uint64_t h) {
    h = nonzero(h);
    Py_ssize_t mask = t->n - 1;
    Py_ssize_t i = (Py_ssize_t)((h ^ (h >> 29)) & (uint64_t)mask);
    while (t->keys[i]) {
        if (t->keys[i] == h) return t->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

typedef struct {
    int32_t *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_push(Buf *b, int32_t v) {
    if (b->len == b->cap) {
        Py_ssize_t cap = b->cap ? b->cap * 2 : 1024;
        int32_t *data = (int32_t *)realloc(b->data, (size_t)cap * sizeof(int32_t));
        if (!data) return -1;
        b->data = data;
        b->cap = cap;
    }
    b->data[b->len++] = v;
    return 0;
}

/* A per-call cache of char_wb words: the word's hash -> its term ids (a slice of `pool`). Words repeat
 * (Zipf), so most words cost one probe instead of one per n-gram. */
typedef struct {
    uint64_t *keys;  /* 0 = empty */
    int32_t *start;  /* offset into pool */
    int32_t *count;  /* term ids of the word */
    Py_ssize_t size, used;
    Buf pool;
} WordCache;

static int cache_init(WordCache *c) {
    c->size = 1 << 14;
    c->used = 0;
    c->keys = (uint64_t *)calloc((size_t)c->size, sizeof(uint64_t));
    c->start = (int32_t *)malloc((size_t)c->size * sizeof(int32_t));
    c->count = (int32_t *)malloc((size_t)c->size * sizeof(int32_t));
    c->pool.data = NULL;
    c->pool.len = c->pool.cap = 0;
    return (c->keys && c->start && c->count) ? 0 : -1;
}

static void cache_free(WordCache *c) {
    free(c->keys);
    free(c->start);
    free(c->count);
    free(c->pool.data);
}

static inline Py_ssize_t cache_slot(const WordCache *c, uint64_t h) {
    Py_ssize_t mask = c->size - 1;
    Py_ssize_t i = (Py_ssize_t)((h ^ (h >> 31)) & (uint64_t)mask);
    while (c->keys[i] && c->keys[i] != h) i = (i + 1) & mask;
    return i;
}

static int is_word_char(Py_UCS4 c) { return c == '_' || Py_UNICODE_ISALNUM(c); }

/* word n-grams of one text into `terms` */
static int word_terms(const Py_UCS4 *s, Py_ssize_t len, int lo, int hi, const Table *t, Buf *terms,
                      Buf *starts, Buf *ends) {
    starts->len = ends->len = 0;
    Py_ssize_t i = 0;
    while (i < len) {
        while (i < len && !is_word_char(s[i])) i++;
        if (i >= len) break;
        Py_ssize_t j = i;
        while (j < len && is_word_char(s[j])) j++;
        if (buf_push(starts, (int32_t)i) || buf_push(ends, (int32_t)j)) return -1;
        i = j;
    }
    Py_ssize_t ntok = starts->len;
    for (int n = lo; n <= hi; n++) {
        for (Py_ssize_t k = 0; k + n <= ntok; k++) {
            uint64_t h = FNV_OFFSET;
            for (int m = 0; m < n; m++) {
                if (m) h = fnv_step(h, ' ');
                for (Py_ssize_t c = starts->data[k + m]; c < ends->data[k + m]; c++) h = fnv_step(h, s[c]);
            }
            int32_t id = lookup(t, h);
            if (id >= 0 && buf_push(terms, id)) return -1;
        }
    }
    return 0;
}

/* char_wb n-grams of one text into `terms` */
static int char_wb_terms(const Py_UCS4 *s, Py_ssize_t len, int lo, int hi, const Table *t, Buf *terms,
                         Py_UCS4 **padded, Py_ssize_t *padcap, WordCache *cache) {
    Py_ssize_t i = 0;
    while (i < len) {
        while (i < len && Py_UNICODE_ISSPACE(s[i])) i++;
        if (i >= len) break;
        Py_ssize_t j = i;
        while (j < len && !Py_UNICODE_ISSPACE(s[j])) j++;
        /* the word's own hash (with its length mixed in) keys the cache */
        uint64_t wh = FNV_OFFSET;
        for (Py_ssize_t c = i; c < j; c++) wh = fnv_step(wh, s[c]);
        wh = nonzero(fnv_step(wh, (Py_UCS4)(j - i) + 0x110000u));
        Py_ssize_t slot = cache_slot(cache, wh);
        if (cache->keys[slot] == wh) {
            for (int32_t k = 0; k < cache->count[slot]; k++)
                if (buf_push(terms, cache->pool.data[cache->start[slot] + k])) return -1;
            i = j;
            continue;
        }
        Py_ssize_t before = terms->len;
        Py_ssize_t wlen = j - i + 2;
        if (wlen > *padcap) {
            Py_UCS4 *p = (Py_UCS4 *)realloc(*padded, (size_t)wlen * 2 * sizeof(Py_UCS4));
            if (!p) return -1;
            *padded = p;
            *padcap = wlen * 2;
        }
        Py_UCS4 *w = *padded;
        w[0] = ' ';
        memcpy(w + 1, s + i, (size_t)(j - i) * sizeof(Py_UCS4));
        w[wlen - 1] = ' ';
        /* every n-gram starting at `off`, lengths lo..hi, hashed by extending one character at a time;
         * scikit-learn's rule: for a word shorter than a length, only the whole word counts, once */
        for (Py_ssize_t off = 0; off < wlen; off++) {
            uint64_t h = FNV_OFFSET;
            Py_ssize_t c = off;
            for (int n = 1; n <= hi; n++) {
                if (c >= wlen) break;
                h = fnv_step(h, w[c++]);
                if (n < lo) continue;
                if (off + n > wlen) break;
                int32_t id = lookup(t, h);
                if (id >= 0 && buf_push(terms, id)) return -1;
            }
        }
        if (wlen < lo) { /* shorter than every length: the whole padded word once */
            uint64_t h = FNV_OFFSET;
            for (Py_ssize_t c = 0; c < wlen; c++) h = fnv_step(h, w[c]);
            int32_t id = lookup(t, h);
            if (id >= 0 && buf_push(terms, id)) return -1;
        }
        if (cache->used * 2 < cache->size) { /* remember the word while the cache is at most half full */
            cache->keys[slot] = wh;
            cache->start[slot] = (int32_t)cache->pool.len;
            cache->count[slot] = (int32_t)(terms->len - before);
            for (Py_ssize_t k = before; k < terms->len; k++)
                if (buf_push(&cache->pool, terms->data[k])) return -1;
            cache->used++;
        }
        i = j;
    }
    return 0;
}

/* Sort one text's unique ids ascending (scikit-learn's order, so float32 sums match to the last bit),
 * moving their counts along: insertion sort when short, else a bitmap over the vocabulary. `ukeys` /
 * `uslot` (size `need`) map each id to its position before sorting. */
static int sort_row(int32_t *ids, int32_t *counts, Py_ssize_t n, uint64_t **bits, Py_ssize_t vocab,
                    const int32_t *ukeys, const int32_t *uslot, Py_ssize_t need) {
    if (n < 2) return 0;
    if (n <= 32) {
        for (Py_ssize_t i = 1; i < n; i++) {
            int32_t id = ids[i], c = counts[i];
            Py_ssize_t j = i - 1;
            while (j >= 0 && ids[j] > id) { ids[j + 1] = ids[j]; counts[j + 1] = counts[j]; j--; }
            ids[j + 1] = id;
            counts[j + 1] = c;
        }
        return 0;
    }
    Py_ssize_t words = (vocab + 63) / 64;
    if (!*bits) {
        *bits = (uint64_t *)calloc((size_t)words, sizeof(uint64_t));
        if (!*bits) return -1;
    }
    uint64_t *b = *bits;
    int32_t lo = ids[0], hi = ids[0];
    int32_t *old_counts = (int32_t *)malloc((size_t)n * sizeof(int32_t));
    if (!old_counts) return -1;
    memcpy(old_counts, counts, (size_t)n * sizeof(int32_t));
    for (Py_ssize_t k = 0; k < n; k++) {
        int32_t id = ids[k];
        if (id < lo) lo = id;
        if (id > hi) hi = id;
        b[id >> 6] |= 1ULL << (id & 63);
    }
    Py_ssize_t out = 0;
    for (Py_ssize_t w = lo >> 6; w <= (hi >> 6); w++) {
        uint64_t word = b[w];
        b[w] = 0;
        while (word) {
            int32_t id = (int32_t)(w * 64 + __builtin_ctzll(word));
            word &= word - 1;
            Py_ssize_t u = (Py_ssize_t)(((uint32_t)id * 2654435761u) & (uint32_t)(need - 1));
            while (ukeys[u] != id) u = (u + 1) & (need - 1);
            ids[out] = id;
            counts[out] = old_counts[uslot[u]];
            out++;
        }
    }
    free(old_counts);
    return 0;
}

static int get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->itemsize != itemsize && !(view->len == 0)) {
        PyErr_Format(PyExc_TypeError, "%s must hold %zd-byte items", what, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* count_terms(texts, analyzer, lo, hi, keys, vals) -> (indptr bytes int64, indices bytes int32, counts bytes int32) */
static PyObject *count_terms(PyObject *self, PyObject *args) {
    PyObject *texts, *keys_obj, *vals_obj;
    int analyzer, lo, hi;
    Py_ssize_t vocab = 0; /* the number of terms: output ids are sorted within each text when given */
    if (!PyArg_ParseTuple(args, "OiiiOO|n", &texts, &analyzer, &lo, &hi, &keys_obj, &vals_obj, &vocab)) return NULL;
    if (lo < 1 || hi < lo || hi > 16) {
        PyErr_SetString(PyExc_ValueError, "n-gram range must satisfy 1 <= lo <= hi <= 16");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(texts, "texts must be a sequence of str");
    if (!seq) return NULL;
    Py_buffer kb, vb;
    if (get_buffer(keys_obj, &kb, 8, "keys") < 0) { Py_DECREF(seq); return NULL; }
    if (get_buffer(vals_obj, &vb, 4, "vals") < 0) { PyBuffer_Release(&kb); Py_DECREF(seq); return NULL; }
    Table table = {(const uint64_t *)kb.buf, (const int32_t *)vb.buf, kb.len / 8};
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int64_t *indptr = (int64_t *)malloc((size_t)(n + 1) * sizeof(int64_t));
    Buf terms = {0}, out_idx = {0}, out_cnt = {0}, starts = {0}, ends = {0};
    Py_UCS4 *padded = NULL;
    Py_ssize_t padcap = 0;
    PyObject *result = NULL;
    int32_t *ukeys = NULL, *uslot = NULL;
    uint64_t *bits = NULL;
    Py_ssize_t ucap = 0;
    WordCache cache;
    int cache_ok = cache_init(&cache) == 0;
    if (!indptr || !cache_ok) { PyErr_NoMemory(); goto done; }
    indptr[0] = 0;
    for (Py_ssize_t r = 0; r < n; r++) {
        PyObject *text = PySequence_Fast_GET_ITEM(seq, r);
        if (!PyUnicode_Check(text)) {
            PyErr_Format(PyExc_TypeError, "texts[%zd] is not a str", r);
            goto done;
        }
        Py_UCS4 *s = PyUnicode_AsUCS4Copy(text);
        if (!s) goto done;
        Py_ssize_t len = PyUnicode_GET_LENGTH(text);
        terms.len = 0;
        int rc = analyzer == 0 ? word_terms(s, len, lo, hi, &table, &terms, &starts, &ends)
                               : char_wb_terms(s, len, lo, hi, &table, &terms, &padded, &padcap, &cache);
        PyMem_Free(s);
        if (rc < 0) { PyErr_NoMemory(); goto done; }
        /* unique ids and their counts, in first-seen order, with a small open-addressing table */
        Py_ssize_t need = 16;
        while (need < 2 * terms.len + 1) need <<= 1;
        if (need > ucap) {
            free(ukeys);
            free(uslot);
            ukeys = (int32_t *)malloc((size_t)need * sizeof(int32_t));
            uslot = (int32_t *)malloc((size_t)need * sizeof(int32_t));
            if (!ukeys || !uslot) { ucap = 0; PyErr_NoMemory(); goto done; }
            ucap = need;
        }
        memset(ukeys, 0xff, (size_t)need * sizeof(int32_t));
        Py_ssize_t base = out_idx.len;
        for (Py_ssize_t k = 0; k < terms.len; k++) {
            int32_t id = terms.data[k];
            Py_ssize_t u = (Py_ssize_t)(((uint32_t)id * 2654435761u) & (uint32_t)(need - 1));
            while (ukeys[u] != -1 && ukeys[u] != id) u = (u + 1) & (need - 1);
            if (ukeys[u] == id) {
                out_cnt.data[base + uslot[u]]++;
            } else {
                ukeys[u] = id;
                uslot[u] = (int32_t)(out_idx.len - base);
                if (buf_push(&out_idx, id) || buf_push(&out_cnt, 1)) { PyErr_NoMemory(); goto done; }
            }
        }
        if (vocab > 0 && sort_row(out_idx.data + base, out_cnt.data + base, out_idx.len - base, &bits, vocab,
                                  ukeys, uslot, need) < 0) {
            PyErr_NoMemory();
            goto done;
        }
        indptr[r + 1] = (int64_t)out_idx.len;
    }
    {
        static const char empty[1] = {0}; /* "y#" turns a NULL pointer into None: never pass one */
        result = Py_BuildValue("(y#y#y#)", (const char *)indptr, (Py_ssize_t)((n + 1) * sizeof(int64_t)),
                               out_idx.data ? (const char *)out_idx.data : empty, (Py_ssize_t)(out_idx.len * sizeof(int32_t)),
                               out_cnt.data ? (const char *)out_cnt.data : empty, (Py_ssize_t)(out_cnt.len * sizeof(int32_t)));
    }
done:
    free(bits);
    free(ukeys);
    free(uslot);
    cache_free(&cache);
    free(indptr);
    free(terms.data);
    free(out_idx.data);
    free(out_cnt.data);
    free(starts.data);
    free(ends.data);
    free(padded);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&vb);
    Py_DECREF(seq);
    return result;
}

/* hash_terms(terms) -> bytes of uint64: the lookup hash of each term */
static PyObject *hash_terms(PyObject *self, PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "terms must be a sequence of str");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    uint64_t *out = (uint64_t *)malloc((size_t)(n ? n : 1) * sizeof(uint64_t));
    if (!out) { Py_DECREF(seq); return PyErr_NoMemory(); }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *term = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(term)) {
            free(out);
            Py_DECREF(seq);
            return PyErr_Format(PyExc_TypeError, "terms[%zd] is not a str", i);
        }
        int kind = PyUnicode_KIND(term);
        const void *data = PyUnicode_DATA(term);
        Py_ssize_t len = PyUnicode_GET_LENGTH(term);
        uint64_t h = FNV_OFFSET;
        for (Py_ssize_t c = 0; c < len; c++) h = fnv_step(h, PyUnicode_READ(kind, data, c));
        out[i] = h;
    }
    PyObject *result = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)(n * sizeof(uint64_t)));
    free(out);
    Py_DECREF(seq);
    return result;
}

/* build_table(hashes bytes of uint64) -> (keys bytes, vals bytes): the lookup table of count_terms;
 * raises ValueError when two hashes are equal (the caller then reads terms in Python). */
static PyObject *build_table(PyObject *self, PyObject *arg) {
    Py_buffer hb;
    if (PyObject_GetBuffer(arg, &hb, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    Py_ssize_t n = hb.len / 8;
    const uint64_t *hashes = (const uint64_t *)hb.buf;
    Py_ssize_t size = 16;
    while (size < 2 * n + 1) size <<= 1;
    uint64_t *keys = (uint64_t *)calloc((size_t)size, sizeof(uint64_t));
    int32_t *vals = (int32_t *)calloc((size_t)size, sizeof(int32_t));
    PyObject *result = NULL;
    if (!keys || !vals) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t k = 0; k < n; k++) {
        uint64_t h = nonzero(hashes[k]);
        Py_ssize_t i = (Py_ssize_t)((h ^ (h >> 29)) & (uint64_t)(size - 1));
        while (keys[i]) {
            if (keys[i] == h) { PyErr_SetString(PyExc_ValueError, "two terms share a hash"); goto done; }
            i = (i + 1) & (size - 1);
        }
        keys[i] = h;
        vals[i] = (int32_t)k;
    }
    result = Py_BuildValue("(y#y#)", (const char *)keys, (Py_ssize_t)(size * sizeof(uint64_t)),
                           (const char *)vals, (Py_ssize_t)(size * sizeof(int32_t)));
done:
    free(keys);
    free(vals);
    PyBuffer_Release(&hb);
    return result;
}

static PyMethodDef methods[] = {
    {"build_table", build_table, METH_O, "The hash table count_terms looks terms up in."},
    {"count_terms", count_terms, METH_VARARGS, "Term ids and counts of word or char_wb n-grams per text."},
    {"hash_terms", hash_terms, METH_O, "The 64-bit lookup hash of each term."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ngrams", "Compiled n-gram featurizer.", -1, methods};

PyMODINIT_FUNC PyInit__ngrams(void) { return PyModule_Create(&module); }
