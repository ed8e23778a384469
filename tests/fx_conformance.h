/* The reference comparison both backends must pass (testdata README 3.4,
 * 3.7): last-position logits of every prompt within the file type's
 * tolerance, and, teacher-forced over gen_ids, the reference's top-1 wherever
 * its gap exceeds twice the tolerance. */
#ifndef PONDER_FX_CONFORMANCE_H
#define PONDER_FX_CONFORMANCE_H

#include <stddef.h>

struct model;

/* Tolerances measured in testdata README 3.7 (they supersede the issue's). */
double fx_tolerance(const char *ftype);

struct fx_conformance {
    double worst;           /* largest |difference| of last-position logits */
    double tolerance;
    int top1_checked, steps;
};

/* Runs every prompt of models/<name>.ref.json on m.  0 when all hold; else
 * 1 with one line in msg (the first failure). */
int fx_check_reference(struct model *m, const char *name, struct fx_conformance *out, char *msg,
                       size_t cap);

#endif
