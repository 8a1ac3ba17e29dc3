/* What digestd/topics/_text.c shares with _program.c (see there). */

#ifndef DIGESTD_TEXT_H
#define DIGESTD_TEXT_H

#include <Python.h>

/* 1 when the sorted stems line ``line`` holds the token ``stem``, else 0 */
int in_sorted_line(PyObject *line, PyObject *stem);

/* where ``pattern`` occurs in ``line`` from ``start`` on; -1 if not, -2 on an error */
Py_ssize_t find_from(PyObject *line, PyObject *pattern, Py_ssize_t start);

/* how many spaces ``line[start:end]`` holds */
Py_ssize_t spaces_in(PyObject *line, Py_ssize_t start, Py_ssize_t end);

/* common, fits and cut, the module's functions */
extern PyMethodDef text_methods[];

#endif
