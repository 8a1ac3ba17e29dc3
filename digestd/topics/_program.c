/* A compiled query's match, scoring and terms, evaluated in C.
 *
 * The same questions the closures of digestd/topics/evaluate.py ask a Document (a stem in its
 * stem set, a stem pattern or word prefix as a substring of its joined or lower-cased words,
 * how often one occurs), asked without a Python frame per node: bulk matching asks them a
 * million times. digestd/topics/native.py builds a Program from a query's normal form; any
 * term this file does not know how to test or count is handed to the Python closure for it,
 * so both paths give the same answers, which the tests compare on random queries and papers.
 *
 * Program(root, leaves, points, anchor) where
 *   root   = (kind, ...) nested: (POS, leaf, test), (NEG, test), (ALL, children), (ANY, children)
 *   test   = (STEM, stem) | (PHRASE, where, needed_stems_tuple, pattern) | (PREFIX, pattern)
 *            | (FOLLOWS, stem, prefix_pattern, stem_pattern) | (CALL, callable(doc) -> bool)
 *            | (GUARDED, needed_stems_tuple, prefix_patterns_tuple, callable(doc) -> bool):
 *              the callable asked only when the stems and word prefixes are all there
 *   leaves = ((key_index, position, label), ...) one per positive term node
 *   points = ((JOINED | LOWERED, pattern) | (FIELD_JOINED | FIELD_LOWERED, pattern, where,
 *            points per occurrence) | (FOLLOWS, stem, prefix_pattern)
 *            | (CALL, callable(doc) -> float), ...) one per key
 *   anchor = None | (stems_tuple, prefix_patterns_tuple)
 * Program.match(doc, min_score, anchored) -> None | (score, terms, points)
 * A stem is looked up in doc.stems_line when it is a str (the stems sorted, searched by
 * halves), else in the set doc.stems. Searching lines of words and the module's own
 * functions (cut, common, fits) are in _text.c.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_text.h"

/* Raised with any change to what Program takes or answers; digestd/topics/native.py uses
 * only the version it was written for, so a stale build is never asked. */
#define PROGRAM_VERSION 7

enum { N_POS = 0, N_NEG = 1, N_ALL = 2, N_ANY = 3 };
enum { T_STEM = 0, T_PHRASE = 1, T_PREFIX = 2, T_CALL = 3, T_FOLLOWS = 4, T_GUARDED = 5 };
enum { IN_BOTH = 0, IN_TITLE = 1, IN_ABSTRACT = 2 };
enum { P_JOINED = 0, P_LOWERED = 1, P_CALL = 2, P_FIELD_JOINED = 3, P_FIELD_LOWERED = 4,
       P_FOLLOWS = 5 };

#define TITLE_POINTS 3.0
#define ABSTRACT_POINTS 1.0
#define MAX_COUNTED 2

typedef struct {
    int kind;
    int where;
    PyObject *text;   /* the stem, the pattern or the callable (a new reference) */
    PyObject *needed; /* T_PHRASE, T_GUARDED: a tuple of stems; T_FOLLOWS: the prefix pattern */
    PyObject *word;   /* T_FOLLOWS: the stem as a pattern of joined stems, " stem ";
                       * T_GUARDED: a tuple of prefix patterns */
} Test;

typedef struct Node {
    int kind;
    Test test;
    Py_ssize_t leaf;
    Py_ssize_t count;
    struct Node *children;
} Node;

typedef struct {
    Py_ssize_t key;
    Py_ssize_t position;
    PyObject *label;
} Leaf;

typedef struct {
    int kind;
    PyObject *obj;    /* the pattern, the stem (P_FOLLOWS) or the callable */
    PyObject *prefix; /* P_FOLLOWS: the prefix pattern */
    int where;        /* P_FIELD_*: IN_TITLE or IN_ABSTRACT */
    double weight;    /* P_FIELD_*: points per occurrence */
} Points;

typedef struct {
    PyObject_HEAD
    Node root;
    Py_ssize_t nleaves;
    Leaf *leaves;
    Py_ssize_t nkeys;
    Points *points;
    int anchored;              /* whether there is an anchor at all */
    PyObject *anchor_stems;    /* tuple */
    PyObject *anchor_prefixes; /* tuple */
} Program;

/* attribute names, interned once */
static PyObject *s_stems, *s_stems_line, *s_joined, *s_lowered, *s_title_field, *s_abstract_field;

/* What one match has read of the document, each fetched on first use. */
typedef struct {
    PyObject *doc;
    PyObject *line;  /* Document.stems_line: its stems sorted in one str, or None */
    PyObject *stems, *title, *abstract;
    PyObject *title_joined, *abstract_joined, *title_lowered, *abstract_lowered;
} Doc;

static void
doc_clear(Doc *d)
{
    Py_CLEAR(d->line);
    Py_CLEAR(d->stems);
    Py_CLEAR(d->title);
    Py_CLEAR(d->abstract);
    Py_CLEAR(d->title_joined);
    Py_CLEAR(d->abstract_joined);
    Py_CLEAR(d->title_lowered);
    Py_CLEAR(d->abstract_lowered);
}

static PyObject *
cached(PyObject **slot, PyObject *owner, PyObject *name)
{
    if (*slot == NULL) {
        *slot = PyObject_GetAttr(owner, name);
    }
    return *slot;
}

static PyObject *
field_of(Doc *d, int title)
{
    return title ? cached(&d->title, d->doc, s_title_field)
                 : cached(&d->abstract, d->doc, s_abstract_field);
}

static PyObject *
joined_of(Doc *d, int where)
{
    PyObject *field = field_of(d, where == IN_TITLE);
    if (field == NULL) {
        return NULL;
    }
    return where == IN_TITLE ? cached(&d->title_joined, field, s_joined)
                             : cached(&d->abstract_joined, field, s_joined);
}

static PyObject *
lowered_of(Doc *d, int title)
{
    PyObject *field = field_of(d, title);
    if (field == NULL) {
        return NULL;
    }
    return title ? cached(&d->title_lowered, field, s_lowered)
                 : cached(&d->abstract_lowered, field, s_lowered);
}

/* 1 when the document has ``stem``, 0 when not, -1 on an error */
static int
has_stem(Doc *d, PyObject *stem)
{
    if (d->line == NULL) {
        d->line = PyObject_GetAttr(d->doc, s_stems_line);
        if (d->line == NULL) {
            return -1;
        }
        if (d->line != Py_None && !PyUnicode_Check(d->line)) {
            PyErr_SetString(PyExc_TypeError, "a stems line must be a str");
            return -1;
        }
    }
    if (d->line != Py_None) {
        if (!PyUnicode_Check(stem)) {
            PyErr_SetString(PyExc_TypeError, "a stem must be a str");
            return -1;
        }
        return in_sorted_line(d->line, stem);
    }
    if (cached(&d->stems, d->doc, s_stems) == NULL) {
        return -1;
    }
    return PySet_Contains(d->stems, stem);
}

/* 1 when the text of ``line`` holds ``pattern``, 0 when not, -1 on an error */
static int
holds(PyObject *line, PyObject *pattern)
{
    Py_ssize_t at;
    if (line == NULL) {
        return -1;
    }
    at = find_from(line, pattern, 0);
    return at >= 0 ? 1 : at == -1 ? 0 : -1;
}

static int
has_prefix(Doc *d, PyObject *pattern)
{
    int found = holds(lowered_of(d, 1), pattern);
    if (found != 0) {
        return found;
    }
    return holds(lowered_of(d, 0), pattern);
}

/* The tokens of a joined line (FieldWords.joined: " a  b  |  c "), read one at a time: the
 * stems, with "|" before the stem where a clause starts. Tokens hold no space, so a token ends
 * at the next space; two spaces separate tokens, and the line ends with one. */
typedef struct {
    int kind;
    const void *data;
    Py_ssize_t size;
    Py_ssize_t at;      /* where the next token starts */
    Py_ssize_t stems;   /* stems read so far */
    Py_ssize_t start;   /* the last stem read */
    Py_ssize_t end;
} Tokens;

static int
tokens_open(Tokens *t, PyObject *joined)
{
    if (joined == NULL) {
        return -1;
    }
    if (!PyUnicode_Check(joined)) {
        PyErr_SetString(PyExc_TypeError, "joined stems must be a str");
        return -1;
    }
    t->kind = PyUnicode_KIND(joined);
    t->data = PyUnicode_DATA(joined);
    t->size = PyUnicode_GET_LENGTH(joined);
    t->at = 1;
    t->stems = 0;
    t->start = t->end = 0;
    return 0;
}

/* Reads the next token: 1 for a stem, 2 for a clause mark, 0 at the end. */
static int
tokens_next(Tokens *t, Py_ssize_t *start, Py_ssize_t *end)
{
    Py_ssize_t i = t->at;
    if (i >= t->size) {
        return 0;
    }
    while (i < t->size && PyUnicode_READ(t->kind, t->data, i) != ' ') {
        i++;
    }
    *start = t->at;
    *end = i;
    t->at = i + 2;
    if (i - *start == 1 && PyUnicode_READ(t->kind, t->data, *start) == '|') {
        return 2;
    }
    return 1;
}

/* Whether stem ``index - 1`` is ``stem`` and no clause starts at ``index``; ``index`` only
 * grows from call to call. 1, 0, or -1 with IndexError for a line with fewer stems. */
static int
stem_before(Tokens *t, Py_ssize_t index, PyObject *stem)
{
    Py_ssize_t start, end, i, length;
    int kind;
    while (t->stems < index) {
        kind = tokens_next(t, &start, &end);
        if (kind == 0) {
            PyErr_SetString(PyExc_IndexError, "a word without its stem");
            return -1;
        }
        if (kind == 1) {
            t->stems++;
            t->start = start;
            t->end = end;
        }
    }
    /* a clause mark right after stem index - 1 starts a clause at index */
    if (t->at < t->size && t->at + 1 < t->size
        && PyUnicode_READ(t->kind, t->data, t->at) == '|'
        && PyUnicode_READ(t->kind, t->data, t->at + 1) == ' ') {
        return 0;
    }
    length = PyUnicode_GET_LENGTH(stem);
    if (t->end - t->start != length) {
        return 0;
    }
    for (i = 0; i < length; i++) {
        if (PyUnicode_READ(t->kind, t->data, t->start + i)
            != PyUnicode_READ_CHAR(stem, i)) {
            return 0;
        }
    }
    return 1;
}

/* How many times (up to ``limit``) a word starting with ``pattern`` (" prefix") comes right
 * after ``stem`` in one clause of a part: FieldWords.follows, and the starts FieldWords.find
 * counts for the phrase "stem prefix*". A word's index is the number of spaces before it in
 * the lower-cased line; the stem before it and the clause marks are read from the joined
 * line, so that the stems list is never made. -1 on an error. */
static int
follows(PyObject *joined, PyObject *lowered, PyObject *stem, PyObject *pattern, int limit)
{
    Tokens tokens;
    Py_ssize_t at, index = 0, last = 0, spaces;
    int found, count = 0;
    if (lowered == NULL || tokens_open(&tokens, joined) < 0) {
        return -1;
    }
    if (!PyUnicode_Check(lowered)) {
        PyErr_SetString(PyExc_TypeError, "lower-cased words must be a str");
        return -1;
    }
    at = find_from(lowered, pattern, 0);
    while (at >= 0 && count < limit) {
        spaces = spaces_in(lowered, last, at);
        if (spaces < 0) {
            return -1;
        }
        index += spaces;
        last = at;
        if (index) {
            found = stem_before(&tokens, index, stem);
            if (found < 0) {
                return -1;
            }
            count += found;
        }
        at = find_from(lowered, pattern, at + 1);
    }
    return at == -2 ? -1 : count;
}

/* Document.followed_by, after the stem was found in the document's stems */
static int
followed_by(Doc *d, Test *t)
{
    /* most titles lack the stem: a look at their joined stems (" stem ") skips the walk */
    int found = holds(joined_of(d, IN_TITLE), t->word);
    if (found == 1) {
        found = follows(joined_of(d, IN_TITLE), lowered_of(d, 1), t->text, t->needed, 1);
    }
    if (found != 0) {
        return found;
    }
    return follows(joined_of(d, IN_ABSTRACT), lowered_of(d, 0), t->text, t->needed, 1);
}

static int
test(Doc *d, Test *t)
{
    PyObject *result;
    Py_ssize_t i, n;
    int found;
    switch (t->kind) {
    case T_STEM:
        return has_stem(d, t->text);
    case T_PHRASE:
        n = PyTuple_GET_SIZE(t->needed);
        for (i = 0; i < n; i++) {
            found = has_stem(d, PyTuple_GET_ITEM(t->needed, i));
            if (found != 1) {
                return found;
            }
        }
        if (t->where != IN_BOTH) {
            return holds(joined_of(d, t->where), t->text);
        }
        /* in the title or the abstract: Document.joined is the two with "|" between, and
         * no pattern of stems runs across it */
        found = holds(joined_of(d, IN_TITLE), t->text);
        return found != 0 ? found : holds(joined_of(d, IN_ABSTRACT), t->text);
    case T_FOLLOWS:
        found = has_stem(d, t->text);
        return found != 1 ? found : followed_by(d, t);
    case T_PREFIX:
        return has_prefix(d, t->text);
    case T_GUARDED:
        for (i = 0; i < PyTuple_GET_SIZE(t->needed); i++) {
            found = has_stem(d, PyTuple_GET_ITEM(t->needed, i));
            if (found != 1) {
                return found;
            }
        }
        for (i = 0; i < PyTuple_GET_SIZE(t->word); i++) {
            found = has_prefix(d, PyTuple_GET_ITEM(t->word, i));
            if (found != 1) {
                return found;
            }
        }
        /* fall through: the callable decides */
    default:
        result = PyObject_CallOneArg(t->text, d->doc);
        if (result == NULL) {
            return -1;
        }
        found = PyObject_IsTrue(result);
        Py_DECREF(result);
        return found;
    }
}

/* Hits: best[key] is the leaf of the earliest written term of that key found in a satisfied
 * branch, or -1. Each change is logged so that an AND that fails takes its children's back. */
typedef struct {
    Py_ssize_t *best;
    Py_ssize_t *log_key;
    Py_ssize_t *log_prev;
    Py_ssize_t logged;
} Hits;

static int
evaluate(Program *p, Node *node, Doc *d, Hits *h)
{
    Py_ssize_t i, mark, key, prev;
    int found, any;
    switch (node->kind) {
    case N_POS:
        found = test(d, &node->test);
        if (found == 1) {
            key = p->leaves[node->leaf].key;
            prev = h->best[key];
            if (prev < 0 || p->leaves[node->leaf].position < p->leaves[prev].position) {
                h->log_key[h->logged] = key;
                h->log_prev[h->logged] = prev;
                h->logged++;
                h->best[key] = node->leaf;
            }
        }
        return found;
    case N_NEG:
        found = test(d, &node->test);
        return found < 0 ? -1 : !found;
    case N_ALL:
        mark = h->logged;
        for (i = 0; i < node->count; i++) {
            found = evaluate(p, &node->children[i], d, h);
            if (found != 1) {
                while (h->logged > mark) {
                    h->logged--;
                    h->best[h->log_key[h->logged]] = h->log_prev[h->logged];
                }
                return found;
            }
        }
        return 1;
    default:
        /* no short cut: every satisfied branch adds its terms */
        any = 0;
        for (i = 0; i < node->count; i++) {
            found = evaluate(p, &node->children[i], d, h);
            if (found < 0) {
                return -1;
            }
            any |= found;
        }
        return any;
    }
}

static int
is_anchored(Program *p, Doc *d)
{
    Py_ssize_t i;
    int found;
    if (!p->anchored) {
        return 1;
    }
    for (i = 0; i < PyTuple_GET_SIZE(p->anchor_stems); i++) {
        found = has_stem(d, PyTuple_GET_ITEM(p->anchor_stems, i));
        if (found != 0) {
            return found;
        }
    }
    for (i = 0; i < PyTuple_GET_SIZE(p->anchor_prefixes); i++) {
        found = has_prefix(d, PyTuple_GET_ITEM(p->anchor_prefixes, i));
        if (found != 0) {
            return found;
        }
    }
    return 0;
}

static Py_ssize_t
counted(PyObject *line, PyObject *pattern)
{
    Py_ssize_t n = 0, at = 0, size;
    if (line == NULL) {
        return -1;
    }
    size = PyUnicode_GET_LENGTH(pattern);
    if (size == 0) {
        n = PyUnicode_Count(line, pattern, 0, PY_SSIZE_T_MAX);
        return n > MAX_COUNTED ? MAX_COUNTED : n;
    }
    /* non-overlapping occurrences, as str.count counts them; no more than are counted */
    while (n < MAX_COUNTED) {
        at = find_from(line, pattern, at);
        if (at < 0) {
            return at == -1 ? n : -1;
        }
        n++;
        at += size;
    }
    return n;
}

/* What one key's term scores: as evaluate.term_points counts it. -1.0 with an exception set
 * on an error (no count is negative). */
static double
points_of(Points *pt, Doc *d)
{
    Py_ssize_t in_title, in_abstract;
    PyObject *result;
    double value;
    if (pt->kind == P_CALL) {
        result = PyObject_CallOneArg(pt->obj, d->doc);
        if (result == NULL) {
            return -1.0;
        }
        value = PyFloat_AsDouble(result);
        Py_DECREF(result);
        return value;
    }
    if (pt->kind == P_FIELD_JOINED || pt->kind == P_FIELD_LOWERED) {
        in_title = counted(pt->kind == P_FIELD_JOINED ? joined_of(d, pt->where)
                                                      : lowered_of(d, pt->where == IN_TITLE),
                           pt->obj);
        return in_title < 0 ? -1.0 : pt->weight * (double)in_title;
    }
    if (pt->kind == P_FOLLOWS) {
        in_title = follows(joined_of(d, IN_TITLE), lowered_of(d, 1), pt->obj, pt->prefix,
                           MAX_COUNTED);
        in_abstract = in_title < 0 ? -1
                      : follows(joined_of(d, IN_ABSTRACT), lowered_of(d, 0), pt->obj,
                                pt->prefix, MAX_COUNTED);
    } else if (pt->kind == P_JOINED) {
        in_title = counted(joined_of(d, IN_TITLE), pt->obj);
        in_abstract = in_title < 0 ? -1 : counted(joined_of(d, IN_ABSTRACT), pt->obj);
    } else {
        in_title = counted(lowered_of(d, 1), pt->obj);
        in_abstract = in_title < 0 ? -1 : counted(lowered_of(d, 0), pt->obj);
    }
    if (in_abstract < 0) {
        return -1.0;
    }
    return TITLE_POINTS * (double)in_title + ABSTRACT_POINTS * (double)in_abstract;
}

/* (score, terms, points) of the hit keys, in the order the terms are written */
static PyObject *
result_of(Program *p, Doc *d, Hits *h, double min_score)
{
    Py_ssize_t order[64], *sorted = order, n = 0, i, j, leaf;
    PyObject *points = NULL, *terms = NULL, *pairs = NULL, *out = NULL;
    PyObject *label, *known, *value, *key, *pair;
    double score = 0.0, earned;
    Py_ssize_t pos;

    if (p->nkeys > 64) {
        sorted = PyMem_New(Py_ssize_t, p->nkeys);
        if (sorted == NULL) {
            return PyErr_NoMemory();
        }
    }
    /* the hit terms by position: few, so an insertion sort */
    for (i = 0; i < p->nkeys; i++) {
        leaf = h->best[i];
        if (leaf < 0) {
            continue;
        }
        j = n++;
        while (j > 0 && p->leaves[sorted[j - 1]].position > p->leaves[leaf].position) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = leaf;
    }
    points = PyDict_New();
    if (points == NULL) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        leaf = sorted[i];
        earned = points_of(&p->points[p->leaves[leaf].key], d);
        if (earned == -1.0 && PyErr_Occurred()) {
            goto done;
        }
        score += earned;
        label = p->leaves[leaf].label;
        known = PyDict_GetItemWithError(points, label);
        if (known == NULL && PyErr_Occurred()) {
            goto done;
        }
        value = PyFloat_FromDouble((known == NULL ? 0.0 : PyFloat_AS_DOUBLE(known)) + earned);
        if (value == NULL || PyDict_SetItem(points, label, value) < 0) {
            Py_XDECREF(value);
            goto done;
        }
        Py_DECREF(value);
    }
    if (score < min_score) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    /* the labels as they first come (a dict keeps that order), and the points per label */
    terms = PyTuple_New(PyDict_GET_SIZE(points));
    pairs = PyTuple_New(PyDict_GET_SIZE(points));
    if (terms == NULL || pairs == NULL) {
        goto done;
    }
    pos = 0;
    i = 0;
    while (PyDict_Next(points, &pos, &key, &value)) {
        pair = PyTuple_Pack(2, key, value);
        if (pair == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(terms, i, Py_NewRef(key));
        PyTuple_SET_ITEM(pairs, i, pair);
        i++;
    }
    value = PyFloat_FromDouble(score);
    if (value != NULL) {
        out = PyTuple_Pack(3, value, terms, pairs);
        Py_DECREF(value);
    }
done:
    if (sorted != order) {
        PyMem_Free(sorted);
    }
    Py_XDECREF(points);
    Py_XDECREF(terms);
    Py_XDECREF(pairs);
    return out;
}

static PyObject *
Program_match(Program *p, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t stack[3 * 32], *memory = stack, i;
    Doc d = {0};
    Hits h;
    double min_score;
    int anchored, found;
    PyObject *out = NULL;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "match(doc, min_score, anchored)");
        return NULL;
    }
    d.doc = args[0];
    min_score = PyFloat_AsDouble(args[1]);
    if (min_score == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    anchored = PyObject_IsTrue(args[2]);
    if (anchored < 0) {
        return NULL;
    }
    if (!anchored) {
        found = is_anchored(p, &d);
        if (found != 1) {
            doc_clear(&d);
            return found < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    if (p->nkeys + 2 * p->nleaves > 3 * 32) {
        memory = PyMem_New(Py_ssize_t, p->nkeys + 2 * p->nleaves);
        if (memory == NULL) {
            doc_clear(&d);
            return PyErr_NoMemory();
        }
    }
    h.best = memory;
    h.log_key = memory + p->nkeys;
    h.log_prev = h.log_key + p->nleaves;
    h.logged = 0;
    for (i = 0; i < p->nkeys; i++) {
        h.best[i] = -1;
    }
    found = evaluate(p, &p->root, &d, &h);
    if (found == 1) {
        out = result_of(p, &d, &h, min_score);
    } else if (found == 0) {
        out = Py_NewRef(Py_None);
    }
    if (memory != stack) {
        PyMem_Free(memory);
    }
    doc_clear(&d);
    return out;
}

/* ---- building a Program from its Python description ---- */

static int
read_test(Test *t, PyObject *spec)
{
    Py_ssize_t i;
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 2) {
        PyErr_SetString(PyExc_ValueError, "a test is (kind, ...)");
        return -1;
    }
    t->kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    switch (t->kind) {
    case T_STEM:
    case T_PREFIX:
    case T_CALL:
        t->text = Py_NewRef(PyTuple_GET_ITEM(spec, 1));
        break;
    case T_FOLLOWS:
        if (PyTuple_GET_SIZE(spec) != 4) {
            PyErr_SetString(PyExc_ValueError,
                            "a stem and prefix is (FOLLOWS, stem, prefix pattern, stem pattern)");
            return -1;
        }
        t->text = Py_NewRef(PyTuple_GET_ITEM(spec, 1));
        t->needed = Py_NewRef(PyTuple_GET_ITEM(spec, 2));
        t->word = Py_NewRef(PyTuple_GET_ITEM(spec, 3));
        if (!PyUnicode_Check(t->needed) || !PyUnicode_Check(t->word)) {
            PyErr_SetString(PyExc_TypeError, "a pattern must be a str");
            return -1;
        }
        break;
    case T_GUARDED:
        if (PyTuple_GET_SIZE(spec) != 4 || !PyTuple_Check(PyTuple_GET_ITEM(spec, 1))
            || !PyTuple_Check(PyTuple_GET_ITEM(spec, 2))) {
            PyErr_SetString(PyExc_ValueError,
                            "a guarded test is (GUARDED, stems, prefix patterns, callable)");
            return -1;
        }
        t->needed = Py_NewRef(PyTuple_GET_ITEM(spec, 1));
        t->word = Py_NewRef(PyTuple_GET_ITEM(spec, 2));
        t->text = Py_NewRef(PyTuple_GET_ITEM(spec, 3));
        for (i = 0; i < PyTuple_GET_SIZE(t->needed) + PyTuple_GET_SIZE(t->word); i++) {
            if (!PyUnicode_Check(i < PyTuple_GET_SIZE(t->needed)
                                     ? PyTuple_GET_ITEM(t->needed, i)
                                     : PyTuple_GET_ITEM(t->word, i - PyTuple_GET_SIZE(t->needed)))) {
                PyErr_SetString(PyExc_TypeError, "stems and patterns must be str");
                return -1;
            }
        }
        break;
    case T_PHRASE:
        if (PyTuple_GET_SIZE(spec) != 4 || !PyTuple_Check(PyTuple_GET_ITEM(spec, 2))) {
            PyErr_SetString(PyExc_ValueError, "a phrase is (PHRASE, where, stems, pattern)");
            return -1;
        }
        t->where = (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 1));
        t->needed = Py_NewRef(PyTuple_GET_ITEM(spec, 2));
        t->text = Py_NewRef(PyTuple_GET_ITEM(spec, 3));
        break;
    default:
        PyErr_SetString(PyExc_ValueError, "unknown test");
        return -1;
    }
    if (t->kind != T_CALL && t->kind != T_GUARDED && !PyUnicode_Check(t->text)) {
        PyErr_SetString(PyExc_TypeError, "a stem or pattern must be a str");
        return -1;
    }
    return PyErr_Occurred() ? -1 : 0;
}

static void
free_node(Node *node)
{
    Py_ssize_t i;
    Py_CLEAR(node->test.text);
    Py_CLEAR(node->test.needed);
    Py_CLEAR(node->test.word);
    if (node->children != NULL) {
        for (i = 0; i < node->count; i++) {
            free_node(&node->children[i]);
        }
        PyMem_Free(node->children);
        node->children = NULL;
    }
}

static int
read_node(Node *node, PyObject *spec, Py_ssize_t nleaves)
{
    PyObject *children;
    Py_ssize_t i;
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 2) {
        PyErr_SetString(PyExc_ValueError, "a node is (kind, ...)");
        return -1;
    }
    node->kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    switch (node->kind) {
    case N_POS:
        if (PyTuple_GET_SIZE(spec) != 3) {
            PyErr_SetString(PyExc_ValueError, "a term is (POS, leaf, test)");
            return -1;
        }
        node->leaf = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 1));
        if (node->leaf < 0 || node->leaf >= nleaves) {
            PyErr_SetString(PyExc_ValueError, "no such leaf");
            return -1;
        }
        return read_test(&node->test, PyTuple_GET_ITEM(spec, 2));
    case N_NEG:
        return read_test(&node->test, PyTuple_GET_ITEM(spec, 1));
    case N_ALL:
    case N_ANY:
        children = PyTuple_GET_ITEM(spec, 1);
        if (!PyTuple_Check(children)) {
            PyErr_SetString(PyExc_ValueError, "children are a tuple");
            return -1;
        }
        node->count = PyTuple_GET_SIZE(children);
        node->children = PyMem_New(Node, node->count ? node->count : 1);
        if (node->children == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(node->children, 0, sizeof(Node) * (node->count ? node->count : 1));
        for (i = 0; i < node->count; i++) {
            if (read_node(&node->children[i], PyTuple_GET_ITEM(children, i), nleaves) < 0) {
                return -1;
            }
        }
        return 0;
    default:
        PyErr_SetString(PyExc_ValueError, "unknown node");
        return -1;
    }
}

static void
Program_dealloc(Program *p)
{
    Py_ssize_t i;
    free_node(&p->root);
    if (p->leaves != NULL) {
        for (i = 0; i < p->nleaves; i++) {
            Py_XDECREF(p->leaves[i].label);
        }
        PyMem_Free(p->leaves);
    }
    if (p->points != NULL) {
        for (i = 0; i < p->nkeys; i++) {
            Py_XDECREF(p->points[i].obj);
            Py_XDECREF(p->points[i].prefix);
        }
        PyMem_Free(p->points);
    }
    Py_XDECREF(p->anchor_stems);
    Py_XDECREF(p->anchor_prefixes);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyObject *
Program_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *root, *leaves, *points, *anchor, *item;
    Program *p;
    Py_ssize_t i;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Program takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO!O!O:Program", &root, &PyTuple_Type, &leaves,
                          &PyTuple_Type, &points, &anchor)) {
        return NULL;
    }
    p = (Program *)type->tp_alloc(type, 0);
    if (p == NULL) {
        return NULL;
    }
    p->nleaves = PyTuple_GET_SIZE(leaves);
    p->nkeys = PyTuple_GET_SIZE(points);
    p->leaves = PyMem_New(Leaf, p->nleaves ? p->nleaves : 1);
    p->points = PyMem_New(Points, p->nkeys ? p->nkeys : 1);
    if (p->leaves == NULL || p->points == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    memset(p->leaves, 0, sizeof(Leaf) * (p->nleaves ? p->nleaves : 1));
    memset(p->points, 0, sizeof(Points) * (p->nkeys ? p->nkeys : 1));
    for (i = 0; i < p->nleaves; i++) {
        item = PyTuple_GET_ITEM(leaves, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
            PyErr_SetString(PyExc_ValueError, "a leaf is (key, position, label)");
            goto fail;
        }
        p->leaves[i].key = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
        p->leaves[i].position = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 1));
        p->leaves[i].label = Py_NewRef(PyTuple_GET_ITEM(item, 2));
        if (PyErr_Occurred()) {
            goto fail;
        }
        if (p->leaves[i].key < 0 || p->leaves[i].key >= p->nkeys) {
            PyErr_SetString(PyExc_ValueError, "no such key");
            goto fail;
        }
    }
    for (i = 0; i < p->nkeys; i++) {
        item = PyTuple_GET_ITEM(points, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 2) {
            PyErr_SetString(PyExc_ValueError, "points are (kind, pattern or callable, ...)");
            goto fail;
        }
        p->points[i].kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
        p->points[i].obj = Py_NewRef(PyTuple_GET_ITEM(item, 1));
        if (PyErr_Occurred()) {
            goto fail;
        }
        if (p->points[i].kind < P_JOINED || p->points[i].kind > P_FOLLOWS
            || PyTuple_GET_SIZE(item)
                   != (p->points[i].kind == P_FIELD_JOINED || p->points[i].kind == P_FIELD_LOWERED
                           ? 4 : p->points[i].kind == P_FOLLOWS ? 3 : 2)) {
            PyErr_SetString(PyExc_ValueError, "unknown points");
            goto fail;
        }
        if (p->points[i].kind == P_FIELD_JOINED || p->points[i].kind == P_FIELD_LOWERED) {
            p->points[i].where = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 2));
            p->points[i].weight = PyFloat_AsDouble(PyTuple_GET_ITEM(item, 3));
            if (PyErr_Occurred()) {
                goto fail;
            }
            if (p->points[i].where != IN_TITLE && p->points[i].where != IN_ABSTRACT) {
                PyErr_SetString(PyExc_ValueError, "a field's points are in the title or abstract");
                goto fail;
            }
        }
        if (p->points[i].kind == P_FOLLOWS) {
            p->points[i].prefix = Py_NewRef(PyTuple_GET_ITEM(item, 2));
            if (!PyUnicode_Check(p->points[i].prefix)) {
                PyErr_SetString(PyExc_TypeError, "a pattern must be a str");
                goto fail;
            }
        }
        if (p->points[i].kind != P_CALL && !PyUnicode_Check(p->points[i].obj)) {
            PyErr_SetString(PyExc_TypeError, "a pattern must be a str");
            goto fail;
        }
    }
    if (anchor == Py_None) {
        p->anchored = 0;
        p->anchor_stems = PyTuple_New(0);
        p->anchor_prefixes = PyTuple_New(0);
    } else {
        if (!PyTuple_Check(anchor) || PyTuple_GET_SIZE(anchor) != 2
            || !PyTuple_Check(PyTuple_GET_ITEM(anchor, 0))
            || !PyTuple_Check(PyTuple_GET_ITEM(anchor, 1))) {
            PyErr_SetString(PyExc_ValueError, "an anchor is (stems, prefix patterns)");
            goto fail;
        }
        p->anchored = 1;
        p->anchor_stems = Py_NewRef(PyTuple_GET_ITEM(anchor, 0));
        p->anchor_prefixes = Py_NewRef(PyTuple_GET_ITEM(anchor, 1));
    }
    if (p->anchor_stems == NULL || p->anchor_prefixes == NULL) {
        goto fail;
    }
    if (read_node(&p->root, root, p->nleaves) < 0) {
        goto fail;
    }
    return (PyObject *)p;
fail:
    Py_DECREF(p);
    return NULL;
}

static PyMethodDef Program_methods[] = {
    {"match", (PyCFunction)(void (*)(void))Program_match, METH_FASTCALL,
     "match(doc, min_score, anchored) -> None or (score, terms, points)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "digestd.topics._program.Program",
    .tp_basicsize = sizeof(Program),
    .tp_dealloc = (destructor)Program_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A query's normal form, matched in C (see digestd.topics.native).",
    .tp_methods = Program_methods,
    .tp_new = Program_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_program",
    .m_doc = "Compiled queries, matched in C.",
    .m_size = -1,
    .m_methods = text_methods,
};

PyMODINIT_FUNC
PyInit__program(void)
{
    PyObject *m;
    if (PyType_Ready(&ProgramType) < 0) {
        return NULL;
    }
    s_stems = PyUnicode_InternFromString("stems");
    s_stems_line = PyUnicode_InternFromString("stems_line");
    s_joined = PyUnicode_InternFromString("joined");
    s_lowered = PyUnicode_InternFromString("lowered");
    s_title_field = PyUnicode_InternFromString("title_field");
    s_abstract_field = PyUnicode_InternFromString("abstract_field");
    if (!s_stems || !s_stems_line || !s_joined || !s_lowered || !s_title_field
        || !s_abstract_field) {
        return NULL;
    }
    m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "VERSION", PROGRAM_VERSION) < 0
        || PyModule_AddObjectRef(m, "Program", (PyObject *)&ProgramType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
