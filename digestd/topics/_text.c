/* The text work of digestd's C extension: searching a paper's lines of words and stems, and
 * cutting a text into words.
 *
 * _program.c evaluates queries with in_sorted_line, find_from and spaces_in; the module
 * functions common, fits and cut (text_methods) serve digestd.topics.classify, .packed and
 * .words through digestd.topics.extension. Each answers what the Python code it stands for
 * answers, which tests/topics/test_native.py checks on random and seed texts.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_text.h"

/* The order of the token ``data[start:end]`` (of a str of ``kind``) and ``stem`` by code
 * point: -1, 0 or 1. Stems are a few characters: a plain loop, on bytes for Latin-1 (nearly
 * every paper), costs less than a call of memcmp. */
static inline int
token_order(int kind, const void *data, Py_ssize_t start, Py_ssize_t end, PyObject *stem)
{
    Py_ssize_t length = end - start, size = PyUnicode_GET_LENGTH(stem), i;
    Py_ssize_t shorter = length < size ? length : size;
    int stem_kind = PyUnicode_KIND(stem);
    const void *stem_data = PyUnicode_DATA(stem);
    const Py_UCS1 *x, *y;
    Py_UCS4 a, b;
    if (kind == PyUnicode_1BYTE_KIND && stem_kind == PyUnicode_1BYTE_KIND) {
        x = (const Py_UCS1 *)data + start;
        y = (const Py_UCS1 *)stem_data;
        for (i = 0; i < shorter && x[i] == y[i]; i++) {
        }
        if (i < shorter) {
            return x[i] < y[i] ? -1 : 1;
        }
    } else {
        for (i = 0; i < shorter; i++) {
            a = PyUnicode_READ(kind, data, start + i);
            b = PyUnicode_READ(stem_kind, stem_data, i);
            if (a != b) {
                return a < b ? -1 : 1;
            }
        }
    }
    return length < size ? -1 : length > size;
}

/* Whether the token ``stem`` is in ``line``: distinct non-empty tokens sorted by code point
 * and joined by single spaces ("attent cach kv"), searched by halves. A document read from its
 * kept words has its stem set as such a line (see digestd.topics.packed), so the set, which
 * costs more to build than the few questions a query asks of it, is never made. */
int
in_sorted_line(PyObject *line, PyObject *stem)
{
    int kind = PyUnicode_KIND(line), order;
    const void *data = PyUnicode_DATA(line);
    Py_ssize_t lo = 0, hi = PyUnicode_GET_LENGTH(line), mid, start, end;

    if (PyUnicode_KIND(stem) > kind) {
        return 0; /* a character wider than any of the line's */
    }
    /* [lo, hi) always spans whole tokens */
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        start = mid;
        while (start > lo && PyUnicode_READ(kind, data, start - 1) != ' ') {
            start--;
        }
        end = mid;
        while (end < hi && PyUnicode_READ(kind, data, end) != ' ') {
            end++;
        }
        order = token_order(kind, data, start, end, stem);
        if (order == 0) {
            return 1;
        }
        if (order < 0) {
            lo = end + 1;
        } else {
            hi = start > lo ? start - 1 : lo;
        }
    }
    return 0;
}

/* Where ``pattern`` first occurs in ``line`` from ``start`` on: its index, -1 when it does
 * not, -2 on an error. Two Latin-1 strings (nearly every paper's words and every pattern)
 * are searched with memmem, several times faster than CPython's search on a paper's
 * abstract; the answer is the same. */
Py_ssize_t
find_from(PyObject *line, PyObject *pattern, Py_ssize_t start)
{
    const char *data, *hit;
    Py_ssize_t size;
    if (!PyUnicode_Check(line) || !PyUnicode_Check(pattern)) {
        PyErr_SetString(PyExc_TypeError, "words and patterns must be str");
        return -2;
    }
    size = PyUnicode_GET_LENGTH(line);
    if (PyUnicode_KIND(line) != PyUnicode_1BYTE_KIND
        || PyUnicode_KIND(pattern) != PyUnicode_1BYTE_KIND) {
        return PyUnicode_Find(line, pattern, start, size, 1);
    }
    if (start > size) {
        return -1;
    }
    data = (const char *)PyUnicode_1BYTE_DATA(line);
    hit = memmem(data + start, (size_t)(size - start), PyUnicode_1BYTE_DATA(pattern),
                 (size_t)PyUnicode_GET_LENGTH(pattern));
    return hit == NULL ? -1 : hit - data;
}

/* How many spaces ``line[start:end]`` holds */
Py_ssize_t
spaces_in(PyObject *line, Py_ssize_t start, Py_ssize_t end)
{
    const Py_UCS1 *data;
    Py_ssize_t n = 0;
    int kind = PyUnicode_KIND(line);
    if (kind != PyUnicode_1BYTE_KIND) {
        for (; start < end; start++) {
            n += PyUnicode_READ(kind, PyUnicode_DATA(line), start) == ' ';
        }
        return n;
    }
    data = PyUnicode_1BYTE_DATA(line);
    for (; start < end; start++) {
        n += data[start] == ' ';
    }
    return n;
}

static int
append_index(PyObject *list, Py_ssize_t value)
{
    PyObject *item = PyLong_FromSsize_t(value);
    int failed = item == NULL || PyList_Append(list, item) < 0;
    Py_XDECREF(item);
    return failed ? -1 : 0;
}

/* common(line, stems) -> [i, ...]: the indexes of the stems of the sorted tuple ``stems``
 * that the sorted stems line ``line`` holds (see in_sorted_line), by one walk of both: a
 * classifier's screen of every topic's anchor stems at once. */
static PyObject *
common(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *line, *stems, *stem, *out;
    Py_ssize_t size, count, pos = 0, i = 0, end;
    const void *data;
    int kind, order;

    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "common(line: str, stems: tuple)");
        return NULL;
    }
    line = args[0];
    stems = args[1];
    kind = PyUnicode_KIND(line);
    data = PyUnicode_DATA(line);
    size = PyUnicode_GET_LENGTH(line);
    count = PyTuple_GET_SIZE(stems);
    out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    while (pos < size && i < count) {
        stem = PyTuple_GET_ITEM(stems, i);
        if (!PyUnicode_Check(stem)) {
            PyErr_SetString(PyExc_TypeError, "stems must be str");
            Py_DECREF(out);
            return NULL;
        }
        end = pos;
        while (end < size && PyUnicode_READ(kind, data, end) != ' ') {
            end++;
        }
        order = token_order(kind, data, pos, end, stem);
        if (order == 0 && append_index(out, i) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        if (order <= 0) {
            pos = end + 1;
        }
        if (order >= 0) {
            i++;
        }
    }
    return out;
}

/* How many of ``line``'s characters are ``a`` and how many ``b``; Latin-1 lines eight bytes
 * at a time (a byte equal to the character becomes zero, and its high bit is counted) */
static void
count_two(PyObject *line, Py_UCS4 a, Py_UCS4 b, Py_ssize_t *na, Py_ssize_t *nb)
{
    const uint64_t low = 0x7f7f7f7f7f7f7f7fULL, ones = 0x0101010101010101ULL;
    Py_ssize_t size = PyUnicode_GET_LENGTH(line), i = 0;
    int kind = PyUnicode_KIND(line);
    const void *data = PyUnicode_DATA(line);
    uint64_t word, x, y;
    Py_UCS4 c;
    *na = *nb = 0;
    if (kind == PyUnicode_1BYTE_KIND && a < 0x80 && b < 0x80) {
        for (; i + 8 <= size; i += 8) {
            memcpy(&word, (const Py_UCS1 *)data + i, 8);
            x = word ^ (ones * a);
            y = word ^ (ones * b);
            *na += __builtin_popcountll(~(((x & low) + low) | x | low));
            *nb += __builtin_popcountll(~(((y & low) + low) | y | low));
        }
    }
    for (; i < size; i++) {
        c = PyUnicode_READ(kind, data, i);
        *na += c == a;
        *nb += c == b;
    }
}

/* fits(surfaces, joined) -> whether a part's kept words as written (joined by spaces) are as
 * many as the stems of its joined line (" a  b  |  c ": two spaces per token, "|" a clause
 * mark): the check digestd.topics.packed makes of every kept part before using it */
static PyObject *
fits(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t spaces, bars, words, unused;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fits(surfaces: str, joined: str)");
        return NULL;
    }
    count_two(args[1], ' ', '|', &spaces, &bars);
    count_two(args[0], ' ', ' ', &words, &unused);
    return PyBool_FromLong(spaces % 2 == 0 && words + 1 == spaces / 2 - bars);
}

/* ---- cutting a text into words (digestd.topics.words._clause_words) ---- */

static int
is_apostrophe(Py_UCS4 c)
{
    return c == '\'' || c == 0x2019;
}

/* a character of a word: what WORD_RE's [^\W_] takes (str.isalnum), or an apostrophe */
static int
is_word_char(Py_UCS4 c)
{
    if (c < 128) { /* most characters: no look-up in the Unicode database */
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
               || c == '\'';
    }
    return c == 0x2019 || Py_UNICODE_ISALNUM(c);
}

/* _CLAUSE_END: a run of these ends a clause when what follows it is white space, one of the
 * quotes and brackets of is_after_clause, or the end of the text */
static int
is_clause_mark(Py_UCS4 c)
{
    return c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?' || c == 0x2026;
}

static int
is_after_clause(Py_UCS4 c)
{
    return Py_UNICODE_ISSPACE(c) || c == '"' || c == '\'' || c == 0x2019 || c == 0x201D
           || c == ')' || c == ']';
}

/* cut(text) -> (words, breaks): the words of ``text`` as written and the indexes of those
 * that start a clause (a list, an index may repeat), as _clause_words answers them: a word is
 * a run of letters, digits and apostrophes with the apostrophes at either end taken off, and
 * a run of clause marks before white space, a closing quote or bracket, or the end, is a
 * break. Clause marks are no word characters, so one pass finds both. */
static PyObject *
cut(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *text, *words = NULL, *breaks = NULL, *word, *out;
    Py_ssize_t size, i = 0, start, end;
    const void *data;
    int kind;
    Py_UCS4 c;

    if (nargs != 1 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "cut(text: str)");
        return NULL;
    }
    text = args[0];
    kind = PyUnicode_KIND(text);
    data = PyUnicode_DATA(text);
    size = PyUnicode_GET_LENGTH(text);
    words = PyList_New(0);
    breaks = PyList_New(0);
    if (words == NULL || breaks == NULL) {
        goto fail;
    }
    while (i < size) {
        c = PyUnicode_READ(kind, data, i);
        if (is_word_char(c)) {
            start = i;
            while (i < size && is_word_char(PyUnicode_READ(kind, data, i))) {
                i++;
            }
            end = i;
            while (start < end && is_apostrophe(PyUnicode_READ(kind, data, start))) {
                start++;
            }
            while (end > start && is_apostrophe(PyUnicode_READ(kind, data, end - 1))) {
                end--;
            }
            if (start < end) {
                word = PyUnicode_Substring(text, start, end);
                if (word == NULL || PyList_Append(words, word) < 0) {
                    Py_XDECREF(word);
                    goto fail;
                }
                Py_DECREF(word);
            }
        } else if (is_clause_mark(c)) {
            while (i < size && is_clause_mark(PyUnicode_READ(kind, data, i))) {
                i++;
            }
            if ((i == size || is_after_clause(PyUnicode_READ(kind, data, i)))
                && append_index(breaks, PyList_GET_SIZE(words)) < 0) {
                goto fail;
            }
        } else {
            i++;
        }
    }
    out = PyTuple_Pack(2, words, breaks);
    Py_DECREF(words);
    Py_DECREF(breaks);
    return out;
fail:
    Py_XDECREF(words);
    Py_XDECREF(breaks);
    return NULL;
}

PyMethodDef text_methods[] = {
    {"common", (PyCFunction)(void (*)(void))common, METH_FASTCALL,
     "common(line, stems) -> the indexes of the sorted stems the sorted stems line holds"},
    {"cut", (PyCFunction)(void (*)(void))cut, METH_FASTCALL,
     "cut(text) -> (words, clause starts), as digestd.topics.words._clause_words"},
    {"fits", (PyCFunction)(void (*)(void))fits, METH_FASTCALL,
     "fits(surfaces, joined) -> whether a kept part has as many words as stems"},
    {NULL, NULL, 0, NULL},
};

