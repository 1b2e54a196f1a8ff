/* ui_assets.h — the UI's files, embedded at build time (tools/embed.c). */
#ifndef MOATD_UI_ASSETS_H
#define MOATD_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
	const char		*path;	/* "/app.js" */
	const char		*type;	/* Content-Type */
	const unsigned char	*data;
	size_t			 len;
};

/* Ends with a NULL path. */
extern const struct ui_asset ui_assets[];

#endif
