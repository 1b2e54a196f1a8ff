/*
 * Tables as rladmin prints them: a header of upper-case titles and rows
 * whose columns line up, each column as wide as its widest cell.  Every
 * table moatadm prints goes through here, so they all look alike and a
 * long value never shifts the columns after it.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "moatadm.h"

#define TABLE_GAP	"  "	/* two spaces: one could pass for a word break */
#define FINGERPRINT_SHOWN	23	/* 8 of the 32 bytes */

struct table {
	size_t		  ncols;
	const char *const *header;
	char		**cells;	/* nrows * ncols, NULL prints "?" */
	size_t		  nrows;
	size_t		  cap;		/* rows allocated */
};

struct table *
table_new(const char *const *header, size_t ncols)
{
	struct table *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->ncols = ncols;
	t->header = header;
	return t;
}

void
table_free(struct table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

size_t
table_rows(const struct table *t)
{
	return t != NULL ? t->nrows : 0;
}

int
table_row_add(struct table *t)
{
	char **cells;
	size_t cap;

	if (t == NULL)
		return -1;
	if (t->nrows == t->cap) {
		cap = t->cap != 0 ? t->cap * 2 : 8;
		if ((cells = reallocarray(t->cells, cap * t->ncols,
		    sizeof(*cells))) == NULL)
			return -1;
		t->cells = cells;
		t->cap = cap;
	}
	memset(t->cells + t->nrows * t->ncols, 0,
	    t->ncols * sizeof(*t->cells));
	t->nrows++;
	return 0;
}

void
table_cell_printf(struct table *t, size_t col, const char *fmt, ...)
{
	char **cell;
	va_list ap;

	if (t == NULL || t->nrows == 0 || col >= t->ncols)
		return;
	cell = &t->cells[(t->nrows - 1) * t->ncols + col];
	free(*cell);
	va_start(ap, fmt);
	if (vasprintf(cell, fmt, ap) < 0)
		*cell = NULL;
	va_end(ap);
}

void
table_cell_json(struct table *t, size_t col, const json_t *obj,
    const char *key)
{
	char *text = json_member_format(obj, key);

	table_cell_printf(t, col, "%s", text != NULL ? text : "?");
	free(text);
}

void
table_cell_fingerprint(struct table *t, size_t col, const char *fp)
{
	if (fp == NULL)
		fp = "-";
	table_cell_printf(t, col, "%.*s%s", FINGERPRINT_SHOWN, fp,
	    strlen(fp) > FINGERPRINT_SHOWN ? "..." : "");
}

static const char *
cell_text(const char *s)
{
	return s != NULL ? s : "?";
}

/*
 * One line.  Nothing is padded after the last non-empty cell, so that no
 * line ends in blanks (they would defeat `grep 'x$'` and diffs).
 */
static void
table_line_print(FILE *fp, const char *indent, const size_t *width,
    size_t ncols, const char *const *cells)
{
	size_t c, last = 0;

	for (c = 0; c < ncols; c++)
		if (cell_text(cells[c])[0] != '\0')
			last = c;
	fputs(indent, fp);
	for (c = 0; c < last; c++)
		fprintf(fp, "%-*s%s", (int)width[c], cell_text(cells[c]),
		    TABLE_GAP);
	fprintf(fp, "%s\n", cell_text(cells[last]));
}

void
table_print(const struct table *t, FILE *fp, const char *indent)
{
	size_t *width, r, c, len;

	if (t == NULL || t->ncols == 0)
		return;
	if ((width = calloc(t->ncols, sizeof(*width))) == NULL)
		return;
	for (c = 0; c < t->ncols; c++) {
		width[c] = t->header != NULL ? strlen(t->header[c]) : 0;
		for (r = 0; r < t->nrows; r++)
			if ((len = strlen(cell_text(t->cells[r * t->ncols +
			    c]))) > width[c])
				width[c] = len;
	}
	if (t->header != NULL)
		table_line_print(fp, indent, width, t->ncols, t->header);
	for (r = 0; r < t->nrows; r++)
		table_line_print(fp, indent, width, t->ncols,
		    (const char *const *)t->cells + r * t->ncols);
	free(width);
}
